//! Runs projectors: batches from the log, one transaction per batch that also advances
//! the checkpoint, waiting for new events, rebuilds, and read-your-writes waits.

use crate::schema::{Table, Tables, create_statements, table_exists};
use async_trait::async_trait;
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::{Backend, Database, DecodedEvent, EventDecoder, EventLog, GlobalPosition, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Events per batch (and per transaction).
pub const BATCH_SIZE: usize = 500;

/// Folds events into the tables it owns.
#[async_trait]
pub trait Projector: Send + Sync {
    /// Unique and stable: the checkpoint's key and the name `accounts rebuild` takes.
    fn name(&self) -> &'static str;
    /// Bumped whenever the tables or the folding change; a new version rebuilds at start.
    fn version(&self) -> i32;
    /// The tables it owns.
    fn tables(&self) -> &'static [Table];
    /// Applies one event inside the batch's transaction. Must ignore events it does not
    /// care about, including erased and unknown ones.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &DecodedEvent,
    ) -> Result<(), sqlx::Error>;
}

/// Reacts to events with side effects (commands, messages) instead of SQL rows: a process
/// manager. Delivery is at least once, so reactions must be idempotent.
#[async_trait]
pub trait Reactor: Send + Sync {
    /// Unique and stable: the checkpoint's key.
    fn name(&self) -> &'static str;
    /// Handles one event; returns whether it did anything (its checkpoint is then saved at
    /// once, so a restart does not redo it).
    async fn react(
        &self,
        event: &DecodedEvent,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>>;
}

/// The stored checkpoint `name` (of a projection, reactor or other subscriber of the log);
/// the start of the log if there is none.
pub async fn stored_checkpoint(db: &Database, name: &str) -> Result<GlobalPosition, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    Ok(GlobalPosition(position.unwrap_or(0) as u64))
}

/// Moves checkpoint `name` from `from` to `to` inside `conn`'s transaction, unless another
/// runner moved it first (then `false`, and the caller rolls back): the guard that lets
/// several processes run the same subscriber without applying an event twice.
pub async fn advance_checkpoint(
    conn: &mut AnyConnection,
    name: &str,
    from: GlobalPosition,
    to: GlobalPosition,
) -> Result<bool, sqlx::Error> {
    let advanced = sqlx::query(
        "UPDATE projection_checkpoints SET position = $1, updated_at = $2 \
         WHERE name = $3 AND position = $4",
    )
    .bind(to.0 as i64)
    .bind(now_micros())
    .bind(name)
    .bind(from.0 as i64)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(advanced == 1)
}

