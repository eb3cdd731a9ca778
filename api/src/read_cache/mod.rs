//! Rows of a read model this process has read by a secret's hash (a token, a session), so
//! a request that presents a known secret costs no database round trip; and what keeps
//! such a row from outliving a change the read model shows.
//!
//! Entries are keyed by the hash and hold the row as the read model gave it; each row
//! belongs to an account. Clock-bound properties (expiry, idle time) stay the caller's to
//! check on every request. What can change a row otherwise is an event in the log, and an
//! entry must not outlive the read model showing it. Three mechanisms keep that true:
//!
//! - **The follower** ([`follow`]) reads the log after this process started and, once the
//!   cache's read model has applied a batch, forgets the entries of every account the batch
//!   concerns (an event of one of the cache's stream categories). It runs on every node, so
//!   a change made through any node leaves this node's cache as soon as this node sees the
//!   read model show it (in-process at once; another node's progress is seen through the
//!   log's notification and the checkpoint table, within about a second).
//! - **The gate**: the cache is consulted only while the follower has dealt with every
//!   position the read model shows. Between the read model applying a change and the
//!   follower forgetting its account, requests read the read model, as without a cache: so
//!   the node that made a change, which answers only once the read model shows it, serves
//!   the change to the very next request. A fill that raced a forget is not stored (a
//!   generation counter).
//! - **The TTL**: an entry is read again after it, whatever the follower did, so a
//!   follower that stops (a log outage) cannot keep a revoked secret alive longer than the
//!   TTL after the read model shows the revocation. A TTL of zero turns the cache off.
//!
//! Only rows found are kept: a secret the read model does not know is looked up every time.

use domain::{AccountId, StreamCategory};
use projections::{Follower, ProjectionRunner};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod follow;

pub use follow::{Followed, follow};

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

/// Rows of one read model by a secret's hash, with their invalidation.
pub struct ReadCache<V> {
    read_model: Follower,
    categories: &'static [StreamCategory],
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry<V>>>,
    /// Bumped by every forget: a look-up that started before keeps its answer to itself.
    generation: AtomicU64,
    /// One past the log position up to which the follower has forgotten every account
    /// whose rows changed, after the read model showed it; 0 until it first has.
    followed: AtomicU64,
    projections: Arc<ProjectionRunner>,
}

impl<V> std::fmt::Debug for ReadCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("read_model", &self.read_model)
            .field("ttl", &self.ttl)
            .field("followed", &self.followed)
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
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            followed: AtomicU64::new(0),
            projections,
        }
    }

    /// The row of `hash`: from the cache when it may be trusted and the entry is younger
    /// than `fresher_than` (and the TTL), else from `load` (one look-up of the read model).
    pub async fn get<E, F>(
        &self,
        hash: &str,
        fresher_than: Option<Duration>,
        load: F,
    ) -> Result<Option<Arc<V>>, E>
    where
        F: Future<Output = Result<Option<V>, E>>,
    {
        let trusted = self.trusted();
        if trusted {
            let max_age = fresher_than.map_or(self.ttl, |age| age.min(self.ttl));
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get(hash)
                && entry.fetched.elapsed() < max_age
            {
                return Ok(Some(entry.row.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = load.await?.map(Arc::new);
        if trusted && let Some(row) = &found {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            // A forget since the read above may concern this very row: not stored.
            if self.generation.load(Ordering::Acquire) == generation {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(
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

    /// Whether entries may be served: the cache is on, and the follower has dealt with
    /// everything the read model of this process shows.
    fn trusted(&self) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let followed = self.followed.load(Ordering::Acquire);
        followed != 0 && self.projections.applied(self.read_model).0 < followed
    }

    /// Drops the rows of `accounts`.
    pub fn forget_accounts(&self, accounts: &HashSet<AccountId>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, entry| !accounts.contains(&entry.row.owner()));
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// How many rows are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no row is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
