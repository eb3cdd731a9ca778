//! Forgets, in this process, the data keys that any node destroyed. Keys are cached per
//! process once unwrapped; the node that destroys a key forgets it at once, and every
//! other node follows the log from where it stood at start and drops it from its cache
//! when the event that ends it appears — within about a second (the log's cross-process
//! notification: PostgreSQL's LISTEN/NOTIFY, or SQLite's poll): an account's at its
//! `AccountErased`, an invitation's once it is accepted or declined, and, at a
//! `WorkspaceDeleted`, every key (the workspace's and its invitations', which the event
//! does not list). Those last two are read before the keys are destroyed (the answer or
//! the deletion commits first), so a node may take a key again meanwhile: the erasure
//! reactor records `KeysShredded` once they are destroyed, and its subjects are dropped
//! again then.

use domain::StreamCategory;
use std::sync::Arc;
use std::time::Duration;
use store::{EventLog, GlobalPosition, StoreError};
use tokio::sync::watch;
use uuid::Uuid;
use vault::DataKeys;

/// The stored type of the event that ends an erasure.
pub const ACCOUNT_ERASED: &str = "AccountErased";

/// The stored types of the events after which an invitation's key is destroyed.
const INVITATION_ANSWERED: [&str; 2] = ["InvitationAccepted", "InvitationDeclined"];

/// The stored type of a workspace's deletion.
const WORKSPACE_DELETED: &str = "WorkspaceDeleted";

/// The stored type of the record that keys were destroyed, after the fact.
const KEYS_SHREDDED: &str = "KeysShredded";

/// Events read per step.
const BATCH: usize = 1_000;

/// The follower that evicts erased accounts' keys.
pub struct KeyEviction {
    log: Arc<dyn EventLog>,
    keys: Arc<DataKeys>,
    from: GlobalPosition,
}

