//! Forgets, in this process, the data keys of accounts that any node erased. Keys are
//! cached per process once unwrapped; the node that erases an account forgets its key at
//! once, and every other node follows the log from where it stood at start and drops the
//! key from its cache when the account's `AccountErased` event appears — within about a
//! second (the log's cross-process notification: PostgreSQL's LISTEN/NOTIFY, or SQLite's
//! poll).

use domain::StreamCategory;
use std::sync::Arc;
use std::time::Duration;
use store::{EventLog, GlobalPosition, StoreError};
use tokio::sync::watch;
use uuid::Uuid;
use vault::DataKeys;

/// The stored type of the event that ends an erasure.
pub const ACCOUNT_ERASED: &str = "AccountErased";

/// Events read per step.
const BATCH: usize = 1_000;

/// The follower that evicts erased accounts' keys.
pub struct KeyEviction {
    log: Arc<dyn EventLog>,
    keys: Arc<DataKeys>,
    from: GlobalPosition,
}

impl KeyEviction {
    /// Evicts from `keys` as erasures appear in `log` after its present head (the cache
    /// holds nothing older than the process).
    pub async fn new(log: Arc<dyn EventLog>, keys: Arc<DataKeys>) -> Result<Self, StoreError> {
        let from = log.committed_head().await?;
        Ok(Self { log, keys, from })
    }

    /// Follows the log until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut watch = self.log.watch();
        let mut position = self.from;
        while !*shutdown.borrow() {
            watch.mark_seen();
            match self.step(&mut position).await {
                Ok(true) => continue,
                Ok(false) => {
                    tokio::select! {
                        () = watch.changed() => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "following the log for erased keys; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
    }

    /// Reads what follows `position`; whether to read again at once (a full page: more may
    /// follow; a shorter one ended where the log ended for that read).
    async fn step(&self, position: &mut GlobalPosition) -> Result<bool, StoreError> {
        // Erasures are events of account streams: only those are copied out of the page.
        let accounts = |stream: &str| StreamCategory::Account.id_in(stream).is_some();
        let page = self.log.read_all_where(*position, BATCH, &accounts).await?;
        for event in &page.events {
            if event.event_type == ACCOUNT_ERASED
                && let Some(subject) = StreamCategory::Account
                    .id_in(&event.stream)
                    .and_then(|id| Uuid::parse_str(id).ok())
            {
                self.keys.forget(subject);
            }
        }
        if let Some(last) = page.last {
            *position = last;
        }
        Ok(page.read >= BATCH)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Timestamp;
    use domain::account::AccountEvent;
    use store::testkit::TestSqlite;
    use store::{Actor, Database, ExpectedRevision, Metadata, NewEvent};
    use vault::MasterKey;

    /// Another node destroys a key this node holds in cache, then records the erasure: the
    /// follower drops the stale key, and the data no longer opens here either.
    #[tokio::test]
    async fn a_key_destroyed_elsewhere_leaves_this_cache_when_the_erasure_is_logged() {
        let sqlite = TestSqlite::create();
        let db = Database::connect(&sqlite.url, 4).await.unwrap();
        db.migrate().await.unwrap();
        let log = db.event_log().await.unwrap();
        let master = MasterKey::generate();
        let here = Arc::new(DataKeys::new(db.clone(), &master));
        let elsewhere = DataKeys::new(db.clone(), &master);
        let account = Uuid::new_v4();
        let now = Timestamp::from_unix_micros(0);
        here.create(account, now).await.unwrap();
        assert!(here.get(account).await.unwrap().is_some(), "cached here");

        let (stop, stopping) = watch::channel(false);
        let eviction = KeyEviction::new(log.clone(), here.clone()).await.unwrap();
        let follower = tokio::spawn(eviction.run(stopping));
        elsewhere.destroy(account, now).await.unwrap();
        assert!(
            here.get(account).await.unwrap().is_some(),
            "the stale cache still opens it"
        );
        let erased = NewEvent {
            event_id: Uuid::new_v4(),
            event_type: ACCOUNT_ERASED.into(),
            schema_version: 1,
            data: serde_json::json!({"at": 0}),
            metadata: Metadata {
                correlation_id: Uuid::new_v4(),
                causation_id: None,
                actor: Actor::System {
                    component: "test".into(),
                },
                occurred_at: now,
                idempotency_key: None,
                data_subject: Some(account),
            },
        };
        log.append(
            &StreamCategory::Account.stream(account),
            ExpectedRevision::Any,
            vec![erased],
        )
        .await
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while here.get(account).await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "never evicted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).unwrap();
        follower.await.unwrap();
    }

    #[test]
    fn the_type_followed_is_the_stored_type_of_the_erasure_event() {
        let erased = AccountEvent::AccountErased {
            at: Timestamp::from_unix_micros(0),
        };
        assert_eq!(
            domain::DomainEvent::from(erased).event_type(),
            ACCOUNT_ERASED
        );
    }
}
