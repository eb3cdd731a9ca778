//! Commit batches of one stream: how commands queued on a hot stream in this process share
//! one append.
//!
//! Commands on a stream are decided one after another (the executor's stream queue), each
//! against the state the previous one left, its *tip*, without waiting for the previous
//! one's events to be committed. Their events gather in the stream's open batch; one task
//! per batch appends the whole batch with one expected revision, after the batch before it
//! committed. So a hot stream pays one commit per batch, not per command.
//!
//! Batches of a stream form a chain: each was decided on top of the one before. If a batch
//! is refused (another process appended to the stream) or fails, every later batch of its
//! chain is refused without being appended, the stream's tip is dropped, and their commands
//! decide again against the log, as after any conflict.

use std::any::Any;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use store::{ExpectedRevision, GlobalPosition, NewEvent, StoreError};
use tokio::sync::watch;

/// Most events one batch carries: well under the log's per-append limit, and small enough
/// that one refused batch does not make many commands decide again.
pub(super) const MAX_BATCH_EVENTS: usize = 256;

/// Idle streams' slots kept before they are swept away.
const IDLE_SLOTS: usize = 1_024;

/// How a batch ended.
#[derive(Debug, Clone)]
pub(super) enum Outcome {
    /// Appended; the global position of each of its events, in order.
    Committed(Arc<[GlobalPosition]>),
    /// Refused because the stream moved on (or the batch it was decided on was refused):
    /// its commands decide again.
    Conflict,
    /// The log failed; every command of the batch reports it.
    Failed(Arc<StoreError>),
}

/// A stream's state after every event decided in this process, committed or not, and how
/// many events of the stream it covers.
#[derive(Clone)]
pub(super) struct Tip {
    pub state: Arc<dyn Any + Send + Sync>,
    pub count: u64,
}

/// Events of commands decided one after another, appended together.
pub(super) struct Batch {
    /// The chain this batch belongs to (see the module docs).
    chain: u64,
    /// What its append expects: the stream's revision before its first event.
    pub expected: ExpectedRevision,
    inner: Mutex<BatchInner>,
    outcome: watch::Sender<Option<Outcome>>,
}

struct BatchInner {
    events: Vec<NewEvent>,
    commands: usize,
    /// The batch that must commit first; taken by the commit task so chains do not pile up.
    previous: Option<Arc<Batch>>,
    /// Handed to the log: no command may join any more.
    closed: bool,
}

impl Batch {
    fn inner(&self) -> MutexGuard<'_, BatchInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the batch to end.
    pub(super) async fn outcome(&self) -> Outcome {
        let mut rx = self.outcome.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Outcome::Conflict),
            // The sender lives as long as the batch, which the caller holds.
            Err(_) => Outcome::Conflict,
        }
    }

    /// The batch to wait for before appending this one.
    pub(super) fn take_previous(&self) -> Option<Arc<Batch>> {
        self.inner().previous.take()
    }
}

/// A command's place in a batch.
pub(super) struct Joined {
    /// Its batch.
    pub batch: Arc<Batch>,
    /// Its events' indexes within the batch.
    pub range: Range<usize>,
    /// It opened the batch, so it starts the task that commits it.
    pub leader: bool,
}

#[derive(Default)]
struct Slot {
    chain: u64,
    tip: Option<Tip>,
    /// The tip that was committed when the stream last went idle: a command that decided
    /// against it just before may still join (its decision is not stale).
    settled: Option<Tip>,
    /// The batch commands join.
    open: Option<Arc<Batch>>,
    /// The latest batch not finished yet.
    last: Option<Arc<Batch>>,
}

/// The batches of every stream with commands in flight in this process.
#[derive(Default)]
pub(super) struct Batches {
    slots: Mutex<HashMap<String, Slot>>,
    chains: AtomicU64,
}

fn same(a: Option<&Tip>, b: Option<&Tip>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(&a.state, &b.state),
        _ => false,
    }
}

impl Batches {
    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What this process last committed to the stream, while it is idle: a decision against
    /// it may still join ([`Batches::join`]).
    pub(super) fn settled(&self, stream: &str) -> Option<Tip> {
        self.slots()
            .get(stream)
            .and_then(|slot| slot.settled.clone())
    }