impl KeyEviction {
    /// Evicts from `keys` as erasures appear in `log` after its present head. What the
    /// cache took before (a read model rebuilt at start decodes the log) is dropped: a key
    /// destroyed elsewhere meanwhile, its end before that head, would stay in it for good.
    pub async fn new(log: Arc<dyn EventLog>, keys: Arc<DataKeys>) -> Result<Self, StoreError> {
        let from = log.committed_head().await?;
        keys.forget_all();
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
        // Those events are of account and workspace streams: only those are copied out.
        let concerned = |stream: &str| {
            StreamCategory::Account.id_in(stream).is_some()
                || StreamCategory::Workspace.id_in(stream).is_some()
        };
        let page = self
            .log
            .read_all_where(*position, BATCH, &concerned)
            .await?;
        for event in &page.events {
            let subject = match event.event_type.as_str() {
                ACCOUNT_ERASED => StreamCategory::Account.id_in(&event.stream),
                answered if INVITATION_ANSWERED.contains(&answered) => {
                    event.data["invitation_id"].as_str()
                }
                WORKSPACE_DELETED => {
                    self.keys.forget_all();
                    continue;
                }
                KEYS_SHREDDED => {
                    let subjects: Vec<Uuid> =
                        serde_json::from_value(event.data["subjects"].clone()).unwrap_or_default();
                    let workspace = StreamCategory::Workspace
                        .id_in(&event.stream)
                        .and_then(|id| Uuid::parse_str(id).ok());
                    // A deleted workspace's: its invitations too, which it may not list.
                    if workspace.is_some_and(|id| subjects.contains(&id)) {
                        self.keys.forget_all();
                    }
                    for subject in subjects {
                        self.keys.forget(subject);
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(subject) = subject.and_then(|id| Uuid::parse_str(id).ok()) {
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
    use domain::workspace::WorkspaceEvent;
    use store::testkit::TestSqlite;
    use store::{Actor, Database, ExpectedRevision, Metadata, NewEvent};
    use vault::MasterKey;

    /// A log, and the key cache of this node and another node's, over one key store.
    async fn two_nodes() -> (TestSqlite, Arc<dyn EventLog>, Arc<DataKeys>, DataKeys) {
        let sqlite = TestSqlite::create();
        let db = Database::connect(&sqlite.url, 4).await.unwrap();
        db.migrate().await.unwrap();
        let log = db.event_log().await.unwrap();
        let master = MasterKey::generate();
        let here = Arc::new(DataKeys::new(db.clone(), &master));
        let elsewhere = DataKeys::new(db, &master);
        (sqlite, log, here, elsewhere)
    }

    /// An event of `event_type` with `data`, as any node appends it.
    fn recorded(event_type: &str, data: serde_json::Value, subject: Uuid) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            data,
            metadata: Metadata {
                correlation_id: Uuid::new_v4(),
                causation_id: None,
                actor: Actor::System {
                    component: "test".into(),
                },
                occurred_at: Timestamp::from_unix_micros(0),
                idempotency_key: None,
                data_subject: Some(subject),
            },
        }
    }

    /// Waits until `keys` no longer opens with `subject`'s key.
    async fn evicted(keys: &DataKeys, subject: Uuid) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while keys.get(subject).await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "never evicted");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Another node destroys keys this node holds in cache, then records what ended them:
    /// an account's erasure, an invitation's answer, a workspace's deletion (which names
    /// none of the keys it ended). The follower drops each stale key, and the data no
    /// longer opens here either.
    #[tokio::test]
    async fn keys_destroyed_elsewhere_leave_this_cache_when_their_end_is_logged() {
        let (_sqlite, log, here, elsewhere) = two_nodes().await;
        let [account, invitation, workspace, workspace_invitation] =
            std::array::from_fn(|_| Uuid::new_v4());
        let now = Timestamp::from_unix_micros(0);
        let (stop, stopping) = watch::channel(false);
        let eviction = KeyEviction::new(log.clone(), here.clone()).await.unwrap();
        let follower = tokio::spawn(eviction.run(stopping));
        for subject in [account, invitation, workspace, workspace_invitation] {
            here.create(subject, now).await.unwrap();
            assert!(here.get(subject).await.unwrap().is_some(), "cached here");
        }
        elsewhere.destroy(account, now).await.unwrap();
        assert!(
            here.get(account).await.unwrap().is_some(),
            "the stale cache still opens it"
        );
        let erased = recorded(ACCOUNT_ERASED, serde_json::json!({"at": 0}), account);
        let account_stream = StreamCategory::Account.stream(account);
        log.append(&account_stream, ExpectedRevision::Any, vec![erased])
            .await
            .unwrap();
        evicted(&here, account).await;

        let workspace_stream = StreamCategory::Workspace.stream(workspace);
        elsewhere.destroy(invitation, now).await.unwrap();
        let accepted = recorded(
            INVITATION_ANSWERED[0],
            serde_json::json!({"invitation_id": invitation}),
            workspace,
        );
        log.append(&workspace_stream, ExpectedRevision::Any, vec![accepted])
            .await
            .unwrap();
        evicted(&here, invitation).await;
        assert!(here.get(workspace).await.unwrap().is_some(), "only it");

        elsewhere
            .destroy_all(&[workspace, workspace_invitation], now)
            .await
            .unwrap();
        let deleted = recorded(WORKSPACE_DELETED, serde_json::json!({}), workspace);
        log.append(&workspace_stream, ExpectedRevision::Any, vec![deleted])
            .await
            .unwrap();
        evicted(&here, workspace).await;
        evicted(&here, workspace_invitation).await;
        stop.send(true).unwrap();
        follower.await.unwrap();
    }

    /// As in production: the answer (or the deletion) is logged first, its keys destroyed
    /// after. A node that read the answer and took the key again before the destruction
    /// drops it when the destruction's record (`KeysShredded`) is logged.
    #[tokio::test]
    async fn a_key_taken_again_before_its_destruction_leaves_with_its_record() {
        let (_sqlite, log, here, elsewhere) = two_nodes().await;
        let [invitation, workspace, pending] = std::array::from_fn(|_| Uuid::new_v4());
        let now = Timestamp::from_unix_micros(0);
        let (stop, stopping) = watch::channel(false);
        let eviction = KeyEviction::new(log.clone(), here.clone()).await.unwrap();
        let follower = tokio::spawn(eviction.run(stopping));
        for subject in [invitation, workspace, pending] {
            here.create(subject, now).await.unwrap();
        }
        let workspace_stream = StreamCategory::Workspace.stream(workspace);
        let append = |event_type: &str, data: serde_json::Value| {
            let (log, stream) = (log.clone(), workspace_stream.clone());
            let event = recorded(event_type, data, workspace);
            async move {
                log.append(&stream, ExpectedRevision::Any, vec![event])
                    .await
                    .unwrap();
            }
        };
        append(
            INVITATION_ANSWERED[0],
            serde_json::json!({"invitation_id": invitation}),
        )
        .await;
        // Read here (forgotten), then taken again while the key still exists.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(here.get(invitation).await.unwrap().is_some(), "taken again");
        elsewhere.destroy(invitation, now).await.unwrap();
        assert!(here.get(invitation).await.unwrap().is_some(), "stale here");
        append(KEYS_SHREDDED, serde_json::json!({"subjects": [invitation]})).await;
        evicted(&here, invitation).await;
        assert!(here.get(workspace).await.unwrap().is_some(), "only it");

        // A deletion's record names the workspace: every key goes, those of invitations
        // it does not list too.
        append(WORKSPACE_DELETED, serde_json::json!({})).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for subject in [workspace, pending] {
            assert!(here.get(subject).await.unwrap().is_some(), "taken again");
        }
        elsewhere
            .destroy_all(&[workspace, pending], now)
            .await
            .unwrap();
        append(KEYS_SHREDDED, serde_json::json!({"subjects": [workspace]})).await;
        evicted(&here, workspace).await;
        evicted(&here, pending).await;
        stop.send(true).unwrap();
        follower.await.unwrap();
    }

    /// A key cached before the follower starts (a rebuild at start), destroyed elsewhere
    /// with its end logged before the head the follower starts from, is not served.
    #[tokio::test]
    async fn a_key_cached_before_the_follower_starts_is_not_kept() {
        let (_sqlite, log, here, elsewhere) = two_nodes().await;
        let account = Uuid::new_v4();
        let now = Timestamp::from_unix_micros(0);
        here.create(account, now).await.unwrap();
        assert!(here.get(account).await.unwrap().is_some(), "cached here");
        elsewhere.destroy(account, now).await.unwrap();
        let erased = recorded(ACCOUNT_ERASED, serde_json::json!({"at": 0}), account);
        let stream = StreamCategory::Account.stream(account);
        log.append(&stream, ExpectedRevision::Any, vec![erased])
            .await
            .unwrap();
        let _eviction = KeyEviction::new(log, here.clone()).await.unwrap();
        assert!(here.get(account).await.unwrap().is_none());
    }

    #[test]
    fn the_types_followed_are_the_stored_types_of_their_events() {
        let erased = AccountEvent::AccountErased {
            at: Timestamp::from_unix_micros(0),
        };
        assert_eq!(
            domain::DomainEvent::from(erased).event_type(),
            ACCOUNT_ERASED
        );
        let (at, invitation_id, account_id) = (
            Timestamp::from_unix_micros(0),
            Uuid::nil(),
            domain::AccountId(Uuid::nil()),
        );
        let answered = [
            WorkspaceEvent::InvitationAccepted {
                invitation_id,
                account_id,
                role: domain::workspace::Role::Member,
                at,
            },
            WorkspaceEvent::InvitationDeclined {
                invitation_id,
                account_id,
                at,
            },
        ];
        for (event, stored) in answered.into_iter().zip(INVITATION_ANSWERED) {
            let event = domain::DomainEvent::from(event);
            assert_eq!(event.event_type(), stored);
            // The field the follower reads, in the clear.
            assert_eq!(event.personal_fields(), [] as [&str; 0]);
            assert!(serde_json::to_value(&event).unwrap()["invitation_id"].is_string());
        }
        let deleted = WorkspaceEvent::WorkspaceDeleted { by: account_id, at };
        assert_eq!(
            domain::DomainEvent::from(deleted).event_type(),
            WORKSPACE_DELETED
        );
        let shredded = domain::DomainEvent::from(WorkspaceEvent::KeysShredded {
            subjects: vec![invitation_id],
            at,
        });
        assert_eq!(shredded.event_type(), KEYS_SHREDDED);
        assert_eq!(shredded.personal_fields(), [] as [&str; 0]);
        let subjects = &serde_json::to_value(&shredded).unwrap()["subjects"];
        assert_eq!(*subjects, serde_json::json!([invitation_id]));
    }
}
