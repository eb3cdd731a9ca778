//! Runs the followers of the log: projectors (one transaction per batch that also
//! advances the checkpoint) and reactors (checkpoint saved after each reaction), each in a
//! loop that waits for new events ([`crate::follow`]). Each follower names the stream
//! categories it reads; other events are neither decoded nor handed to it, and need no
//! write (see `crate::cursor`). What a follower implements is in [`crate::projector`]; rebuilds
//! live in [`crate::rebuild`], read-your-writes waits in [`crate::visibility`],
//! checkpoints in [`crate::checkpoints`].

use crate::Follower;
use crate::checkpoints::{advance_checkpoint, stored_checkpoint};
use crate::cursor::{Cursor, concerns};
use crate::follow::{Next, follow_log};
use crate::projector::decode_events;
pub use crate::projector::{ProjectionError, Projector, Reactor};
use crate::schema::Tables;
use domain::StreamCategory;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{Database, DecodedEvent, EventDecoder, EventLog, GlobalPosition};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Events per batch (and per transaction).
pub const BATCH_SIZE: usize = 500;

/// Events per reactor batch: reactions are slower than SQL.
const REACTOR_BATCH_SIZE: usize = 100;

enum Step {
    Idle,
    /// Read a batch (and applied what concerned it); `caught_up`: it was shorter than asked.
    Applied {
        caught_up: bool,
    },
    /// Another runner advanced the checkpoint first; this batch was rolled back.
    Lost,
}

/// What a follower's next batch holds for it.
struct Concerned {
    /// The events of its streams (none: the cursor has moved past the batch).
    events: Vec<store::RecordedEvent>,
    /// Its stored checkpoint.
    stored: GlobalPosition,
    /// The batch's last position.
    last: GlobalPosition,
    /// The batch was shorter than asked: it ends where the log ended for this read, so the
    /// follower waits for the next append rather than reading again to find nothing.
    caught_up: bool,
}

/// Runs a set of projectors against one log and one read-model database.
pub struct ProjectionRunner {
    pub(crate) db: Database,
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) decoder: Arc<dyn EventDecoder>,
    projectors: Vec<Arc<dyn Projector>>,
    pub(crate) reactors: Vec<Arc<dyn Reactor>>,
    pub(crate) progress: HashMap<Follower, watch::Sender<u64>>,
}

impl ProjectionRunner {
    /// A runner for `projectors`.
    pub fn new(
        db: Database,
        log: Arc<dyn EventLog>,
        decoder: Arc<dyn EventDecoder>,
        projectors: Vec<Arc<dyn Projector>>,
    ) -> Self {
        let progress = projectors
            .iter()
            .map(|p| (p.name(), watch::channel(0).0))
            .collect();
        Self {
            db,
            log,
            decoder,
            projectors,
            reactors: Vec::new(),
            progress,
        }
    }

    /// Also runs `reactors`, each from its own checkpoint.
    pub fn with_reactors(mut self, reactors: Vec<Arc<dyn Reactor>>) -> Self {
        for reactor in &reactors {
            self.progress.insert(reactor.name(), watch::channel(0).0);
        }
        self.reactors.extend(reactors);
        self
    }

    /// The names of the projections.
    pub fn names(&self) -> Vec<Follower> {
        self.projectors.iter().map(|p| p.name()).collect()
    }

    /// The names of the reactors.
    pub fn reactor_names(&self) -> Vec<Follower> {
        self.reactors.iter().map(|r| r.name()).collect()
    }

