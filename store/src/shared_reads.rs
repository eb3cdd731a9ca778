//! One query of the log for every follower asking for the same page at once.
//!
//! Every append wakes all the followers of the log in this process: the read models, the
//! reactors, the notifier, the chainer, the audit index, the token cache, key eviction.
//! Once caught up, they all ask for the events after the same position, and each used to
//! send its own query. Now the reads of one position take turns: while one query runs,
//! the callers that arrive gather, and the next query answers all of them, so a wake-up
//! costs about two queries instead of one per follower.
//!
//! A caller is only ever answered by a query that started after it asked. It therefore
//! sees everything committed before its call, as with a query of its own: an append that
//! woke it cannot be missed (no lost wake-up), and a writer reading after its own append
//! sees it. The query asks for the largest limit gathered and each caller gets the page
//! cut to its own: a prefix of a page in log order is the page a smaller limit reads.
//! Positions nobody is reading take no memory.

use crate::log::{FilteredPage, StreamFilter};
use crate::{GlobalPosition, RecordedEvent, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The reads of the log in flight, by the position they read after.
#[derive(Default)]
pub(crate) struct SharedReads {
    positions: Mutex<HashMap<u64, Arc<Position>>>,
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
    /// Reads up to `limit` events after `after`, sharing one `query(after, limit)` with
    /// every caller that asks for the same position before that query starts. If the
    /// query that would have answered this caller fails or is cancelled, the caller runs
    /// its own.
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
        Ok(self
            .read_where(after, limit, query, &|_| true)
            .await?
            .events)
    }

    /// [`Self::read`], keeping only the events of the streams `keep` accepts: of a shared
    /// page, only those are copied for this caller.
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
        let reader = self.join(after, limit);
        let page = {
            let _turn = reader.position.turn.lock().await;
            match reader.page.events.get() {
                Some(page) => page.clone(),
                None => {
                    reader.position.start(&reader.page);
                    let largest = reader.page.limit.load(Ordering::Acquire);
                    let mut events = query(after, largest).await?;
                    // Closed: nobody can join any more. Alone on it (a rebuild, a follower
                    // behind), the caller takes the page without a copy.
                    if Arc::strong_count(&reader.page) == 1 {
                        events.truncate(limit);
                        return Ok(FilteredPage::of(events, keep));
                    }
                    let page = Arc::new(events);
                    // Only this caller sets it: it holds the turn and the query is closed.
                    let _ = reader.page.events.set(page.clone());
                    page
                }
            }
        };
        let page = &page[..limit.min(page.len())];
        Ok(FilteredPage {
            read: page.len(),
            last: page.last().map(|e| e.position),
            events: page.iter().filter(|e| keep(&e.stream)).cloned().collect(),
        })
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
