//! The command loop every handler uses: load the stream, decide, append with the expected
//! revision, and on a conflict reload and decide again, a bounded number of times. Commands
//! queued on one stream in this process are decided one after another against the state
//! the previous one left and committed together (`batch`); a long stream's cold load
//! starts from its snapshot ([`store::SnapshotStore`]) when its aggregate keeps one. Each
//! command's duration, conflicts, retries and append size are recorded
//! ([`crate::metrics`]).

mod batch;
mod context;
mod memory;
mod snapshots;

pub use context::CommandContext;

use crate::codec::EventCodec;
use crate::error::CommandError;
use crate::metrics::{
    APPEND_BATCH_SIZE, COMMAND_CONFLICTS, COMMAND_DURATION, COMMAND_RETRIES, COMMANDS_PER_APPEND,
    command_name,
};
use batch::{Batch, Batches, Outcome, Tip};
use domain::{Aggregate, DomainEvent, Timestamp};
use memory::{Cached, typed};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Payload;
use store::{EventLog, ExpectedRevision, GlobalPosition, SnapshotStore, StoreError};
use uuid::Uuid;

/// Attempts before a command gives up with [`CommandError::Contention`].
pub const MAX_ATTEMPTS: u32 = 8;

/// A stream's state and the revision to append after.
#[derive(Debug)]
pub struct Loaded<A> {
    /// The folded state.
    pub state: A,
    /// What an append must expect.
    pub expected: ExpectedRevision,
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    /// The state after the new events.
    pub state: A,
    /// The events appended (empty: nothing needed doing).
    pub events: Vec<A::Event>,
    /// Where the last event was committed, for read-your-writes.
    pub position: Option<GlobalPosition>,
}

/// In-process queues for commands on the same stream.
const STREAM_LOCKS: usize = 1_024;
/// Events between two snapshots of a stream whose aggregate keeps them.
pub const SNAPSHOT_EVERY: u64 = 1_000;

/// Loads aggregates and runs commands against the log.
///
/// Three things keep hot and long streams cheap. The folded state of recently used streams
/// is cached with the number of events it covers, and a command decides on it without
/// reading the stream: its append's expected revision checks that no other process
/// appended since (a refused append, or a refusal or no-op, which no append checks, reads
/// the events appended since and decides again). Commands on the same stream queue behind
/// each other within this process, so they do not race to the same revision, and those
/// that queued while a commit was under way are appended together by the next one; the
/// expected revision still settles races between processes. And with a [`SnapshotStore`], aggregates that keep snapshots are
/// saved every [`SNAPSHOT_EVERY`] events, so a cold load reads the snapshot and the tail.
#[derive(Clone)]
pub struct Executor {
    log: Arc<dyn EventLog>,
    codec: EventCodec,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
    batches: Arc<Batches>,
    snapshots: Option<SnapshotStore>,
    conflicts: Arc<AtomicU64>,
}

