//! The verified API and CLI tokens of this process, so the authenticated read path costs no
//! database round trip for the token (see the README's "Tokens" part).
//!
//! Entries are keyed by the token's hash and hold what the token read model said of it
//! (owner, kind, scopes, expiry, the grace end of a rotated secret, the owner's plan).
//! Expiry is checked against the clock on every request, as before; what can change a
//! token otherwise (a revocation, a rotation, a password change that revokes tokens, the
//! account's deletion, a plan change) is an event in the log, and an entry must not
//! outlive the read model showing it. Three mechanisms keep that true:
//!
//! - **The follower** ([`TokenCache::follow`]) reads the log after this process started
//!   and, once the access-token read model has applied a batch, forgets the cached tokens
//!   of every account the batch concerns. It runs on every node, so a revocation made
//!   through any node leaves this node's cache as soon as this node sees the read model
//!   show it (in-process at once; another node's progress is seen through the log's
//!   notification and the checkpoint table, within about a second).
//! - **The gate**: the cache is consulted only while the follower has dealt with every
//!   position the read model shows. Between the read model applying a change and the
//!   follower forgetting its account, requests read the read model, as without a cache:
//!   so the node that revoked a token, which answers only once the read model shows the
//!   revocation, refuses it on the very next request. A fill that raced a forget is not
//!   stored (a generation counter).
//! - **The TTL** (`--token-cache-ttl`, 10 s by default): an entry is read again after it,
//!   whatever the follower did, so a follower that stops (a log outage) cannot keep a
//!   revoked token alive longer than the TTL after the read model shows the revocation.
//!
//! A TTL of zero turns the cache off: every request reads the read model.
//!
//! **Rotations answer once committed**, before the read model shows them (a rotation is
//! the one token change whose command does not wait; creation and revocation still do).
//! The requests that present the token's secrets wait instead:
//!
//! - a secret of a token this node rotated, or one such a rotation issued
//!   ([`TokenCache::rotated`]), waits until the read model shows that rotation, then is
//!   looked up afresh: so the new secret works, and the old one without a grace period is
//!   refused, by the very next request on the node that rotated it, cached or not.
//!   Another node refuses the old secret once it sees the read model show the rotation,
//!   as for a revocation (about a second; at most the TTL after);
//! - any other secret the read model does not know may be one a rotation on another node
//!   issued a moment ago: the look-up waits until the read model shows everything
//!   committed to the log ([`ProjectionRunner::wait_for_log`]), then looks again, so the
//!   new secret works on the very next request through any node (an unknown secret pays
//!   that wait).

use domain::AccountId;
use projections::access_tokens::PresentedToken;
use projections::{Follower, ProjectionError, ProjectionRunner};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Database, GlobalPosition};
use uuid::Uuid;

mod follow;

/// The default of `--token-cache-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Beyond this many entries the cache is emptied before the next insert (an upper bound
/// on memory; live tokens of a deployment are far fewer).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
struct Entry {
    token: Arc<PresentedToken>,
    fetched: Instant,
}

/// Verified tokens of this process, with their invalidation.
pub struct TokenCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every forget: a look-up that started before keeps its answer to itself.
    generation: AtomicU64,
    /// One past the log position up to which the follower has forgotten every account
    /// whose tokens changed, after the read model showed it; 0 until it first has.
    followed: AtomicU64,
    /// Rotations this process made that its read model may not show yet.
    rotations: Mutex<Rotations>,
    /// How long a request waits for the read model to show a rotation.
    wait: Duration,
    projections: Arc<ProjectionRunner>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("ttl", &self.ttl)
            .field("followed", &self.followed)
            .finish()
    }
}

