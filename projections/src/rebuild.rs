//! Creating read models and rebuilding them: a projector whose version changed (or whose
//! tables went missing) is replayed from position 0 into fresh tables while the live ones
//! keep serving, then the fresh tables are swapped in with the checkpoint, in one
//! transaction. While a batch is applied, a task of its own reads and decodes the next
//! pages (only the events of the projector's streams are decoded). Tables a rebuild that
//! died left behind are dropped by the next rebuild or start ([`sweep`]).

mod sweep;

pub use sweep::{STALE_AFTER_SECS, sweep};

use crate::checkpoints::{lock_checkpoint, register_checkpoint, reset_checkpoint, stored_version};
use crate::cursor::concerning;
use crate::projector::decode_events;
use crate::runner::BATCH_SIZE;
use crate::schema::{Tables, create_statements, table_exists};
use crate::{Follower, ProjectionError, ProjectionRunner, Projector};
use domain::StreamCategory;
use std::sync::Arc;
use store::{
    Backend, Database, DecodedEvent, EventDecoder, EventLog, GlobalPosition, RecordedEvent,
};
use tokio::sync::mpsc;

/// Events per page read, and per transaction, while rebuilding: larger than the live
/// runner's batches, since a rebuild has the whole log to read and nobody waits on a batch.
pub const REBUILD_BATCH_SIZE: usize = 4 * BATCH_SIZE;

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// The projection.
    pub name: Follower,
    /// Events read from the log.
    pub events: u64,
    /// The checkpoint it ended at.
    pub position: GlobalPosition,
}

