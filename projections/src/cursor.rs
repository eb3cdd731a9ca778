//! Where a follower of this process stands in the log.
//!
//! Most events concern few followers (a credit spend concerns the credits read model, not
//! the sessions one), and an event that does not concern a follower needs no write. So a
//! follower reads past such events without storing its checkpoint each time: what it has
//! read is published in this process at once (read-your-writes waits see it), and the
//! stored checkpoint catches up with the next batch it applies, or at most
//! [`STORE_EVERY`] later (an idle follower's loop wakes for it). Storing it each time the
//! follower ran out of events cost a write per follower per append: on SQLite, where
//! writes take turns, those writes held the write gate more than half the time under a
//! write load. A restart, or a runner in another process, starts from
//! the stored checkpoint and reads those events again, which is harmless: they do not
//! concern it.

use domain::StreamCategory;
use std::time::Duration;
use store::{GlobalPosition, RecordedEvent};
use tokio::time::Instant;

/// Longest a follower reading past events that do not concern it leaves its stored
/// checkpoint behind (other processes' waits read the stored one; this process's waits
/// and lag metrics see the published position). At 250 ms, a dozen followers' stores
/// were the most frequent of the writes holding SQLite's write gate longer than 3 ms while
/// sign-ins waited for the sessions read model behind it (docs/PERFORMANCE.md, the
/// sixteenth session).
pub(crate) const STORE_EVERY: Duration = Duration::from_secs(1);

/// A follower's position in this process.
pub(crate) struct Cursor {
    /// The checkpoint as stored, once read (`None`: read it before going on).
    pub stored: Option<GlobalPosition>,
    /// How far it has read: nothing after `stored` up to here concerns it.
    pub read: GlobalPosition,
    /// When `stored` was last read or written.
    pub stored_at: Instant,
}

impl Cursor {
    /// A cursor that reads the stored checkpoint first.
    pub fn new() -> Self {
        Self {
            stored: None,
            read: GlobalPosition::START,
            stored_at: Instant::now(),
        }
    }

    /// The stored checkpoint is `position` (just read or written), and everything up to it
    /// has been read.
    pub fn stored(&mut self, position: GlobalPosition) {
        self.stored = Some(position);
        self.read = position;
        self.stored_at = Instant::now();
    }

    /// Another runner moved the stored checkpoint: read it again.
    pub fn lost(&mut self) {
        self.stored = None;
    }

    /// Whether the stored checkpoint is behind what was read for long enough to write it.
    pub fn store_due(&self) -> bool {
        self.behind() && self.stored_at.elapsed() >= STORE_EVERY
    }

    /// When the stored checkpoint is behind what was read: how long until storing it is
    /// due (zero if it is).
    pub fn store_in(&self) -> Option<Duration> {
        self.behind()
            .then(|| STORE_EVERY.saturating_sub(self.stored_at.elapsed()))
    }

    /// Whether the stored checkpoint (once read) is behind what was read.
    pub fn behind(&self) -> bool {
        self.stored.is_some_and(|stored| stored != self.read)
    }
}

/// The events of `batch` in streams of one of `categories` (events of unknown streams
/// concern nobody).
pub(crate) fn concerning(
    categories: &[StreamCategory],
    batch: Vec<RecordedEvent>,
) -> Vec<RecordedEvent> {
    batch
        .into_iter()
        .filter(|e| concerns(categories, &e.stream))
        .collect()
}

/// Whether `stream` is of one of `categories`.
pub(crate) fn concerns(categories: &[StreamCategory], stream: &str) -> bool {
    StreamCategory::of_stream(stream).is_some_and(|c| categories.contains(&c))
}
