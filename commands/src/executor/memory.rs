//! What the executor remembers of streams between commands: each recently used stream's
//! folded state and the number of events it covers (a bounded cache), and the state a
//! command decides on when none is in flight on its stream, without reading the stream.

use super::{Executor, batch::Tip};
use domain::Aggregate;
use std::any::Any;
use std::sync::Arc;

/// Most streams whose folded state is kept in memory.
const CACHE_CAPACITY: usize = 8_192;

/// A stream's folded state in the cache.
pub(super) struct Cached {
    state: Arc<dyn Any + Send + Sync>,
    /// Events folded into `state`.
    count: u64,
}

impl Executor {
    /// Drops the cached state of a stream (its account was erased).
    pub fn forget(&self, stream: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(stream);
    }

    pub(super) fn cached<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &str,
    ) -> Option<(A, u64)> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(stream)?;
        let state = entry.state.downcast_ref::<A>()?;
        Some((state.clone(), entry.count))
    }

    pub(super) fn remember<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &str,
        state: &A,
        count: u64,
    ) {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.get(stream).is_some_and(|entry| entry.count >= count) {
            return;
        }
        drop(cache);
        self.remember_shared(stream, Arc::new(state.clone()), count);
    }

    pub(super) fn remember_shared(
        &self,
        stream: &str,
        state: Arc<dyn Any + Send + Sync>,
        count: u64,
    ) {
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
        cache.insert(stream.to_owned(), Cached { state, count });
    }

    /// What this process last saw of `stream` while no command is in flight on it: the
    /// state it last committed there ([`Batches::settled`], which a decision may build on),
    /// or its cached fold, whichever covers more events. Its tail is not read: the append
    /// that follows a decision checks that the stream has not moved on.
    pub(super) fn remembered<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &str,
    ) -> Option<(Option<Tip>, A, u64)> {
        let settled = self.batches.settled(stream).and_then(typed::<A>);
        let cached = self.cached::<A>(stream);
        match (settled, cached) {
            (Some((_, _, settled)), Some((state, count))) if count > settled => {
                Some((None, state, count))
            }
            (Some(settled), _) => Some(settled),
            (None, cached) => cached.map(|(state, count)| (None, state, count)),
        }
    }
}

/// A tip's state as `A`, with the tip (a decision's basis) and the events it covers.
pub(super) fn typed<A: Clone + 'static>(tip: Tip) -> Option<(Option<Tip>, A, u64)> {
    let state = tip.state.downcast_ref::<A>()?.clone();
    let count = tip.count;
    Some((Some(tip), state, count))
}