impl ProjectionRunner {
    /// Creates the tables and checkpoints of new projections, and rebuilds those whose
    /// version changed (or whose tables went missing).
    #[tracing::instrument(skip_all)]
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        sweep(&self.db).await?;
        for reactor in &self.reactors {
            let mut w = self.db.begin_write().await?;
            register_checkpoint(&mut w, reactor.name(), GlobalPosition::START, 1).await?;
            w.commit().await?;
            self.publish(reactor.name(), self.checkpoint(reactor.name()).await?);
        }
        for projector in self.projectors() {
            let name = projector.name();
            let version = stored_version(&self.db, name).await?;
            let mut missing = Vec::new();
            for table in projector.tables() {
                if !table_exists(&self.db, table.name).await? {
                    missing.push(*table);
                }
            }
            match version {
                Some(v) if v == projector.version() && missing.is_empty() => {
                    self.publish(name, self.checkpoint(name).await?);
                }
                None if missing.len() == projector.tables().len() => {
                    let mut w = self.db.begin_write().await?;
                    for table in projector.tables() {
                        for sql in create_statements(table, table.name) {
                            sqlx::query(&sql).execute(&mut **w).await?;
                        }
                    }
                    register_checkpoint(&mut w, name, GlobalPosition::START, projector.version())
                        .await?;
                    w.commit().await?;
                    tracing::info!(projection = %name, "created read model");
                }
                _ => {
                    tracing::info!(projection = %name, "read model out of date; rebuilding");
                    self.rebuild(name).await?;
                }
            }
        }
        Ok(())
    }

    /// Replays the projection from position 0 into fresh tables while the live ones keep
    /// serving, then swaps them in and moves the checkpoint, in one transaction.
    #[tracing::instrument(skip_all, fields(projection = %name))]
    pub async fn rebuild(&self, name: Follower) -> Result<RebuildReport, ProjectionError> {
        let projector = self.projector(name)?.clone();
        sweep(&self.db).await?;
        let suffix = format!(
            "{}{}",
            sweep::SUFFIX_PREFIX,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let shadow = Tables::shadow(projector.tables(), &suffix);
        let result = self.rebuild_into(&projector, &suffix, &shadow).await;
        if result.is_err() {
            // Should this fail too, the heartbeat has stopped: a later sweep drops them.
            let mut w = self.db.begin_write().await?;
            for table in projector.tables() {
                sqlx::query(&format!("DROP TABLE IF EXISTS {}", shadow.get(table.name)))
                    .execute(&mut **w)
                    .await?;
            }
            sweep::forget(&mut w, &suffix).await?;
            w.commit().await?;
        }
        result
    }

    async fn rebuild_into(
        &self,
        projector: &Arc<dyn Projector>,
        suffix: &str,
        shadow: &Tables,
    ) -> Result<RebuildReport, ProjectionError> {
        let name = projector.name();
        let mut w = self.db.begin_write().await?;
        let mut fresh = Vec::new();
        for table in projector.tables() {
            fresh.push(shadow.get(table.name));
            for sql in create_statements(table, shadow.get(table.name)) {
                sqlx::query(&sql).execute(&mut **w).await?;
            }
        }
        sweep::register(&mut w, suffix, name, &fresh).await?;
        w.commit().await?;
        let _alive = sweep::keep_alive(self.db.clone(), suffix.to_owned());

        // Replay in batches of their own, so the live tables keep serving meanwhile.
        let (pages, mut decoded) = mpsc::channel(2);
        let reader = tokio::spawn(read_pages(
            self.log.clone(),
            self.decoder.clone(),
            projector.categories(),
            pages,
        ));
        // Stops the reader if a batch fails.
        let _reader = AbortOnDrop(reader.abort_handle());
        let writers = if projector.streams_independent() && self.db.backend() == Backend::Postgres {
            REBUILD_WRITERS
        } else {
            1
        };
        let lanes: Vec<Lane> = (0..writers)
            .map(|_| Lane::start(self.db.clone(), projector.clone(), shadow.clone()))
            .collect();
        let mut position = GlobalPosition::START;
        let mut count = 0u64;
        'pages: while let Some(page) = decoded.recv().await {
            for (lane, events) in lanes.iter().zip(split(page.events, writers)) {
                if !events.is_empty() && lane.events.send(events).await.is_err() {
                    // The lane stopped on an error, which waiting for it reports.
                    break 'pages;
                }
            }
            count += page.read;
            position = page.last;
        }
        for lane in lanes {
            lane.finish().await?;
        }
        reader
            .await
            .map_err(|e| ProjectionError::Decode(format!("the rebuild's reader stopped: {e}")))??;

        // Swap: hold the checkpoint row so the live runner cannot commit a batch meanwhile,
        // apply what arrived since, then put the new tables in place of the old.
        let mut w = self.db.begin_write().await?;
        if self.db.backend() == Backend::Postgres {
            lock_checkpoint(&mut w, name).await?;
        }
        loop {
            let batch = self.log.read_all(position, REBUILD_BATCH_SIZE).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            let page = decode_page(&*self.decoder, projector.categories(), batch, last).await?;
            projector
                .apply_batch(&mut w.tx, shadow, &page.events)
                .await?;
            count += page.read;
            position = last;
        }
        for table in projector.tables() {
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", table.name))
                .execute(&mut **w)
                .await?;
            sqlx::query(&format!(
                "ALTER TABLE {} RENAME TO {}",
                shadow.get(table.name),
                table.name
            ))
            .execute(&mut **w)
            .await?;
        }
        reset_checkpoint(&mut w, name, position, projector.version()).await?;
        sweep::forget(&mut w, suffix).await?;
        w.commit().await?;
        // The swap may move the checkpoint backwards relative to what was published.
        if let Some(progress) = self.progress.get(&name) {
            progress.send_replace(position.0);
        }
        tracing::info!(projection = %name, events = count, %position, "rebuilt");
        Ok(RebuildReport {
            name,
            events: count,
            position,
        })
    }
}

/// Writers a rebuild runs at once when its projector's streams are independent
/// ([`Projector::streams_independent`]) and the database takes concurrent writers
/// (PostgreSQL): one folds and encodes a batch while the server writes another's.
const REBUILD_WRITERS: usize = 2;

/// One of a rebuild's writers: applies the batches it is sent, in order, each in its own
/// transaction.
struct Lane {
    events: mpsc::Sender<Vec<DecodedEvent>>,
    task: tokio::task::JoinHandle<Result<(), ProjectionError>>,
    /// Stops the writer if the rebuild gives up on another error.
    _abort: AbortOnDrop,
}

impl Lane {
    fn start(db: Database, projector: Arc<dyn Projector>, shadow: Tables) -> Self {
        let (events, mut batches) = mpsc::channel::<Vec<DecodedEvent>>(2);
        let task = tokio::spawn(async move {
            while let Some(events) = batches.recv().await {
                let mut w = db.begin_background_write().await?;
                if db.backend() == Backend::Postgres {
                    // Fresh tables nobody reads yet: a crash loses the rebuild either way,
                    // so its batches need not wait for the WAL to reach the disk. The swap
                    // commits durably, and flushing its commit flushes every batch's.
                    sqlx::query("SET LOCAL synchronous_commit = off")
                        .execute(&mut **w)
                        .await?;
                }
                projector.apply_batch(&mut w.tx, &shadow, &events).await?;
                w.commit().await?;
            }
            Ok(())
        });
        let abort = AbortOnDrop(task.abort_handle());
        Self {
            events,
            task,
            _abort: abort,
        }
    }

