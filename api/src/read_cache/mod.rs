//! Rows of a read model this process has read by a secret's hash (a token, a session), so
//! a request that presents a known secret costs no database round trip; and what keeps
//! such a row from outliving a change the read model shows.
//!
//! Entries are keyed by the hash and hold the row as the read model gave it; each row
//! belongs to an account. Clock-bound properties (expiry, idle time) stay the caller's to
//! check on every request. What can change a row otherwise is an event in the log, and an
//! entry must not outlive the read model showing it. Three mechanisms keep that true:
//!
//! - **The follower** ([`follow`]) reads the log after this process started. What it
//!   reads it notes at once: the accounts a new event concerns (an event of one of the
//!   cache's stream categories) are *pending*, their entries not served; once the cache's
//!   read model has applied the event, the follower forgets those accounts' entries and they
//!   stop being pending (each cache waits for its own read model, so a slow one holds no
//!   other cache's gate closed). It runs on every node, so a change made through any node leaves
//!   this node's cache as soon as this node sees the read model show it (in-process at once;
//!   another node's progress is seen through the log's notification and the checkpoint
//!   table, within about a second).
//! - **The gate**: the cache is consulted only while the follower has read every position
//!   the read model shows (the log guarantees no event commits later at or below a position
//!   a reader has seen), so a change the read model shows is either pending or forgotten.
//!   Otherwise requests read the read model, as without a cache: so the node that made a
//!   change, which answers only once the read model shows it, serves the change to the very
//!   next request. Under a steady stream of writes the follower reads ahead of the read
//!   model, which must also apply them, so the cache stays in use for every account but those
//!   with changes in flight. A fill that raced a forget is not stored (a generation counter).
//! - **The TTL**: an entry is read again after it, whatever the follower did, so a
//!   follower that stops (a log outage) cannot keep a revoked secret alive longer than the
//!   TTL after the read model shows the revocation. A TTL of zero turns the cache off.
//!
//! Only rows found are kept: a secret the read model does not know is looked up every time.

use domain::{AccountId, StreamCategory};
use projections::{Follower, ProjectionRunner};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::GlobalPosition;

mod follow;

pub use follow::{Changed, Followed, follow};

/// Beyond this many entries the cache is emptied before the next insert (an upper bound
/// on memory; live secrets of a deployment are far fewer).
const MAX_ENTRIES: usize = 100_000;

/// A row a [`ReadCache`] keeps: it belongs to one account.
pub trait Owned {
    /// The account whose changes may change the row.
    fn owner(&self) -> AccountId;
}

#[derive(Debug)]
struct Entry<V> {
    row: Arc<V>,
    fetched: Instant,
}

/// What the cache holds, and what the follower told it; under one lock.
#[derive(Debug)]
struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    /// Bumped by every forget: a look-up that started before keeps its answer to itself.
    generation: u64,
    /// One past the log position up to which the follower has read (and marked pending
    /// what it read); 0 until it first has.
    read: u64,
    /// Accounts with changes the follower read and has not yet seen the read model apply,
    /// with the position of the last such change.
    pending: HashMap<AccountId, u64>,
    /// The position of the last change read whose account is unknown (0: none pending):
    /// until it is applied and forgotten, no entry is served.
    pending_all: u64,
}

impl<V: Owned> Inner<V> {
    /// Whether the follower has read every position a read model showing `applied` shows.
    fn gate_open(&self, applied: GlobalPosition) -> bool {
        self.read != 0 && applied.0 < self.read
    }

    /// The entry of `hash` younger than `max_age`, if it may be served while the read
    /// model shows `applied`.
    fn serve(&self, hash: &str, applied: GlobalPosition, max_age: Duration) -> Option<Arc<V>> {
        if !self.gate_open(applied) || self.pending_all != 0 {
            return None;
        }
        let entry = self.entries.get(hash)?;
        (entry.fetched.elapsed() < max_age && !self.pending.contains_key(&entry.row.owner()))
            .then(|| entry.row.clone())
    }

