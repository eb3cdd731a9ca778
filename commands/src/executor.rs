//! The command loop every handler uses: load the stream, decide, append with the expected
//! revision, and on a conflict reload and decide again, a bounded number of times. Each
//! command's duration, conflicts, retries and append size are recorded
//! ([`crate::metrics`]).

use crate::codec::EventCodec;
use crate::error::CommandError;
use crate::metrics::{
    APPEND_BATCH_SIZE, COMMAND_CONFLICTS, COMMAND_DURATION, COMMAND_RETRIES, command_name,
};
use domain::{Aggregate, DomainEvent, Timestamp};
use std::any::Any;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::Payload;
use store::{Actor, EventLog, ExpectedRevision, GlobalPosition, Metadata};
use uuid::Uuid;

/// Attempts before a command gives up with [`CommandError::Contention`].
pub const MAX_ATTEMPTS: u32 = 8;

/// Who is asking, and on behalf of which request: the metadata stamped on every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Shared by everything one request causes.
    pub correlation_id: Uuid,
    /// The request (or event) that caused this command.
    pub causation_id: Option<Uuid>,
    /// Who.
    pub actor: Actor,
    /// The request's `Idempotency-Key`, recorded on the events it causes.
    pub idempotency_key: Option<String>,
}

impl CommandContext {
    /// A context for work the service does on its own.
    pub fn system(component: &str) -> Self {
        Self {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: component.to_owned(),
            },
            idempotency_key: None,
        }
    }

    /// The metadata of an event decided at `at`, sealed with `subject`'s key if personal.
    pub fn metadata(&self, subject: Option<Uuid>, at: Timestamp) -> Metadata {
        Metadata {
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: self.actor.clone(),
            occurred_at: at,
            idempotency_key: self.idempotency_key.clone(),
            data_subject: subject,
        }
    }
}

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

/// Most streams whose folded state is kept in memory.
const CACHE_CAPACITY: usize = 8_192;
/// In-process queues for commands on the same stream.
const STREAM_LOCKS: usize = 1_024;

struct Cached {
    state: Arc<dyn Any + Send + Sync>,
    /// Events folded into `state`.
    count: u64,
}

/// Loads aggregates and runs commands against the log.
///
/// Two things keep hot streams cheap. The folded state of recently used streams is cached
/// with the number of events it covers, so a load only reads the events appended since.
/// And commands on the same stream queue behind each other within this process, so they
/// do not race to the same revision; the expected revision still settles races between
/// processes.
#[derive(Clone)]
pub struct Executor {
    log: Arc<dyn EventLog>,
    codec: EventCodec,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    locks: Arc<Vec<tokio::sync::Mutex<()>>>,
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
            conflicts: Arc::new(AtomicU64::new(0)),
        }
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

    /// Drops the cached state of a stream (its account was erased).
    pub fn forget(&self, stream: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
    }

    fn cached<A: Aggregate + Send + Sync + 'static>(&self, stream: &str) -> Option<(A, u64)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(stream)?;
        let state = entry.state.downcast_ref::<A>()?;
        Some((state.clone(), entry.count))
    }

    fn remember<A: Aggregate + Send + Sync + 'static>(&self, stream: &str, state: &A, count: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.get(stream).is_some_and(|entry| entry.count >= count) {
            return;
        }
        if cache.len() >= CACHE_CAPACITY {
            // Crude but bounded: forget about a quarter of the streams.
            let mut n = 0;
            cache.retain(|_, _| {
                n += 1;
                n % 4 != 0
            });
        }
        cache.insert(
            stream.to_owned(),
            Cached {
                state: Arc::new(state.clone()),
                count,
            },
        );
    }

    /// Folds a stream into its aggregate. Events whose personal data was erased are
    /// skipped: only erased accounts have them.
    #[tracing::instrument(skip_all, fields(stream))]
    pub async fn load<A>(&self, stream: &str) -> Result<Loaded<A>, CommandError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Event: TryFrom<DomainEvent>,
    {
        let (mut state, mut count) = self.cached::<A>(stream).unwrap_or_default();
        let recorded = self.log.read_stream_from(stream, count).await?;
        let folded = !recorded.is_empty();
        for event in recorded {
            count += 1;
            if let Payload::Event(event) = self.codec.decode(event).await?.payload {
                if let Ok(event) = A::Event::try_from(event) {
                    state.evolve(&event);
                }
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
        let outcome = self
            .run_command(stream, ctx, subject, at, decide, &command)
            .await;
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
        let stripe = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            stream.hash(&mut hasher);
            (hasher.finish() % STREAM_LOCKS as u64) as usize
        };
        let _queued = self.locks[stripe].lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let loaded = self.load::<A>(stream).await?;
            let events = decide(&loaded.state)?;
            if events.is_empty() {
                return Ok(Executed {
                    state: loaded.state,
                    events,
                    position: None,
                });
            }
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
            metrics::histogram!(APPEND_BATCH_SIZE).record(encoded.len() as f64);
            match self.log.append(stream, loaded.expected, encoded).await {
                Ok(appended) => {
                    let mut state = loaded.state;
                    for event in &events {
                        state.evolve(event);
                    }
                    let count = match appended.next_expected {
                        ExpectedRevision::Exact(revision) => revision + 1,
                        ExpectedRevision::NoStream | ExpectedRevision::Any => 0,
                    };
                    if count > 0 {
                        self.remember(stream, &state, count);
                    }
                    return Ok(Executed {
                        state,
                        events,
                        position: Some(appended.last_position()),
                    });
                }
                Err(error) if error.is_conflict() => {
                    self.conflicts.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(COMMAND_CONFLICTS, "command" => command.to_owned())
                        .increment(1);
                    if attempt >= MAX_ATTEMPTS {
                        return Err(CommandError::Contention);
                    }
                    metrics::counter!(COMMAND_RETRIES, "command" => command.to_owned())
                        .increment(1);
                    tracing::debug!(stream, attempt, "conflict; deciding again");
                    let jitter = u64::from(Uuid::new_v4().as_u128() as u8 % 8);
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2 + jitter))
                        .await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}
