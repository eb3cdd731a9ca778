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
//! An account's events are found through the audit index (`projections::audit_index`),
//! which every audit read first brings up to the head of the log, and read from the log
//! a page at a time ([`AccountEvents`]): a page costs the account's events, not the log's
//! length. [`select`] is the reference the index is held to: the same rules, following the
//! whole log for one account.

pub mod cli;
pub mod events;
pub mod security_log;
pub mod select;
pub mod state;
pub mod table;

#[cfg(test)]
mod index_tests;

use commands::EventCodec;
use domain::{AccountId, StreamCategory};
use projections::audit_index::{AuditIndex, events_of};
use std::collections::VecDeque;
use std::sync::Arc;
use store::{Database, EventLog, GlobalPosition, RecordedEvent};

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

/// What an audit reads: the log, its index, and the codec that opens personal fields.
#[derive(Clone)]
pub struct Auditor {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Opens sealed fields with the subjects' data keys.
    pub codec: EventCodec,
    /// The database holding the audit index.
    db: Database,
    index: Arc<AuditIndex>,
    /// A session without a request for this long has ended (`--session-idle-timeout`).
    session_idle_timeout: std::time::Duration,
}

/// The service's default `--session-idle-timeout`, an auditor's unless told otherwise.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

impl Auditor {
    /// An auditor over `log`, finding accounts' events through the index in `db`, opening
    /// with `codec`.
    pub fn new(db: Database, log: Arc<dyn EventLog>, codec: EventCodec) -> Self {
        Self {
            index: Arc::new(AuditIndex::new(db.clone(), log.clone())),
            db,
            log,
            codec,
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
        }
    }

    /// The same auditor, for a service whose sessions end after `timeout` without a
    /// request: the state at an instant lists only the sessions live then.
    pub fn with_session_idle_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.session_idle_timeout = timeout;
        self
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

    /// The account's events after `after`, in log order, once the index has every event
    /// the log shows.
    pub async fn account_events(
        &self,
        account: AccountId,
        after: GlobalPosition,
    ) -> Result<AccountEvents, AuditError> {
        self.index.catch_up().await.map_err(AuditError::failed)?;
        Ok(AccountEvents {
            log: self.log.clone(),
            db: self.db.clone(),
            account: account.to_string(),
            after,
            buffer: VecDeque::new(),
            done: false,
            workspaces_ever: Vec::new(),
        })
    }
}

/// The events of one account, found in the index and read from the log a page at a time.
pub struct AccountEvents {
    log: Arc<dyn EventLog>,
    db: Database,
    account: String,
    after: GlobalPosition,
    buffer: VecDeque<RecordedEvent>,
    done: bool,
    workspaces_ever: Vec<String>,
}

impl AccountEvents {
    /// The next event of the account, or `None` after its last.
    pub async fn next(&mut self) -> Result<Option<RecordedEvent>, AuditError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                if let Some(workspace) = StreamCategory::Workspace.id_in(&event.stream)
                    && !self.workspaces_ever.iter().any(|w| w == workspace)
                {
                    self.workspaces_ever.push(workspace.to_owned());
                }
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            let at = events_of(&self.db, &self.account, self.after, BATCH)
                .await
                .map_err(AuditError::failed)?;
            self.done = at.len() < BATCH;
            if let Some(last) = at.last() {
                self.after = last.position;
            }
            let events = self
                .log
                .read_events(&at)
                .await
                .map_err(AuditError::failed)?;
            self.buffer.extend(events);
        }
    }

    /// The workspaces the account was a member of in the events returned so far (ids), in
    /// the order it joined them.
    pub fn workspaces_ever(&self) -> &[String] {
        &self.workspaces_ever
    }
}
