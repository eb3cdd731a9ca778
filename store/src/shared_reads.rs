//! One query of the log for every follower asking for the same page at once, and the
//! latest events read kept for the followers a little behind.
//!
//! Every append wakes all the followers of the log in this process: the read models, the
//! reactors, the notifier, the chainer, the audit index, the token cache, key eviction.
//! Once caught up, they all ask for the events after the same position, and each used to
//! send its own query. Now the reads of one position take turns: while one query runs,
//! the callers that arrive gather, and the next query answers all of them; and the first
//! caller yields once before starting its query, so the followers woken with it join it.
//! A wake-up costs one or two queries instead of one per follower. Followers a few events
//! behind the others read those events from the tail ([`tail`]) and the rest after its
//! end, the position the others read too.
//!
//! A page that ends short of its limit always ends with a query that started after its
//! caller asked. The caller therefore sees everything committed before its call, as with
//! a query of its own: an append that woke it cannot be missed (no lost wake-up), and a
//! writer reading after its own append sees it. The query asks for the largest limit
//! gathered and each caller gets the page cut to its own: a prefix of a page in log order
//! is the page a smaller limit reads. Positions nobody is reading take no memory; the tail
//! keeps at most [`tail::KEPT`] events.

use crate::log::{FilteredPage, StreamFilter};
use crate::{GlobalPosition, RecordedEvent, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tail::Tail;

/// The reads of the log in flight, by the position they read after.
#[derive(Default)]
pub(crate) struct SharedReads {
    positions: Mutex<HashMap<u64, Arc<Position>>>,
    /// The latest events read, for the followers a little behind.
    tail: Mutex<Tail>,
}

/// A page read from the log: the caller's own, or one shared (cut to the caller's limit).
enum Read {
    Alone(Vec<RecordedEvent>),
    Shared(Arc<Vec<RecordedEvent>>, usize),
}

/// The readers of one position.
#[derive(Default)]
struct Position {
    /// One query of this position at a time; tokio's lock is fair, so callers take
    /// their turns in the order they asked.
    turn: tokio::sync::Mutex<()>,
    /// The next query, not started yet.
    gathering: Mutex<Option<Arc<Page>>>,
}

/// One query: the largest limit its callers asked for, and what it read, once it has.
#[derive(Default)]
struct Page {
    /// Raised only while the query gathers, under [`Position::gathering`]'s lock.
    limit: AtomicUsize,
    events: OnceLock<Arc<Vec<RecordedEvent>>>,
}

impl SharedReads {
    /// Reads up to `limit` events after `after` from the log, sharing one
    /// `query(after, limit)` with every caller that asks for the same position before that
    /// query starts. If the query that would have answered this caller fails or is
    /// cancelled, the caller runs its own. Never answered from the tail: this is the log as
    /// stored (`EventLog::read_all`), what the chain's verification must read.
    pub(crate) async fn read<Query, Reading>(
        &self,
        after: GlobalPosition,
        limit: usize,
        query: Query,
    ) -> Result<Vec<RecordedEvent>, StoreError>
    where
        Query: FnOnce(GlobalPosition, usize) -> Reading,
        Reading: Future<Output = Result<Vec<RecordedEvent>, StoreError>>,
    {
        Ok(match self.read_log(after, limit, query).await? {
            Read::Alone(events) => events,
            Read::Shared(page, limit) => page[..limit.min(page.len())].to_vec(),
        })
    }

    /// What the followers read (`EventLog::read_all_where`): [`Self::read`], keeping only
    /// the events of the streams `keep` accepts (of a shared page, only those are copied
    /// for this caller), and answered from the tail where it can. Events the tail holds
    /// after `after` come from memory, and the log is read after the tail's end for the
    /// rest of the page (not at all if the tail fills it).
    pub(crate) async fn read_where<Query, Reading>(
        &self,
        after: GlobalPosition,
        limit: usize,
        query: Query,
        keep: StreamFilter<'_>,
    ) -> Result<FilteredPage, StoreError>
    where
        Query: FnOnce(GlobalPosition, usize) -> Reading,
        Reading: Future<Output = Result<Vec<RecordedEvent>, StoreError>>,
    {
        let held = lock(&self.tail).after(after.0, limit);
        let mut page = copied(held.events(), keep);
        if held.len == limit {
            return Ok(page);
        }
        let rest = self
            .read_log(page.last.unwrap_or(after), limit - held.len, query)
            .await?;
        let rest = match rest {
            Read::Alone(events) => FilteredPage::of(events, keep),
            Read::Shared(page, limit) => copied(page.iter().take(limit), keep),
        };
        if page.read == 0 {
            return Ok(rest);
        }
        page.read += rest.read;
        page.last = rest.last.or(page.last);
        page.events.extend(rest.events);
        Ok(page)
    }

    /// Reads up to `limit` events after `after` from the log, in a query shared with the
    /// callers of the same position, and offers the page to the tail.
    async fn read_log<Query, Reading>(
        &self,
        after: GlobalPosition,
        limit: usize,
        query: Query,
    ) -> Result<Read, StoreError>
    where
        Query: FnOnce(GlobalPosition, usize) -> Reading,
        Reading: Future<Output = Result<Vec<RecordedEvent>, StoreError>>,
    {
        let reader = self.join(after, limit);
        let _turn = reader.position.turn.lock().await;
        if let Some(page) = reader.page.events.get() {
            return Ok(Read::Shared(page.clone(), limit));
        }
        // One append wakes every follower at once: the others are ready to run behind this
        // one. Letting them run first lets them join this query, rather than gather for
        // another one once it has started.
        tokio::task::yield_now().await;
        reader.position.start(&reader.page);
        let largest = reader.page.limit.load(Ordering::Acquire);
        let mut events = query(after, largest).await?;
        let mut tail = lock(&self.tail);
        // Closed: nobody can join any more. Alone on it (a rebuild, a follower behind),
        // the caller takes the page without a copy unless the tail keeps it.
        let alone = Arc::strong_count(&reader.page) == 1;
        if alone && !tail.takes(after.0, events.len(), largest) {
            drop(tail);
            events.truncate(limit);
            return Ok(Read::Alone(events));
        }
        let page = Arc::new(events);
        tail.keep(after.0, &page, largest);
        drop(tail);
        // Only this caller sets it: it holds the turn and the query is closed.
        let _ = reader.page.events.set(page.clone());
        Ok(Read::Shared(page, limit))
    }

    /// Joins the query of `after` that has not started yet, or opens one.
    fn join(&self, after: GlobalPosition, limit: usize) -> Reader<'_> {
        let position = lock(&self.positions).entry(after.0).or_default().clone();
        let page = {
            let mut gathering = lock(&position.gathering);
            let page = gathering.get_or_insert_with(Arc::default);
            page.limit.fetch_max(limit, Ordering::AcqRel);
            page.clone()
        };
        Reader {
            reads: self,
            after,
            position,
            page,
        }
    }

    /// How many positions have readers now.
    #[cfg(test)]
    fn positions_read(&self) -> usize {
        lock(&self.positions).len()
    }
}

