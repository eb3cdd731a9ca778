//! The tail of the log as the latest reads found it, kept in memory for the followers a
//! few events behind.
//!
//! Followers of the log wake together but seldom stand at the same position: the read
//! models apply a batch while the reactors are already through it. Each used to send a
//! query of its own position, about five per append. Events never change once read (a
//! reader that has seen a position never later finds an event at or below it), so the
//! events the latest pages returned answer any follower standing among them; the follower
//! then reads the rest after the tail's end, where the others read too and share one
//! query ([`super::SharedReads`]).

use crate::RecordedEvent;
use std::collections::VecDeque;
use std::sync::Arc;

/// The most events the tail keeps: a few pages of the followers' batches, a few hundred
/// kilobytes of typical events.
pub(super) const KEPT: usize = 1024;

/// Every event after `after` up to the end of the last piece, in log order, from pages
/// the log returned.
#[derive(Default)]
pub(super) struct Tail {
    after: u64,
    pieces: VecDeque<Piece>,
    events: usize,
}

/// The events `page[from..]` of one page read (never empty).
struct Piece {
    page: Arc<Vec<RecordedEvent>>,
    from: usize,
}

impl Piece {
    fn events(&self) -> &[RecordedEvent] {
        &self.page[self.from..]
    }

    fn last(&self) -> u64 {
        self.page.last().map_or(0, |e| e.position.0)
    }
}

/// The kept events after a reader's position: the first `len` events of its pieces (the
/// last piece may hold more, past the reader's limit).
#[derive(Default)]
pub(super) struct Held {
    pieces: Vec<Piece>,
    /// How many events are the reader's.
    pub(super) len: usize,
}

impl Held {
    /// The reader's events, in log order.
    pub(super) fn events(&self) -> impl Iterator<Item = &RecordedEvent> {
        self.pieces.iter().flat_map(Piece::events).take(self.len)
    }
}

impl Tail {
    /// The position of the last event kept (`after` while nothing is).
    fn end(&self) -> u64 {
        self.pieces.back().map_or(self.after, Piece::last)
    }

    /// Up to `limit` of the kept events after `after`; none unless `after` lies in the
    /// tail, before its end.
    pub(super) fn after(&self, after: u64, limit: usize) -> Held {
        let mut held = Held::default();
        if limit == 0 || after < self.after || after >= self.end() {
            return held;
        }
        let first = self.pieces.partition_point(|piece| piece.last() <= after);
        for piece in self.pieces.range(first..) {
            let events = piece.events();
            let skip = events.partition_point(|e| e.position.0 <= after);
            let take = (events.len() - skip).min(limit - held.len);
            held.pieces.push(Piece {
                page: piece.page.clone(),
                from: piece.from + skip,
            });
            held.len += take;
            if held.len == limit {
                break;
            }
        }
        held
    }

    /// Whether the tail keeps a page of `len` events read after `after` by a query of
    /// `limit`: one that continues it, or, when it does not, one that reached the end of
    /// the log (shorter than its limit) ahead of it. Pages read far behind (a rebuild, a
    /// follower catching up) leave the tail where it is.
    pub(super) fn takes(&self, after: u64, len: usize, limit: usize) -> bool {
        if len == 0 {
            return false;
        }
        let continues = !self.pieces.is_empty() && (self.after..=self.end()).contains(&after);
        continues || (len < limit && after >= self.end())
    }

    /// Keeps `page`, read after `after`, if [`Self::takes`] says so; then forgets the
    /// oldest pages beyond [`KEPT`] events.
    pub(super) fn keep(&mut self, after: u64, page: &Arc<Vec<RecordedEvent>>, limit: usize) {
        if !self.takes(after, page.len(), limit) {
            return;
        }
        let end = self.end();
        if self.pieces.is_empty() || after > end {
            // Ahead of the tail: the tail starts again here.
            self.pieces.clear();
            self.events = 0;
            self.after = after;
        }
        let from = page.partition_point(|e| e.position.0 <= end.max(after));
        if from < page.len() {
            self.events += page.len() - from;
            self.pieces.push_back(Piece {
                page: page.clone(),
                from,
            });
        }
        while self.events > KEPT {
            let Some(oldest) = self.pieces.pop_front() else {
                break;
            };
            self.events -= oldest.events().len();
            self.after = oldest.last();
        }
    }
}
