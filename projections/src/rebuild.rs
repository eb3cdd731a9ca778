//! Creating read models and rebuilding them: a projector whose version changed (or whose
//! tables went missing) is replayed from position 0 into fresh tables while the live ones
//! keep serving, then the fresh tables are swapped in with the checkpoint, in one
//! transaction. While a batch is applied, a task of its own reads and decodes the next
//! pages (only the events of the projector's streams are decoded).

use crate::checkpoints::{lock_checkpoint, register_checkpoint, reset_checkpoint, stored_version};
use crate::cursor::concerning;
use crate::runner::BATCH_SIZE;
use crate::runner::decode_events;
use crate::schema::{Tables, create_statements, table_exists};
use crate::{Follower, ProjectionError, ProjectionRunner, Projector};
use domain::StreamCategory;
use std::sync::Arc;
use store::{Backend, DecodedEvent, EventDecoder, EventLog, GlobalPosition, RecordedEvent};
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
        let suffix = format!("__rb{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let shadow = Tables::shadow(projector.tables(), &suffix);
        let result = self.rebuild_into(&projector, &shadow).await;
        if result.is_err() {
            let mut w = self.db.begin_write().await?;
            for table in projector.tables() {
                sqlx::query(&format!("DROP TABLE IF EXISTS {}", shadow.get(table.name)))
                    .execute(&mut **w)
                    .await?;
            }
            w.commit().await?;
        }
        result
    }

    async fn rebuild_into(
        &self,
        projector: &Arc<dyn Projector>,
        shadow: &Tables,
    ) -> Result<RebuildReport, ProjectionError> {
        let name = projector.name();
        let mut w = self.db.begin_write().await?;
        for table in projector.tables() {
            for sql in create_statements(table, shadow.get(table.name)) {
                sqlx::query(&sql).execute(&mut **w).await?;
            }
        }
        w.commit().await?;

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
        let mut position = GlobalPosition::START;
        let mut count = 0u64;
        while let Some(page) = decoded.recv().await {
            if !page.events.is_empty() {
                let mut w = self.db.begin_write().await?;
                projector
                    .apply_batch(&mut w.tx, shadow, &page.events)
                    .await?;
                w.commit().await?;
            }
            count += page.read;
            position = page.last;
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