impl Executor {
    /// Runs commands against `log`, encoding with `codec`.
    pub fn new(log: Arc<dyn EventLog>, codec: EventCodec) -> Self {
        Self {
            log,
            codec,
            cache: Arc::new(Mutex::new(HashMap::new())),
            locks: Arc::new(
                (0..STREAM_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
            batches: Arc::new(Batches::default()),
            snapshots: None,
            conflicts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Keeps snapshots of the aggregates that opt in ([`Aggregate::SNAPSHOT_VERSION`]) in
    /// `snapshots`, and starts their cold loads there.
    pub fn with_snapshots(mut self, snapshots: SnapshotStore) -> Self {
        self.snapshots = Some(snapshots);
        self
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// The codec.
    pub fn codec(&self) -> &EventCodec {
        &self.codec
    }

    /// How many appends were refused for a concurrent change (and retried) so far.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Commands on `stream` decided and waiting to be committed together once the commit
    /// under way ends (0 when the stream is idle or its commands commit one at a time).
    pub fn queued_commands(&self, stream: &str) -> usize {
        self.batches.queued(stream)
    }

    /// Folds a stream into its aggregate. Events whose personal data was erased are
    /// skipped: only erased accounts have them.
    #[tracing::instrument(skip_all, fields(stream))]
    pub async fn load<A>(&self, stream: &str) -> Result<Loaded<A>, CommandError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Event: TryFrom<DomainEvent>,
    {
        let (mut state, mut count) = match self.cached::<A>(stream) {
            Some(cached) => cached,
            None => self.load_snapshot::<A>(stream).await.unwrap_or_default(),
        };
        let recorded = self.log.read_stream_from(stream, count).await?;
        let folded = !recorded.is_empty();
        for event in recorded {
            count += 1;
            if let Payload::Event(event) = self.codec.decode(event).await?.payload
                && let Ok(event) = A::Event::try_from(event)
            {
                state.evolve(&event);
            }
        }
        if folded {
            self.remember(stream, &state, count);
        }
        Ok(Loaded {
            state,
            expected: ExpectedRevision::after(count),
        })
    }

    /// Runs `decide` against the current state of `stream` and appends what it returns,
    /// retrying on a concurrent change. `subject` is the account whose key seals personal
    /// fields.
    pub async fn execute<A, F>(
        &self,
        stream: &str,
        ctx: &CommandContext,
        subject: Option<Uuid>,
        at: Timestamp,
        decide: F,
    ) -> Result<Executed<A>, CommandError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Event: TryFrom<DomainEvent> + Into<DomainEvent> + Clone,
        F: FnMut(&A) -> Result<Vec<A::Event>, CommandError>,
    {
        let started = Instant::now();
        let command = command_name(std::any::type_name::<A>(), std::any::type_name::<F>());
        // Boxed: the command loop's state (the decided state, the batch, the retries) would
        // otherwise be inlined into every handler's future, and those nest deeply.
        let outcome = Box::pin(self.run_command(stream, ctx, subject, at, decide, &command)).await;
        metrics::histogram!(COMMAND_DURATION, "command" => command).record(started.elapsed());
        outcome
    }

    async fn run_command<A, F>(
        &self,
        stream: &str,
        ctx: &CommandContext,
        subject: Option<Uuid>,
        at: Timestamp,
        mut decide: F,
        command: &str,
    ) -> Result<Executed<A>, CommandError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Event: TryFrom<DomainEvent> + Into<DomainEvent> + Clone,
        F: FnMut(&A) -> Result<Vec<A::Event>, CommandError>,
    {
        let stripe = store::shard(stream, STREAM_LOCKS);
        let mut attempt = 0;
        // Whether to decide on what this process last saw of the stream without reading
        // its tail first: true until the log shows it moved on without this process.
        let mut trust_memory = true;
        loop {
            attempt += 1;
            // Deciding is one at a time per stream; committing is not (see `batch`).
            let queued = self.locks[stripe].lock().await;
            let (tip, pending) = self.batches.tip_and_pending(stream);
            let tip = tip.and_then(|tip| typed::<A>(tip));
            let remembered = match tip {
                Some(tip) => Some((tip, false)),
                None if trust_memory => self.remembered::<A>(stream).map(|known| (known, true)),
                None => None,
            };
            let (decided_on, state, count, unread) = match remembered {
                Some(((decided_on, state, count), unread)) => (decided_on, state, count, unread),
                None => {
                    let loaded = self.load::<A>(stream).await?;
                    (None, loaded.state, events_before(loaded.expected), false)
                }
            };
            let events = match decide(&state) {
                Ok(events) if !events.is_empty() => events,
                // Nothing to append, or refused: an answer that no append will check, so
                // it is given only on the stream as the log has it (another node may have
                // appended): read what this process has not seen, and decide again.
                _ if unread => {
                    drop(queued);
                    trust_memory = false;
                    attempt -= 1;
                    continue;
                }
                answer => {
                    // Nothing to append, or refused: either way the answer rests on the
                    // events decided before it here, so it stands only once they commit
                    // (`pending` was read with the tip: the batch may have finished since).
                    drop(queued);
                    if let Some(pending) = pending {
                        match pending.outcome().await {
                            Outcome::Committed(_) => {}
                            Outcome::Conflict => {
                                self.conflicted(stream, attempt, command).await?;
                                continue;
                            }
                            Outcome::Failed(error) => return Err(shared(&error).into()),
                        }
                    }
                    return answer.map(|events| Executed {
                        state,
                        events,
                        position: None,
                    });
                }
            };
            let mut encoded = Vec::with_capacity(events.len());
            for event in &events {
                let event: DomainEvent = event.clone().into();
                let metadata = ctx.metadata(subject, at);
                encoded.push(
                    self.codec
                        .encode(stream, Uuid::now_v7(), &event, metadata)
                        .await?,
                );
            }
            let mut state = state;
            for event in &events {
                state.evolve(event);
            }
            let after = count + events.len() as u64;
            let tip = Tip {
                state: Arc::new(state.clone()),
                count: after,
            };
            let Some(joined) = self
                .batches
                .join(stream, decided_on.as_ref(), count, encoded, tip)
            else {
                // An earlier batch was refused while this command decided on top of it.
                drop(queued);
                trust_memory = false;
                self.conflicted(stream, attempt, command).await?;
                continue;
            };
            drop(queued);
            if joined.leader {
                let (exec, stream, batch) = (self.clone(), stream.to_owned(), joined.batch.clone());
                // Its own task, so that a caller who stops waiting (a client hung up)
                // cannot strand the other commands of the batch.
                tokio::spawn(async move { exec.commit(&stream, &batch).await });
            }
            match joined.batch.outcome().await {
                Outcome::Committed(positions) => {
                    self.snapshot_if_due(stream, &state, count, after);
                    let position = positions
                        .get(joined.range.end - 1)
                        .or(positions.last())
                        .copied();
                    return Ok(Executed {
                        state,
                        events,
                        position,
                    });
                }
                Outcome::Conflict if unread => {
                    // Decided on a remembered state another process had moved past: read
                    // what it appended and decide again at once. No back-off, and no
                    // attempt spent: this was a stale memory, not a race still going on.
                    self.count_conflict(command, true);
                    trust_memory = false;
                    attempt -= 1;
                }
                Outcome::Conflict => {
                    trust_memory = false;
                    self.conflicted(stream, attempt, command).await?;
                }
                Outcome::Failed(error) => return Err(shared(&error).into()),
            }
        }
    }

    /// Counts a refused decision, and whether the command decides again.
    fn count_conflict(&self, command: &str, retried: bool) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(COMMAND_CONFLICTS, "command" => command.to_owned()).increment(1);
        if retried {
            metrics::counter!(COMMAND_RETRIES, "command" => command.to_owned()).increment(1);
        }
    }

    /// Counts a refused decision and waits a little before the next attempt, or gives up.
    async fn conflicted(
        &self,
        stream: &str,
        attempt: u32,
        command: &str,
    ) -> Result<(), CommandError> {
        let retried = attempt < MAX_ATTEMPTS;
        self.count_conflict(command, retried);
        if !retried {
            return Err(CommandError::Contention);
        }
        tracing::debug!(stream, attempt, "conflict; deciding again");
        let jitter = u64::from(Uuid::new_v4().as_u128() as u8 % 8);
        tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2 + jitter)).await;
        Ok(())
    }

    /// Appends one batch after the batch before it committed, and wakes its commands.
    async fn commit(&self, stream: &str, batch: &Arc<Batch>) {
        let after_refusal = match batch.take_previous() {
            Some(previous) => !matches!(previous.outcome().await, Outcome::Committed(_)),
            None => false,
        };
        let (events, commands) = self.batches.close(stream, batch);
        let outcome = if after_refusal {
            Outcome::Conflict
        } else {
            metrics::histogram!(APPEND_BATCH_SIZE).record(events.len() as f64);
            metrics::histogram!(COMMANDS_PER_APPEND).record(commands as f64);
            match self.log.append(stream, batch.expected, events).await {
                Ok(appended) => Outcome::Committed(appended.positions.into()),
                Err(error) if error.is_conflict() => Outcome::Conflict,
                Err(error) => Outcome::Failed(Arc::new(error)),
            }
        };
        if let Some(idle) = self.batches.finish(stream, batch, outcome) {
            self.remember_shared(stream, idle.state, idle.count);
        }
    }
}

/// How many events of a stream come before an append that expects `expected`.
fn events_before(expected: ExpectedRevision) -> u64 {
    match expected {
        ExpectedRevision::Exact(revision) => revision + 1,
        ExpectedRevision::NoStream | ExpectedRevision::Any => 0,
    }
}

/// A copy of a batch's failure for each of its commands (a store error is not `Clone`).
fn shared(error: &StoreError) -> StoreError {
    match error {
        StoreError::WrongExpectedRevision {
            stream,
            expected,
            actual,
        } => StoreError::WrongExpectedRevision {
            stream: stream.clone(),
            expected: *expected,
            actual: *actual,
        },
        StoreError::EventIdReused { stream } => StoreError::EventIdReused {
            stream: stream.clone(),
        },
        StoreError::Invalid(message) => StoreError::Invalid(message.clone()),
        StoreError::Corrupt(message) => StoreError::Corrupt(message.clone()),
        StoreError::Database(error) => {
            StoreError::Database(sqlx::Error::Protocol(error.to_string()))
        }
        StoreError::EventStore(message) => StoreError::EventStore(message.clone()),
    }
}
