//! Audit: an account's history as auditors read it, the same for the HTTP routes
//! (`/admin/audit/accounts/{id}/…`, `routes::audit`) and the CLI (`accounts audit …`).
//!
//! - [`events`]: every event that belongs to the account ([`select`] says which), in log
//!   order, with its envelope, personal fields opened where the key exists and marked
//!   `{"erased": true}` where it was destroyed, secrets marked `{"redacted": true}`.
//! - [`state`]: the account as it was at an instant, folded from those events by the
//!   aggregates' own `evolve`.
//! - [`security_log`]: the account holder's own security events.
//!
//! The log is read page by page from its start ([`AccountEvents`]): membership in a
//! workspace and the purchases and invoices of the account are learnt from earlier events,
//! so no index beyond the log is needed, and no request holds more than a page of the log
//! in memory (plus the page it answers).

pub mod cli;
pub mod events;
pub mod security_log;
pub mod select;
pub mod state;
pub mod table;

use commands::EventCodec;
use domain::{AccountId, StreamCategory};
use select::Selector;
use std::collections::VecDeque;
use std::sync::Arc;
use store::{EventLog, GlobalPosition, RecordedEvent};

/// Events read from the log at a time.
const BATCH: usize = 1_000;

/// Why an audit read failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No account with this id ever registered.
    #[error("no account has this id")]
    UnknownAccount,
    /// The log or the keys could not be read.
    #[error("{0}")]
    Failed(String),
}

impl AuditError {
    fn failed(error: impl std::fmt::Display) -> Self {
        Self::Failed(error.to_string())
    }
}

/// What an audit reads: the log, and the codec that opens personal fields.
#[derive(Clone)]
pub struct Auditor {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Opens sealed fields with the subjects' data keys.
    pub codec: EventCodec,
}

impl Auditor {
    /// An auditor over `log`, opening with `codec`.
    pub fn new(log: Arc<dyn EventLog>, codec: EventCodec) -> Self {
        Self { log, codec }
    }

    /// Fails with [`AuditError::UnknownAccount`] unless the account's stream exists (it
    /// stays after a deletion: its history is still the auditors').
    #[tracing::instrument(skip_all, fields(%account))]
    pub async fn check_account(&self, account: AccountId) -> Result<(), AuditError> {
        let first = self
            .log
            .read_stream(&StreamCategory::Account.stream(account), 0, 1)
            .await
            .map_err(AuditError::failed)?;
        if first.is_empty() {
            Err(AuditError::UnknownAccount)
        } else {
            Ok(())
        }
    }

    /// The account's events from the start of the log, in log order.
    pub fn account_events(&self, account: AccountId) -> AccountEvents {
        AccountEvents {
            log: self.log.clone(),
            selector: Selector::new(account),
            after: GlobalPosition::START,
            buffer: VecDeque::new(),
            done: false,
        }
    }
}

/// The events of one account, read from the log a batch at a time.
pub struct AccountEvents {
    log: Arc<dyn EventLog>,
    selector: Selector,
    after: GlobalPosition,
    buffer: VecDeque<RecordedEvent>,
    done: bool,
}

impl AccountEvents {
    /// The next event of the account, or `None` at the end of the log.
    pub async fn next(&mut self) -> Result<Option<RecordedEvent>, AuditError> {
        loop {
            while let Some(event) = self.buffer.pop_front() {
                if self.selector.admits(&event) {
                    return Ok(Some(event));
                }
            }
            if self.done {
                return Ok(None);
            }
            let batch = self
                .log
                .read_all(self.after, BATCH)
                .await
                .map_err(AuditError::failed)?;
            self.done = batch.len() < BATCH;
            if let Some(last) = batch.last() {
                self.after = last.position;
            }
            self.buffer.extend(batch);
        }
    }

    /// The workspaces the account was a member of in the events returned so far.
    pub fn workspaces_ever(&self) -> &[String] {
        self.selector.workspaces_ever()
    }
}
