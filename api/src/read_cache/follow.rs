//! The read caches' follower of the log: forgets the cached rows of every account an event
//! concerns, once the cache's read model has applied it (the first of the three mechanisms
//! in the parent module's header). One follower serves every cache of the process, so the
//! log is read once for all of them.

use super::{Owned, ReadCache};
use domain::{AccountId, StreamCategory};
use projections::{Follower, ProjectionError, ProjectionRunner};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::{EventLog, GlobalPosition, RecordedEvent};
use tokio::sync::watch;
use uuid::Uuid;

/// Events the follower reads per step.
const BATCH: usize = 1_000;

/// A cache the follower keeps: what it needs of a [`ReadCache`], whatever its rows.
pub trait Followed: Send + Sync {
    /// The read model whose rows it keeps.
    fn read_model(&self) -> Follower;
    /// The stream categories whose events may change its rows.
    fn categories(&self) -> &'static [StreamCategory];
    /// Drops what `changed` may have changed.
    fn forget(&self, changed: &Changed);
    /// Records that everything up to `position` has been dealt with.
    fn followed_to(&self, position: GlobalPosition);
}

impl<V: Owned + Send + Sync> Followed for ReadCache<V> {
    fn read_model(&self) -> Follower {
        self.read_model
    }

    fn categories(&self) -> &'static [StreamCategory] {
        self.categories
    }

    fn forget(&self, changed: &Changed) {
        match changed {
            Changed::Accounts(accounts) if accounts.is_empty() => {}
            Changed::Accounts(accounts) => self.forget_accounts(accounts),
            Changed::Unknown => self.clear(),
        }
    }

    fn followed_to(&self, position: GlobalPosition) {
        self.followed.fetch_max(position.0 + 1, Ordering::AcqRel);
    }
}

/// Follows `log` from its present head until `shutdown` turns true, forgetting the rows of
/// each account an event concerns in each of `caches`, once its read model (in
/// `projections`) has applied the event.
pub async fn follow(
    caches: Vec<Arc<dyn Followed>>,
    projections: Arc<ProjectionRunner>,
    log: Arc<dyn EventLog>,
    shutdown: watch::Receiver<bool>,
) {
    let follower = CacheFollower {
        caches,
        projections,
    };
    let mut watch = log.watch();
    let mut stopping = shutdown.clone();
    let mut position = None;
    while !*shutdown.borrow() {
        watch.mark_seen();
        match follower.step(&*log, &mut position, &shutdown).await {
            Ok(true) => continue,
            Ok(false) => {
                tokio::select! {
                    () = watch.changed() => {}
                    _ = stopping.changed() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "following the log for the read caches; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopping.changed() => {}
                }
            }
        }
    }
}

/// The follower's state.
struct CacheFollower {
    caches: Vec<Arc<dyn Followed>>,
    projections: Arc<ProjectionRunner>,
}

