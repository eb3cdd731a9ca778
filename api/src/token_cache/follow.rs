//! The token cache's follower of the log: forgets the cached tokens of every account an
//! event concerns, once the access-token read model has applied it (the first of the three
//! mechanisms in the parent module's header).

use super::TokenCache;
use domain::{AccountId, StreamCategory};
use projections::{Follower, ProjectionError};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::{EventLog, GlobalPosition, RecordedEvent};
use tokio::sync::watch;
use uuid::Uuid;

/// Events the follower reads per step.
const BATCH: usize = 1_000;

impl TokenCache {
    /// Follows `log` from its present head until `shutdown` turns true, forgetting the
    /// tokens of each account an event concerns once the read model has applied it.
    pub async fn follow(self: Arc<Self>, log: Arc<dyn EventLog>, shutdown: watch::Receiver<bool>) {
        let mut watch = log.watch();
        let mut stopping = shutdown.clone();
        let mut position = None;
        while !*shutdown.borrow() {
            watch.mark_seen();
            match self.step(&*log, &mut position, &shutdown).await {
                Ok(true) => continue,
                Ok(false) => {
                    tokio::select! {
                        () = watch.changed() => {}
                        _ = stopping.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "following the log for token changes; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopping.changed() => {}
                    }
                }
            }
        }
    }

    /// Deals with what follows `position` (at first: with the log's head, nothing being
    /// cached yet); whether to read again at once (after the head, or after a full page:
    /// a shorter one ended where the log ended for that read).
    async fn step(
        &self,
        log: &dyn EventLog,
        position: &mut Option<GlobalPosition>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, String> {
        let (last, changed, more) = match *position {
            None => (
                log.committed_head().await.map_err(|e| e.to_string())?,
                Changed::Accounts(HashSet::new()),
                true,
            ),
            Some(from) => {
                let batch = log.read_all(from, BATCH).await.map_err(|e| e.to_string())?;
                let Some(last) = batch.last().map(|e| e.position) else {
                    return Ok(false);
                };
                (last, concerned(&batch), batch.len() >= BATCH)
            }
        };
        if !self.settle(last, &changed, shutdown).await? {
            return Ok(false);
        }
        *position = Some(last);
        Ok(more)
    }

    /// Waits until the read model shows `position`, then forgets what `changed` and marks
    /// `position` dealt with; false when shutting down first.
    async fn settle(
        &self,
        position: GlobalPosition,
        changed: &Changed,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, String> {
        loop {
            if *shutdown.borrow() {
                return Ok(false);
            }
            match self
                .projections
                .wait_for(&[Follower::AccessTokens], position, Duration::from_secs(5))
                .await
            {
                Ok(()) => break,
                // A lagging read model: keep waiting (the gate keeps the cache out of use).
                Err(ProjectionError::Lagging { .. }) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
        match changed {
            Changed::Accounts(accounts) if accounts.is_empty() => {}
            Changed::Accounts(accounts) => self.forget_accounts(accounts),
            Changed::Unknown => self.clear(),
        }
        self.followed.fetch_max(position.0 + 1, Ordering::AcqRel);
        Ok(true)
    }
}

/// What a batch of events may have changed of the cached tokens.
#[derive(Debug)]
enum Changed {
    /// The tokens of these accounts.
    Accounts(HashSet<AccountId>),
    /// Some token whose owner the event does not name (none do today): any.
    Unknown,
}

/// The accounts whose tokens the events of `batch` may change: the owners of token
/// streams, and the accounts of account and subscription streams (a deletion or password
/// change revokes tokens; a plan decides what tokens may do).
fn concerned(batch: &[RecordedEvent]) -> Changed {
    let mut accounts = HashSet::new();
    for event in batch {
        let Some(category) = StreamCategory::of_stream(&event.stream) else {
            continue;
        };
        let account = match category {
            StreamCategory::AccessToken => event.metadata.data_subject,
            StreamCategory::Account | StreamCategory::Subscription => category
                .id_in(&event.stream)
                .and_then(|id| Uuid::parse_str(id).ok())
                .or(event.metadata.data_subject),
            _ => continue,
        };
        match account {
            Some(account) => {
                accounts.insert(AccountId(account));
            }
            None => return Changed::Unknown,
        }
    }
    Changed::Accounts(accounts)
}