    pub(crate) fn projector(&self, name: Follower) -> Result<&Arc<dyn Projector>, ProjectionError> {
        self.projectors
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ProjectionError::UnknownProjection(name.key().to_owned()))
    }

    /// The projectors.
    pub(crate) fn projectors(&self) -> &[Arc<dyn Projector>] {
        &self.projectors
    }

    /// Whether a request of this process is waiting for `name` to apply a position
    /// (`crate::visibility`): only those waits subscribe to its progress.
    pub(crate) fn awaited(&self, name: Follower) -> bool {
        self.progress
            .get(&name)
            .is_some_and(|progress| progress.receiver_count() > 0)
    }

    pub(crate) fn publish(&self, name: Follower, position: GlobalPosition) {
        if let Some(progress) = self.progress.get(&name) {
            progress.send_if_modified(|seen| {
                let newer = position.0 > *seen;
                if newer {
                    *seen = position.0;
                }
                newer
            });
        }
    }

    /// How far a follower has got: its stored checkpoint, or further where this process's
    /// runner has read past events that do not concern it and not stored that yet.
    pub async fn position(&self, name: Follower) -> Result<GlobalPosition, ProjectionError> {
        let stored = self.checkpoint(name).await?;
        Ok(stored.max(self.applied(name)))
    }

    /// The stored checkpoint of a projection.
    pub async fn checkpoint(&self, name: Follower) -> Result<GlobalPosition, ProjectionError> {
        Ok(stored_checkpoint(&self.db, name).await?)
    }

    pub(crate) async fn decode_all(
        &self,
        batch: Vec<store::RecordedEvent>,
    ) -> Result<Vec<DecodedEvent>, ProjectionError> {
        decode_events(&*self.decoder, batch).await
    }

    /// The stored checkpoint of `name`, read into `cursor` if it has not been yet.
    async fn stored(
        &self,
        name: Follower,
        cursor: &mut Cursor,
    ) -> Result<GlobalPosition, ProjectionError> {
        if let Some(stored) = cursor.stored {
            return Ok(stored);
        }
        let stored = self.checkpoint(name).await?;
        cursor.stored(stored);
        self.publish(name, stored);
        Ok(stored)
    }

    /// Reads the batch after `cursor`; returns the events of it that concern `categories`
    /// (`None`: nothing new). When none concerns the follower, moves the cursor past them,
    /// storing it if due.
    async fn next_batch(
        &self,
        name: Follower,
        categories: &[StreamCategory],
        cursor: &mut Cursor,
        size: usize,
    ) -> Result<Option<Concerned>, ProjectionError> {
        let stored = self.stored(name, cursor).await?;
        // Only the events of its streams are copied out of a page the followers share.
        let page = self
            .log
            .read_all_where(cursor.read, size, &|stream| concerns(categories, stream))
            .await?;
        let caught_up = page.read < size;
        let Some(last) = page.last else {
            // Out of events: store how far it has read once that is due (the loop wakes
            // for it, `ProjectionRunner::run`), not at every append it reads past.
            if cursor.store_due() {
                self.store(name, cursor, stored).await?;
            }
            return Ok(None);
        };
        let events = page.events;
        if events.is_empty() {
            self.read_past(name, cursor, stored, last).await?;
        }
        Ok(Some(Concerned {
            events,
            stored,
            last,
            caught_up,
        }))
    }

    /// Moves the cursor past events up to `last` that need nothing of the follower: what
    /// it has read is published at once, and stored when that is due.
    async fn read_past(
        &self,
        name: Follower,
        cursor: &mut Cursor,
        stored: GlobalPosition,
        last: GlobalPosition,
    ) -> Result<(), ProjectionError> {
        cursor.read = last;
        self.publish(name, last);
        if cursor.store_due() {
            self.store(name, cursor, stored).await?;
        }
        Ok(())
    }

    /// Stores the cursor's read position as the checkpoint (moved from `stored`).
    async fn store(
        &self,
        name: Follower,
        cursor: &mut Cursor,
        stored: GlobalPosition,
    ) -> Result<(), ProjectionError> {
        let read = cursor.read;
        if self.advance(name, stored, read).await? {
            cursor.stored(read);
        } else {
            cursor.lost();
        }
        Ok(())
    }

    async fn step(
        &self,
        projector: &Arc<dyn Projector>,
        cursor: &mut Cursor,
    ) -> Result<Step, ProjectionError> {
        let name = projector.name();
        let Some(Concerned {
            events,
            stored,
            last,
            caught_up,
        }) = self
            .next_batch(name, projector.categories(), cursor, BATCH_SIZE)
            .await?
        else {
            return Ok(Step::Idle);
        };
        if events.is_empty() {
            return Ok(Step::Applied { caught_up });
        }
        let mut events = self.decode_all(events).await?;
        events.retain(|event| projector.concerns(event));
        if events.is_empty() {
            // Events of its streams that change none of its rows (a sign-in, for most of
            // the account stream's read models): no transaction.
            self.read_past(name, cursor, stored, last).await?;
            return Ok(Step::Applied { caught_up });
        }
        let tables = Tables::live(projector.tables());
        // A batch a request is waiting for (a read of its own write) goes ahead of the other
        // background writes, as the request's own write would.
        let mut w = if self.awaited(name) {
            self.db.begin_write().await?
        } else {
            self.db.begin_background_write().await?
        };
        // Advance the checkpoint first, guarded by its stored value: a second runner of the
        // same projection (another process) fails here and rolls back, so no event is
        // ever applied twice. Writing first also takes SQLite's write lock up front.
        if !advance_checkpoint(&mut w, name, stored, last).await? {
            cursor.lost();
            return Ok(Step::Lost);
        }
        projector.apply_batch(&mut w.tx, &tables, &events).await?;
        w.commit().await?;
        cursor.stored(last);
        self.publish(name, last);
        Ok(Step::Applied { caught_up })
    }

    /// Moves a checkpoint from `from` to `to` unless another runner moved it first.
    async fn advance(
        &self,
        name: Follower,
        from: GlobalPosition,
        to: GlobalPosition,
    ) -> Result<bool, ProjectionError> {
        let mut w = self.db.begin_background_write().await?;
        let advanced = advance_checkpoint(&mut w, name, from, to).await?;
        w.commit().await?;
        if advanced {
            self.publish(name, to);
        }
        Ok(advanced)
    }

    async fn react_step(
        &self,
        reactor: &Arc<dyn Reactor>,
        cursor: &mut Cursor,
    ) -> Result<Step, ProjectionError> {
        let name = reactor.name();
        let Some(Concerned {
            events,
            stored: mut checkpoint,
            last,
            caught_up,
        }) = self
            .next_batch(name, reactor.categories(), cursor, REACTOR_BATCH_SIZE)
            .await?
        else {
            return Ok(Step::Idle);
        };
        if events.is_empty() {
            return Ok(Step::Applied { caught_up });
        }
        for event in self.decode_all(events).await? {
            let acted = reactor
                .react(&event)
                .await
                .map_err(|e| ProjectionError::Reaction(e.to_string()))?;
            if acted {
                if !self
                    .advance(name, checkpoint, event.envelope.position)
                    .await?
                {
                    cursor.lost();
                    return Ok(Step::Lost);
                }
                checkpoint = event.envelope.position;
                cursor.stored(checkpoint);
            }
        }
        // The rest of the batch did not concern it (or needed nothing): stored when due.
        self.read_past(name, cursor, checkpoint, last).await?;
        Ok(Step::Applied { caught_up })
    }

    /// Applies (or reacts to) every event after the checkpoint of `name`, and stores the
    /// checkpoint at the end.
    pub async fn catch_up(&self, name: Follower) -> Result<(), ProjectionError> {
        let mut cursor = Cursor::new();
        while !matches!(self.step_any(name, &mut cursor).await?, Step::Idle) {}
        if let Some(stored) = cursor.stored.filter(|_| cursor.behind()) {
            self.store(name, &mut cursor, stored).await?;
        }
        Ok(())
    }

    /// Runs every projection until `shutdown` turns true.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let names = self.names().into_iter().chain(self.reactor_names());
        names
            .map(|name| {
                let runner = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { runner.run(name, shutdown).await })
            })
            .collect()
    }

    async fn step_any(&self, name: Follower, cursor: &mut Cursor) -> Result<Step, ProjectionError> {
        if let Some(reactor) = self.reactors.iter().find(|r| r.name() == name) {
            return self.react_step(reactor, cursor).await;
        }
        let projector = self.projector(name)?;
        self.step(projector, cursor).await
    }

    #[tracing::instrument(skip_all, fields(projection = %name))]
    async fn run(&self, name: Follower, shutdown: watch::Receiver<bool>) {
        let cursor = tokio::sync::Mutex::new(Cursor::new());
        follow_log(&self.log, shutdown, Duration::from_secs(30), || async {
            let mut cursor = cursor.lock().await;
            let step = self.step_any(name, &mut cursor).await;
            if step.is_err() {
                // Start again from the stored checkpoint.
                cursor.lost();
            }
            Ok::<_, ProjectionError>(match step? {
                Step::Idle | Step::Applied { caught_up: true } => cursor
                    .store_in()
                    .map_or(Next::AtNextAppend, Next::AtNextAppendOrAfter),
                Step::Applied { caught_up: false } | Step::Lost => Next::Now,
            })
        })
        .await;
    }
}