impl CacheFollower {
    /// Deals with what follows `position` (at first: with the log's head, nothing being
    /// cached yet); whether to read again at once (after the head, or after a full page:
    /// a shorter one ended where the log ended for that read).
    async fn step(
        &self,
        log: &dyn EventLog,
        position: &mut Option<GlobalPosition>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, String> {
        let (last, batch, more) = match *position {
            None => (
                log.committed_head().await.map_err(|e| e.to_string())?,
                Vec::new(),
                true,
            ),
            Some(from) => {
                let batch = log.read_all(from, BATCH).await.map_err(|e| e.to_string())?;
                let Some(last) = batch.last().map(|e| e.position) else {
                    return Ok(false);
                };
                let more = batch.len() >= BATCH;
                (last, batch, more)
            }
        };
        for cache in &self.caches {
            if !self.settle(cache.read_model(), last, shutdown).await? {
                return Ok(false);
            }
            cache.forget(&concerned(&batch, cache.categories()));
            cache.followed_to(last);
        }
        *position = Some(last);
        Ok(more)
    }

    /// Waits until `read_model` shows `position`; false when shutting down first.
    async fn settle(
        &self,
        read_model: Follower,
        position: GlobalPosition,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<bool, String> {
        loop {
            if *shutdown.borrow() {
                return Ok(false);
            }
            match self
                .projections
                .wait_for(&[read_model], position, Duration::from_secs(5))
                .await
            {
                Ok(()) => return Ok(true),
                // A lagging read model: keep waiting (the gate keeps the cache out of use).
                Err(ProjectionError::Lagging { .. }) => {}
                Err(error) => return Err(error.to_string()),
            }
        }
    }
}

/// What a batch of events may have changed of a cache's rows.
#[derive(Debug)]
pub enum Changed {
    /// The rows of these accounts.
    Accounts(HashSet<AccountId>),
    /// Some row whose owner the event does not name (none do today): any.
    Unknown,
}

/// The accounts whose rows the events of `batch` in streams of `categories` may change:
/// the accounts of account and subscription streams (their id is the account's), and the
/// data subjects of the other streams' events (a token's owner).
fn concerned(batch: &[RecordedEvent], categories: &[StreamCategory]) -> Changed {
    let mut accounts = HashSet::new();
    for event in batch {
        let Some(category) = StreamCategory::of_stream(&event.stream) else {
            continue;
        };
        if !categories.contains(&category) {
            continue;
        }
        let account = match category {
            StreamCategory::Account | StreamCategory::Subscription => category
                .id_in(&event.stream)
                .and_then(|id| Uuid::parse_str(id).ok())
                .or(event.metadata.data_subject),
            _ => event.metadata.data_subject,
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

#[cfg(test)]
mod tests {
    use super::*;
    use store::Metadata;

    fn event(stream: &str, data_subject: Option<Uuid>) -> RecordedEvent {
        let at = domain::Timestamp::from_unix_micros(1_800_000_000_000_000);
        RecordedEvent {
            position: GlobalPosition(1),
            stream: stream.to_owned(),
            revision: 0,
            event_id: Uuid::new_v4(),
            event_type: "Test".to_owned(),
            schema_version: 1,
            data: serde_json::Value::Null,
            metadata: Metadata {
                correlation_id: Uuid::new_v4(),
                causation_id: None,
                actor: store::Actor::Anonymous,
                occurred_at: at,
                idempotency_key: None,
                data_subject,
            },
            recorded_at: at,
        }
    }

    #[test]
    fn an_account_stream_concerns_the_account_it_names() {
        let account = Uuid::new_v4();
        let token = Uuid::new_v4();
        let batch = [
            event(&format!("account-{account}"), None),
            event(&format!("accesstoken-{token}"), Some(Uuid::new_v4())),
        ];
        match concerned(&batch, &[StreamCategory::Account]) {
            Changed::Accounts(accounts) => {
                assert_eq!(accounts, HashSet::from([AccountId(account)]));
            }
            Changed::Unknown => panic!("an account stream names its account"),
        }
    }

    #[test]
    fn other_streams_concern_their_data_subject_or_everyone() {
        let owner = Uuid::new_v4();
        let token = format!("accesstoken-{}", Uuid::new_v4());
        let named = [event(&token, Some(owner))];
        match concerned(&named, &[StreamCategory::AccessToken]) {
            Changed::Accounts(accounts) => {
                assert_eq!(accounts, HashSet::from([AccountId(owner)]));
            }
            Changed::Unknown => panic!("the data subject names the owner"),
        }
        let unnamed = [event(&token, None)];
        assert!(matches!(
            concerned(&unnamed, &[StreamCategory::AccessToken]),
            Changed::Unknown
        ));
        // A category the cache does not follow concerns none of its rows.
        match concerned(&unnamed, &[StreamCategory::Account]) {
            Changed::Accounts(accounts) => assert!(accounts.is_empty()),
            Changed::Unknown => panic!("not a followed category"),
        }
    }
}