    /// The stream's tip, if commands are in flight on it, with the latest unfinished batch
    /// (what a decision against that tip rests on), read together: a batch that finishes
    /// in between takes its slot with it, and a decision's answer must still wait on it.
    pub(super) fn tip_and_pending(&self, stream: &str) -> (Option<Tip>, Option<Arc<Batch>>) {
        self.slots()
            .get(stream)
            .map_or((None, None), |slot| (slot.tip.clone(), slot.last.clone()))
    }

    /// Commands waiting in the stream's open batch for the one before it to commit.
    pub(super) fn queued(&self, stream: &str) -> usize {
        self.slots()
            .get(stream)
            .and_then(|slot| slot.open.as_ref().map(|open| open.inner().commands))
            .unwrap_or(0)
    }

    /// Adds `events`, decided against `decided_on` (the tip, or `None` for a state read
    /// from the log covering `base` events), leaving the stream at `tip`. `None` if the
    /// tip changed meanwhile (an earlier batch was refused): the decision is stale.
    pub(super) fn join(
        &self,
        stream: &str,
        decided_on: Option<&Tip>,
        base: u64,
        events: Vec<NewEvent>,
        tip: Tip,
    ) -> Option<Joined> {
        let mut slots = self.slots();
        let slot = slots.entry(stream.to_owned()).or_default();
        let settled = slot.tip.is_none()
            && slot.last.is_none()
            && decided_on.is_some()
            && same(slot.settled.as_ref(), decided_on);
        if !settled && !same(slot.tip.as_ref(), decided_on) {
            return None;
        }
        slot.settled = None;
        let n = events.len();
        if let Some(open) = slot.open.clone() {
            let mut inner = open.inner();
            if !inner.closed && inner.events.len() + n <= MAX_BATCH_EVENTS {
                let start = inner.events.len();
                inner.events.extend(events);
                inner.commands += 1;
                drop(inner);
                slot.tip = Some(tip);
                return Some(Joined {
                    batch: open,
                    range: start..start + n,
                    leader: false,
                });
            }
        }
        if slot.last.is_none() {
            slot.chain = self.chains.fetch_add(1, Ordering::Relaxed) + 1;
        }
        let batch = Arc::new(Batch {
            chain: slot.chain,
            expected: ExpectedRevision::after(base),
            inner: Mutex::new(BatchInner {
                events,
                commands: 1,
                previous: slot.last.clone(),
                closed: false,
            }),
            outcome: watch::channel(None).0,
        });
        slot.open = Some(batch.clone());
        slot.last = Some(batch.clone());
        slot.tip = Some(tip);
        Some(Joined {
            batch,
            range: 0..n,
            leader: true,
        })
    }

    /// Closes `batch` to new commands and hands over its events and how many commands
    /// they came from.
    pub(super) fn close(&self, stream: &str, batch: &Arc<Batch>) -> (Vec<NewEvent>, usize) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(stream)
            && slot
                .open
                .as_ref()
                .is_some_and(|open| Arc::ptr_eq(open, batch))
        {
            slot.open = None;
        }
        let mut inner = batch.inner();
        inner.closed = true;
        (std::mem::take(&mut inner.events), inner.commands)
    }

    /// Records how `batch` ended and wakes its commands. Returns the stream's state when
    /// nothing more is in flight on it (to keep in the executor's cache).
    pub(super) fn finish(&self, stream: &str, batch: &Arc<Batch>, outcome: Outcome) -> Option<Tip> {
        let mut slots = self.slots();
        let mut idle = None;
        let mut refused = false;
        if let Some(slot) = slots
            .get_mut(stream)
            .filter(|slot| slot.chain == batch.chain)
        {
            match outcome {
                Outcome::Committed(_) => {
                    if slot
                        .last
                        .as_ref()
                        .is_some_and(|last| Arc::ptr_eq(last, batch))
                    {
                        // Idle: new commands decide on this state (`settled`) or the cache,
                        // and read the log only when an append or a refusal needs it; the
                        // slot stays to let a decision made against this tip join.
                        slot.last = None;
                        idle = slot.tip.take();
                        slot.settled = idle.clone();
                    }
                }
                // Every later batch of the chain was decided on this one's events.
                Outcome::Conflict | Outcome::Failed(_) => refused = true,
            }
        }
        if refused {
            slots.remove(stream);
        } else if idle.is_some() && slots.len() > IDLE_SLOTS {
            slots.retain(|_, slot| slot.last.is_some());
        }
        batch.outcome.send_replace(Some(outcome));
        idle
    }
}