    /// Waits for the batches sent so far to be applied.
    async fn finish(self) -> Result<(), ProjectionError> {
        let Self { events, task, .. } = self;
        drop(events);
        task.await
            .map_err(|e| ProjectionError::Decode(format!("a rebuild writer stopped: {e}")))?
    }
}

/// `events` in `lanes` parts, each stream's events in one part and in their order.
fn split(events: Vec<DecodedEvent>, lanes: usize) -> Vec<Vec<DecodedEvent>> {
    if lanes == 1 {
        return vec![events];
    }
    let mut parts: Vec<Vec<DecodedEvent>> = (0..lanes).map(|_| Vec::new()).collect();
    for event in events {
        parts[store::shard(&event.envelope.stream, lanes)].push(event);
    }
    parts
}

/// A page of the log, decoded for one projector.
struct Page {
    /// The events of the projector's streams.
    events: Vec<DecodedEvent>,
    /// How many events the page held.
    read: u64,
    /// Its last position.
    last: GlobalPosition,
}

/// Reads the whole log into `pages`, decoding the events of `categories`, until the end of
/// the log or until nobody receives.
async fn read_pages(
    log: Arc<dyn EventLog>,
    decoder: Arc<dyn EventDecoder>,
    categories: &'static [StreamCategory],
    pages: mpsc::Sender<Page>,
) -> Result<(), ProjectionError> {
    let mut position = GlobalPosition::START;
    loop {
        let batch = log.read_all(position, REBUILD_BATCH_SIZE).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(());
        };
        let page = decode_page(&*decoder, categories, batch, last).await?;
        if pages.send(page).await.is_err() {
            return Ok(());
        }
        position = last;
    }
}

/// The page `batch` (ending at `last`), its events of `categories` decoded.
async fn decode_page(
    decoder: &dyn EventDecoder,
    categories: &[StreamCategory],
    batch: Vec<RecordedEvent>,
    last: GlobalPosition,
) -> Result<Page, ProjectionError> {
    let read = batch.len() as u64;
    let events = decode_events(decoder, concerning(categories, batch)).await?;
    Ok(Page { events, read, last })
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Timestamp;
    use store::{Actor, EventEnvelope, Metadata, Payload};

    fn event(stream: &str, position: u64) -> DecodedEvent {
        DecodedEvent {
            envelope: EventEnvelope {
                position: GlobalPosition(position),
                stream: stream.to_owned(),
                revision: 0,
                event_id: uuid::Uuid::nil(),
                event_type: "Test".into(),
                metadata: Metadata {
                    correlation_id: uuid::Uuid::nil(),
                    causation_id: None,
                    actor: Actor::Anonymous,
                    occurred_at: Timestamp::from_unix_micros(0),
                    idempotency_key: None,
                    data_subject: None,
                },
                recorded_at: Timestamp::from_unix_micros(0),
            },
            payload: Payload::Unknown,
        }
    }

    #[test]
    fn split_keeps_each_stream_whole_and_in_order_and_uses_every_lane() {
        let events: Vec<DecodedEvent> = (0..400)
            .map(|n| event(&format!("credits-{}", n % 40), n))
            .collect();
        let parts = split(events.clone(), REBUILD_WRITERS);
        assert_eq!(parts.len(), REBUILD_WRITERS);
        assert!(
            parts.iter().all(|part| !part.is_empty()),
            "40 streams, every lane"
        );
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), events.len());
        for part in &parts {
            assert!(
                part.windows(2)
                    .all(|w| w[0].envelope.position < w[1].envelope.position)
            );
        }
        for n in 0..40 {
            let stream = format!("credits-{n}");
            let holding = parts
                .iter()
                .filter(|part| part.iter().any(|e| e.envelope.stream == stream))
                .count();
            assert_eq!(holding, 1, "{stream} is in one lane");
        }
        assert_eq!(split(events.clone(), 1), vec![events]);
    }
}
