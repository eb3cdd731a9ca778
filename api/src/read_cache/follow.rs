//! The read caches' follower of the log: marks the accounts an event concerns pending as
//! soon as it reads the event, and forgets their cached rows once the cache's read model
//! has applied it (the first of the three mechanisms in the parent module's header). One
//! follower serves every cache of the process, so the log is read once for all of them.

use super::{Owned, ReadCache};
use domain::{AccountId, StreamCategory};
use projections::follow::{Next, follow_log};
use projections::{Follower, ProjectionError, ProjectionRunner};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{EventLog, GlobalPosition, RecordedEvent};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Events the reader reads per step.
const BATCH: usize = 1_000;

/// A cache the follower keeps: what it needs of a [`ReadCache`], whatever its rows.
pub trait Followed: Send + Sync {
    /// The read model whose rows it keeps.
    fn read_model(&self) -> Follower;
    /// The stream categories whose events may change its rows.
    fn categories(&self) -> &'static [StreamCategory];
    /// The follower has read the log up to `position`, where `changed` may have changed.
    fn note_read(&self, changed: &Changed, position: GlobalPosition);
    /// The read model shows `position`: drops what `changed` may have changed.
    fn settled(&self, changed: &Changed, position: GlobalPosition);
}

impl<V: Owned + Send + Sync> Followed for ReadCache<V> {
    fn read_model(&self) -> Follower {
        self.read_model
    }

    fn categories(&self) -> &'static [StreamCategory] {
        self.categories
    }

    fn note_read(&self, changed: &Changed, position: GlobalPosition) {
        self.lock().note_read(changed, position);
    }

    fn settled(&self, changed: &Changed, position: GlobalPosition) {
        self.lock().settled(changed, position);
    }
}

/// Batches read and not yet settled, per cache: beyond this the reader waits for the
/// slowest read model (whose cache's gate is closed meanwhile anyway).
const QUEUED: usize = 256;

/// Follows `log` from its present head until `shutdown` turns true: reads ahead, marking
/// the accounts each event concerns pending in each of `caches`, and forgets them in each
/// cache once its read model (in `projections`) has applied the event. Each cache settles
/// on its own, so a slow read model keeps no other cache's gate closed.
pub async fn follow(
    caches: Vec<Arc<dyn Followed>>,
    projections: Arc<ProjectionRunner>,
    log: Arc<dyn EventLog>,
    shutdown: watch::Receiver<bool>,
) {
    let mut settlers = tokio::task::JoinSet::new();
    let queues = caches
        .iter()
        .map(|cache| {
            let (send, receive) = mpsc::channel(QUEUED);
            settlers.spawn(settle(
                cache.clone(),
                projections.clone(),
                receive,
                shutdown.clone(),
            ));
            send
        })
        .collect();
    let reader = Reader {
        caches,
        queues,
        log: log.clone(),
        position: Mutex::new(None),
        shutdown: shutdown.clone(),
    };
    follow_log(&log, shutdown, Duration::from_secs(1), || reader.step()).await;
    // Closes the queues: a settler waiting for its next batch stops at once.
    drop(reader);
    while settlers.join_next().await.is_some() {}
}

/// What the reader read up to `position`, for one cache.
type Read = (GlobalPosition, Arc<Changed>);

/// Reads the log from its head on, noting each batch in every cache and queueing it for
/// the cache's settler.
struct Reader {
    caches: Vec<Arc<dyn Followed>>,
    queues: Vec<mpsc::Sender<Read>>,
    log: Arc<dyn EventLog>,
    /// The last position read; `None` until the log's head is.
    position: Mutex<Option<GlobalPosition>>,
    shutdown: watch::Receiver<bool>,
}

impl Reader {
    /// Reads what follows the last position read (at first: the log's head), notes it in
    /// every cache and queues it for each cache's settler.
    async fn step(&self) -> Result<Next, String> {
        let position = *self.position.lock().unwrap_or_else(|e| e.into_inner());
        let (last, changed, next) = match position {
            // Whatever changed before the head is treated as a change of every row: the
            // read model may not show it yet, and the follower will not read it.
            None => (
                self.log.committed_head().await.map_err(|e| e.to_string())?,
                self.caches.iter().map(|_| Changed::Unknown).collect(),
                Next::Now,
            ),
            Some(from) => {
                // Only the events some cache follows are copied out of the shared page.
                let followed = |stream: &str| {
                    StreamCategory::of_stream(stream).is_some_and(|category| {
                        self.caches
                            .iter()
                            .any(|cache| cache.categories().contains(&category))
                    })
                };
                let page = self
                    .log
                    .read_all_where(from, BATCH, &followed)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(last) = page.last else {
                    return Ok(Next::AtNextAppend);
                };
                let changed: Vec<Changed> = self
                    .caches
                    .iter()
                    .map(|cache| concerned(&page.events, cache.categories()))
                    .collect();
                (last, changed, Next::after_page(page.read, BATCH))
            }
        };
        let mut stopping = self.shutdown.clone();
        for ((cache, queue), changed) in self.caches.iter().zip(&self.queues).zip(changed) {
            let changed = Arc::new(changed);
            cache.note_read(&changed, last);
            // A settler stops only when the process does; so does a full queue's wait.
            tokio::select! {
                sent = queue.send((last, changed)) => if sent.is_err() { return Ok(Next::Now) },
                _ = stopping.changed() => return Ok(Next::Now),
            }
        }
        *self.position.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
        Ok(next)
    }
}

/// Settles what the reader queued for `cache`: waits until its read model shows each batch
/// (taking every batch queued by then at once), then forgets what they changed.
async fn settle(
    cache: Arc<dyn Followed>,
    projections: Arc<ProjectionRunner>,
    mut queue: mpsc::Receiver<Read>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stopping = shutdown.clone();
    loop {
        let first = tokio::select! {
            read = queue.recv() => match read {
                Some(read) => read,
                None => return,
            },
            _ = stopping.changed() => return,
        };
        let mut batches = vec![first];
        while let Ok(read) = queue.try_recv() {
            batches.push(read);
        }
        let last = batches
            .last()
            .map_or(GlobalPosition(0), |(position, _)| *position);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match projections
                .wait_for(&[cache.read_model()], last, Duration::from_secs(5))
                .await
            {
                Ok(()) => break,
                // A lagging read model: keep waiting (the gate keeps the cache out of use).
                Err(ProjectionError::Lagging { .. }) => {}
                Err(error) => {
                    tracing::warn!(%error, "waiting for a read model to settle a read cache");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stopping.changed() => return,
                    }
                }
            }
        }
        for (position, changed) in &batches {
            cache.settled(changed, *position);
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