impl Position {
    /// Closes `page`'s query to newcomers, who gather for the next one. A query whose
    /// first caller failed or was cancelled is closed already, and its limit final.
    fn start(&self, page: &Arc<Page>) {
        let mut gathering = lock(&self.gathering);
        if gathering
            .as_ref()
            .is_some_and(|open| Arc::ptr_eq(open, page))
        {
            *gathering = None;
        }
    }
}

/// One caller of [`SharedReads::read`]; forgets the position when its last reader leaves,
/// however the read ends.
struct Reader<'a> {
    reads: &'a SharedReads,
    after: GlobalPosition,
    position: Arc<Position>,
    page: Arc<Page>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut positions = lock(&self.reads.positions);
        // Clones are only taken under this lock: two references (the map's and this
        // reader's) mean nobody else reads or waits on this position.
        if Arc::strong_count(&self.position) == 2 {
            positions.remove(&self.after.0);
        }
    }
}

/// The page of `events` (shared, so the kept ones are copied) for a caller keeping `keep`.
fn copied<'a>(
    events: impl Iterator<Item = &'a RecordedEvent>,
    keep: StreamFilter<'_>,
) -> FilteredPage {
    let mut page = FilteredPage::default();
    for event in events {
        page.read += 1;
        page.last = Some(event.position);
        if keep(&event.stream) {
            page.events.push(event.clone());
        }
    }
    page
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

mod tail;
#[cfg(test)]
mod tests;