/// Calls `step` until `shutdown` turns true: again at once while it reports work done
/// (`Ok(true)`), at the log's next append once it is idle (`Ok(false)`), and after a
/// backoff growing up to `max_backoff` while it fails. Every follower of the log (the
/// projections, the reactors, the notifier) runs in this loop.
pub async fn follow_log<F, Fut, E>(
    log: &Arc<dyn EventLog>,
    mut shutdown: watch::Receiver<bool>,
    max_backoff: Duration,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
    E: std::fmt::Display,
{
    let mut watch = log.watch();
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        watch.mark_seen();
        match step().await {
            Ok(true) => backoff = Duration::from_millis(100),
            Ok(false) => {
                tokio::select! {
                    () = watch.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

/// Events per reactor batch: reactions are slower than SQL.
const REACTOR_BATCH_SIZE: usize = 100;

/// Why a projection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read-model database failed.
    #[error("read model database: {0}")]
    Database(#[from] sqlx::Error),
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event could not be decoded.
    #[error("decoding an event: {0}")]
    Decode(String),
    /// A reactor failed.
    #[error("reaction failed: {0}")]
    Reaction(String),
    /// No projector has this name.
    #[error("no projection is called {0:?}")]
    UnknownProjection(String),
    /// The projection did not reach the position in time.
    #[error("projection {name} has not reached position {position} yet")]
    Lagging {
        /// The projection.
        name: &'static str,
        /// The position waited for.
        position: GlobalPosition,
    },
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    /// The projection.
    pub name: &'static str,
    /// Events read from the log.
    pub events: u64,
    /// The checkpoint it ended at.
    pub position: GlobalPosition,
}

enum Step {
    Idle,
    Applied,
    /// Another runner advanced the checkpoint first; this batch was rolled back.
    Lost,
}

/// Runs a set of projectors against one log and one read-model database.
pub struct ProjectionRunner {
    db: Database,
    log: Arc<dyn EventLog>,
    decoder: Arc<dyn EventDecoder>,
    projectors: Vec<Arc<dyn Projector>>,
    reactors: Vec<Arc<dyn Reactor>>,
    progress: HashMap<&'static str, watch::Sender<u64>>,
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
    pub fn names(&self) -> Vec<&'static str> {
        self.projectors.iter().map(|p| p.name()).collect()
    }

    /// The names of the reactors.
    pub fn reactor_names(&self) -> Vec<&'static str> {
        self.reactors.iter().map(|r| r.name()).collect()
    }

    fn projector(&self, name: &str) -> Result<&Arc<dyn Projector>, ProjectionError> {
        self.projectors
            .iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))
    }

    fn publish(&self, name: &str, position: GlobalPosition) {
        if let Some(progress) = self.progress.get(name) {
            progress.send_if_modified(|seen| {
                let newer = position.0 > *seen;
                if newer {
                    *seen = position.0;
                }
                newer
            });
        }
    }

    /// The stored checkpoint of a projection.
    pub async fn checkpoint(&self, name: &str) -> Result<GlobalPosition, ProjectionError> {
        Ok(stored_checkpoint(&self.db, name).await?)
    }

    /// Creates the tables and checkpoints of new projections, and rebuilds those whose
    /// version changed (or whose tables went missing).
    #[tracing::instrument(skip_all)]
    pub async fn prepare(&self) -> Result<(), ProjectionError> {
        for reactor in &self.reactors {
            let mut w = self.db.begin_write().await?;
            sqlx::query(
                "INSERT INTO projection_checkpoints (name, position, version, updated_at) \
                 VALUES ($1, 0, 1, $2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(reactor.name())
            .bind(now_micros())
            .execute(&mut **w)
            .await?;
            w.commit().await?;
            self.publish(reactor.name(), self.checkpoint(reactor.name()).await?);
        }
        for projector in &self.projectors {
            let name = projector.name();
            let version: Option<i32> =
                sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.db.pool())
                    .await?;
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
                    sqlx::query(
                        "INSERT INTO projection_checkpoints (name, position, version, updated_at) \
                         VALUES ($1, 0, $2, $3)",
                    )
                    .bind(name)
                    .bind(projector.version())
                    .bind(now_micros())
                    .execute(&mut **w)
                    .await?;
                    w.commit().await?;
                    tracing::info!(projection = name, "created read model");
                }
                _ => {
                    tracing::info!(projection = name, "read model out of date; rebuilding");
                    self.rebuild(name).await?;
                }
            }
        }
        Ok(())
    }

    async fn decode_all(
        &self,
        batch: Vec<store::RecordedEvent>,
    ) -> Result<Vec<DecodedEvent>, ProjectionError> {
        let mut decoded = Vec::with_capacity(batch.len());
        for event in batch {
            decoded.push(
                self.decoder
                    .decode_event(event)
                    .await
                    .map_err(|e| ProjectionError::Decode(e.to_string()))?,
            );
        }
        Ok(decoded)
    }

    async fn step(&self, projector: &Arc<dyn Projector>) -> Result<Step, ProjectionError> {
        let name = projector.name();
        let checkpoint = self.checkpoint(name).await?;
        self.publish(name, checkpoint);
        let batch = self.log.read_all(checkpoint, BATCH_SIZE).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(Step::Idle);
        };
        let events = self.decode_all(batch).await?;
        let tables = Tables::live(projector.tables());
        let mut w = self.db.begin_write().await?;
        // Advance the checkpoint first, guarded by its old value: a second runner of the
        // same projection (another process) fails here and rolls back, so no event is
        // ever applied twice. Writing first also takes SQLite's write lock up front.
        if !advance_checkpoint(&mut w, name, checkpoint, last).await? {
            return Ok(Step::Lost);
        }
        for event in &events {
            projector.apply(&mut w.tx, &tables, event).await?;
        }
        w.commit().await?;
        self.publish(name, last);
        Ok(Step::Applied)
    }

    /// Moves a checkpoint from `from` to `to` unless another runner moved it first.
    async fn advance(
        &self,
        name: &str,
        from: GlobalPosition,
        to: GlobalPosition,
    ) -> Result<bool, ProjectionError> {
        let mut w = self.db.begin_write().await?;
        let advanced = advance_checkpoint(&mut w, name, from, to).await?;
        w.commit().await?;
        if advanced {
            self.publish(name, to);
        }
        Ok(advanced)
    }

    async fn react_step(&self, reactor: &Arc<dyn Reactor>) -> Result<Step, ProjectionError> {
        let name = reactor.name();
        let mut checkpoint = self.checkpoint(name).await?;
        self.publish(name, checkpoint);
        let batch = self.log.read_all(checkpoint, REACTOR_BATCH_SIZE).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(Step::Idle);
        };
        for event in self.decode_all(batch).await? {
            let acted = reactor
                .react(&event)
                .await
                .map_err(|e| ProjectionError::Reaction(e.to_string()))?;
            if acted {
                if !self
                    .advance(name, checkpoint, event.envelope.position)
                    .await?
                {
                    return Ok(Step::Lost);
                }
                checkpoint = event.envelope.position;
            }
        }
        if checkpoint != last && !self.advance(name, checkpoint, last).await? {
            return Ok(Step::Lost);
        }
        Ok(Step::Applied)
    }

    /// Applies (or reacts to) every event after the checkpoint of `name`.
    pub async fn catch_up(&self, name: &str) -> Result<(), ProjectionError> {
        if let Some(reactor) = self.reactors.iter().find(|r| r.name() == name).cloned() {
            while !matches!(self.react_step(&reactor).await?, Step::Idle) {}
            return Ok(());
        }
        let projector = self.projector(name)?.clone();
        while !matches!(self.step(&projector).await?, Step::Idle) {}
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

    async fn step_any(&self, name: &str) -> Result<Step, ProjectionError> {
        if let Some(reactor) = self.reactors.iter().find(|r| r.name() == name) {
            return self.react_step(reactor).await;
        }
        let projector = self.projector(name)?;
        self.step(projector).await
    }

    #[tracing::instrument(skip_all, fields(projection = name))]
    async fn run(&self, name: &'static str, shutdown: watch::Receiver<bool>) {
        follow_log(&self.log, shutdown, Duration::from_secs(30), || async {
            Ok::<_, ProjectionError>(!matches!(self.step_any(name).await?, Step::Idle))
        })
        .await;
    }

    /// Waits until every projection in `names` has applied `position`.
    pub async fn wait_for(
        &self,
        names: &[&'static str],
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let deadline = Instant::now() + timeout;
        for name in names {
            let progress = self
                .progress
                .get(name)
                .ok_or_else(|| ProjectionError::UnknownProjection((*name).to_owned()))?;
            let mut seen = progress.subscribe();
            loop {
                if *seen.borrow_and_update() >= position.0 {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ProjectionError::Lagging { name, position });
                }
                // The runner of this process announces progress at once; a runner in another
                // process is only seen in the checkpoint table, looked at now and then.
                tokio::select! {
                    _ = seen.changed() => {}
                    () = tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(200))) => {
                        let stored = self.checkpoint(name).await?;
                        self.publish(name, stored);
                    }
                }
            }
        }
        Ok(())
    }

    /// Replays the projection from position 0 into fresh tables while the live ones keep
    /// serving, then swaps them in and moves the checkpoint, in one transaction.
    #[tracing::instrument(skip_all, fields(projection = name))]
    pub async fn rebuild(&self, name: &str) -> Result<RebuildReport, ProjectionError> {
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
        let mut position = GlobalPosition::START;
        let mut count = 0u64;
        loop {
            let batch = self.log.read_all(position, BATCH_SIZE).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            let events = self.decode_all(batch).await?;
            let mut w = self.db.begin_write().await?;
            for event in &events {
                projector.apply(&mut w.tx, shadow, event).await?;
            }
            w.commit().await?;
            count += events.len() as u64;
            position = last;
        }

        // Swap: hold the checkpoint row so the live runner cannot commit a batch meanwhile,
        // apply what arrived since, then put the new tables in place of the old.
        let mut w = self.db.begin_write().await?;
        if self.db.backend() == Backend::Postgres {
            sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut **w)
                .await?;
        }
        loop {
            let batch = self.log.read_all(position, BATCH_SIZE).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            for event in &self.decode_all(batch).await? {
                projector.apply(&mut w.tx, shadow, event).await?;
                count += 1;
            }
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
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, position, version, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             version = excluded.version, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(position.0 as i64)
        .bind(projector.version())
        .bind(now_micros())
        .execute(&mut **w)
        .await?;
        w.commit().await?;
        // The swap may move the checkpoint backwards relative to what was published.
        if let Some(progress) = self.progress.get(name) {
            progress.send_replace(position.0);
        }
        tracing::info!(projection = name, events = count, %position, "rebuilt");
        Ok(RebuildReport {
            name,
            events: count,
            position,
        })
    }
}

fn now_micros() -> i64 {
    domain::Timestamp::from_datetime(time_now()).unix_micros()
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}