impl TokenCache {
    /// A cache whose entries live at most `ttl` (zero: no cache), gated on the
    /// access-token read model of `projections`; a request waits at most `wait` for that
    /// read model to show a rotation.
    pub fn new(ttl: Duration, wait: Duration, projections: Arc<ProjectionRunner>) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            followed: AtomicU64::new(0),
            rotations: Mutex::new(Rotations::default()),
            wait,
            projections,
        }
    }

    /// The token whose secret hashes to `hash`, as the read model shows it once it shows
    /// every rotation that concerns it (see the module's header): from the cache when it
    /// may be trusted, else from the read model. `Lagging` when the read model could not
    /// catch up in time.
    pub async fn find(
        &self,
        db: &Database,
        hash: &str,
    ) -> Result<Option<Arc<PresentedToken>>, ProjectionError> {
        // A secret a rotation here issued: no use looking before the read model shows it.
        if let Some(position) = self.rotation_unseen(Unseen::Secret(hash)) {
            self.wait_for(position).await?;
            return Ok(self.look_up(db, hash).await?);
        }
        let found = self.look_up(db, hash).await?;
        match &found {
            Some(token) => match self.rotation_unseen(Unseen::Token(token.token_id)) {
                None => return Ok(found),
                Some(position) => self.wait_for(position).await?,
            },
            // Perhaps a secret another node issued a moment ago.
            None => {
                self.projections
                    .wait_for_log(Follower::AccessTokens, self.wait)
                    .await?;
            }
        }
        Ok(self.look_up(db, hash).await?)
    }

    async fn wait_for(&self, position: GlobalPosition) -> Result<(), ProjectionError> {
        self.projections
            .wait_for(&[Follower::AccessTokens], position, self.wait)
            .await
    }

    /// Marks `token` of `account` rotated by this process at `position`, to the secret
    /// whose hash is `new_hash`: until the read model shows it, requests with the token's
    /// secrets wait for it.
    pub fn rotated(
        &self,
        account: AccountId,
        token: Uuid,
        new_hash: String,
        position: GlobalPosition,
    ) {
        let mut rotations = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
        let entry = rotations.tokens.entry(token).or_insert((account, position));
        entry.1 = entry.1.max(position);
        rotations.secrets.insert(new_hash, position);
    }

    /// The position of the last rotation this process made of `account`'s tokens that the
    /// read model does not show yet (what the reads of the account's token list wait for).
    pub fn last_rotation_unseen(&self, account: AccountId) -> Option<GlobalPosition> {
        let mut rotations = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
        rotations.forget_shown(self.projections.applied(Follower::AccessTokens));
        rotations
            .tokens
            .values()
            .filter(|(owner, _)| *owner == account)
            .map(|(_, position)| *position)
            .max()
    }

    /// The position of a rotation by this process that the read model does not show yet,
    /// of a token or to a secret.
    fn rotation_unseen(&self, of: Unseen<'_>) -> Option<GlobalPosition> {
        let mut rotations = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
        if rotations.tokens.is_empty() {
            return None;
        }
        rotations.forget_shown(self.projections.applied(Follower::AccessTokens));
        match of {
            Unseen::Token(token) => rotations.tokens.get(&token).map(|(_, position)| *position),
            Unseen::Secret(hash) => rotations.secrets.get(hash).copied(),
        }
    }

    /// The token whose secret hashes to `hash`, from the cache when it may be trusted,
    /// else from the read model (one look-up).
    async fn look_up(
        &self,
        db: &Database,
        hash: &str,
    ) -> Result<Option<Arc<PresentedToken>>, sqlx::Error> {
        let trusted = self.trusted().await;
        if trusted {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(entry) = entries.get(hash)
                && entry.fetched.elapsed() < self.ttl
            {
                return Ok(Some(entry.token.clone()));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let found = projections::access_tokens::find_by_hash(db, hash)
            .await?
            .map(Arc::new);
        if trusted && let Some(token) = &found {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            // A forget since the read above may concern this very token: not stored.
            if self.generation.load(Ordering::Acquire) == generation {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(
                    hash.to_owned(),
                    Entry {
                        token: token.clone(),
                        fetched: Instant::now(),
                    },
                );
            }
        }
        Ok(found)
    }

    /// Whether entries may be served: the cache is on, and the follower has dealt with
    /// everything the access-token read model of this process shows.
    async fn trusted(&self) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let followed = self.followed.load(Ordering::Acquire);
        if followed == 0 {
            return false;
        }
        // Answers at once (no wait, no database): `Ok` means the read model has applied
        // a position the follower has not dealt with yet.
        self.projections
            .wait_for(
                &[Follower::AccessTokens],
                GlobalPosition(followed),
                Duration::ZERO,
            )
            .await
            .is_err()
    }

    /// Drops the tokens of `accounts`.
    pub fn forget_accounts(&self, accounts: &HashSet<AccountId>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|_, entry| !accounts.contains(&entry.token.account_id));
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a rotation concerns: a token, or the hash of the secret it issued.
#[derive(Debug, Clone, Copy)]
enum Unseen<'a> {
    Token(Uuid),
    Secret(&'a str),
}

/// Rotations this process made, until the read model shows them.
#[derive(Debug, Default)]
struct Rotations {
    /// Rotated tokens by id: their owner and the last rotation's position.
    tokens: HashMap<Uuid, (AccountId, GlobalPosition)>,
    /// The hashes of the secrets they issued, with the rotation's position.
    secrets: HashMap<String, GlobalPosition>,
}

impl Rotations {
    /// Forgets the rotations a read model that has applied `applied` shows.
    fn forget_shown(&mut self, applied: GlobalPosition) {
        self.tokens.retain(|_, (_, position)| *position > applied);
        self.secrets.retain(|_, position| *position > applied);
    }
}
