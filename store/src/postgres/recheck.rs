//! Waking this process's followers again while committed events are hidden.
//!
//! A follower reads only below the oldest transaction still open on the server (the
//! gapless order). When it stops at that horizon with later events already committed, no
//! append may follow to wake it once that transaction ends, and it would sleep until the
//! watch's fallback. So the log wakes its followers again shortly, one wake-up at a time:
//! after [`FIRST_DELAY`], doubling while reads find nothing new (a long transaction), up to
//! [`LONGEST_DELAY`], and from the first delay again once a read finds events.

use crate::log::AppendSignal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// About one commit's time.
const FIRST_DELAY: Duration = Duration::from_millis(2);

/// The longest wait between two wake-ups.
const LONGEST_DELAY: Duration = Duration::from_secs(1);

/// A pending wake-up of the followers, and the delay of the next one.
pub(super) struct Recheck {
    signal: AppendSignal,
    pending: AtomicBool,
    delay_micros: AtomicU64,
}

impl Recheck {
    /// Wakes the readers of `signal`.
    pub(super) fn new(signal: AppendSignal) -> Self {
        Self {
            signal,
            pending: AtomicBool::new(false),
            delay_micros: AtomicU64::new(FIRST_DELAY.as_micros() as u64),
        }
    }

    /// The next wake-up comes after the first delay again.
    pub(super) fn reset(&self) {
        self.delay_micros
            .store(FIRST_DELAY.as_micros() as u64, Ordering::Release);
    }

    /// Wakes the followers after the current delay (unless a wake-up is pending) and
    /// doubles the next one.
    pub(super) fn schedule(self: &Arc<Self>) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let delay = self.delay_micros.load(Ordering::Acquire);
        let longer = (delay * 2).min(LONGEST_DELAY.as_micros() as u64);
        self.delay_micros.store(longer, Ordering::Release);
        let recheck = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(delay)).await;
            recheck.pending.store(false, Ordering::Release);
            recheck.signal.notify();
        });
    }
}