    /// Marks what `changed` concerns pending, at `position`, and `position` read.
    fn note_read(&mut self, changed: &Changed, position: GlobalPosition) {
        match changed {
            Changed::Accounts(accounts) => {
                for account in accounts {
                    let at = self.pending.entry(*account).or_insert(0);
                    *at = (*at).max(position.0);
                }
            }
            Changed::Unknown => self.pending_all = self.pending_all.max(position.0),
        }
        self.read = self.read.max(position.0 + 1);
    }

    /// The read model shows `position`: forgets what `changed` concerns, and what was
    /// pending up to `position` no longer is.
    fn settled(&mut self, changed: &Changed, position: GlobalPosition) {
        match changed {
            Changed::Accounts(accounts) if accounts.is_empty() => {}
            Changed::Accounts(accounts) => {
                self.generation += 1;
                self.entries
                    .retain(|_, entry| !accounts.contains(&entry.row.owner()));
            }
            Changed::Unknown => self.clear(),
        }
        self.pending.retain(|_, at| *at > position.0);
        if self.pending_all <= position.0 {
            self.pending_all = 0;
        }
    }

    fn clear(&mut self) {
        self.generation += 1;
        self.entries.clear();
    }
}

/// Rows of one read model by a secret's hash, with their invalidation.
pub struct ReadCache<V> {
    read_model: Follower,
    categories: &'static [StreamCategory],
    ttl: Duration,
    inner: Mutex<Inner<V>>,
    projections: Arc<ProjectionRunner>,
}

impl<V> std::fmt::Debug for ReadCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("read_model", &self.read_model)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<V: Owned> ReadCache<V> {
    /// A cache of rows of `read_model` whose entries live at most `ttl` (zero: no cache),
    /// forgetting an account's rows on events of its streams of `categories`: the
    /// account's own streams (`account-<id>`, `subscription-<id>`), or streams whose
    /// events name it as their data subject.
    pub fn new(
        read_model: Follower,
        categories: &'static [StreamCategory],
        ttl: Duration,
        projections: Arc<ProjectionRunner>,
    ) -> Self {
        Self {
            read_model,
            categories,
            ttl,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                generation: 0,
                read: 0,
                pending: HashMap::new(),
                pending_all: 0,
            }),
            projections,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The row of `hash`: from the cache when it may be trusted, else from `load` (one
    /// look-up of the read model).
    pub async fn get<E, F>(&self, hash: &str, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        self.fetch(hash, true, load).await
    }

    /// The row of `hash` from `load`, whatever the cache holds, kept as [`Self::get`] keeps
    /// what it loads: for a row the caller has reason to think the cache holds an older
    /// version of.
    pub async fn reload<E, F>(&self, hash: &str, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        self.fetch(hash, false, load).await
    }

    async fn fetch<E, F>(&self, hash: &str, cached: bool, load: F) -> Result<Option<Arc<V>>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        if self.ttl.is_zero() {
            return Ok(load.await?.map(Arc::new));
        }
        // Taken before the lock: the read model may only have moved on since.
        let applied = self.projections.applied(self.read_model);
        let (gate_open, generation) = {
            let inner = self.lock();
            if cached && let Some(row) = inner.serve(hash, applied, self.ttl) {
                return Ok(Some(row));
            }
            (inner.gate_open(applied), inner.generation)
        };
        let found = load.await?.map(Arc::new);
        // Kept only if the follower had read all the read model showed before this look-up:
        // any later change of the row is one it reads after, and forgets once applied.
        if gate_open && let Some(row) = &found {
            let mut inner = self.lock();
            // A forget since the read above may concern this very row: not stored.
            if inner.generation == generation {
                if inner.entries.len() >= MAX_ENTRIES {
                    inner.clear();
                }
                inner.entries.insert(
                    hash.to_owned(),
                    Entry {
                        row: row.clone(),
                        fetched: Instant::now(),
                    },
                );
            }
        }
        Ok(found)
    }

    /// How many rows are cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no row is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
