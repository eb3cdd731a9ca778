//! The verified API and CLI tokens of this process, so the authenticated read path costs no
//! database round trip for the token (see the README's "Security" part).
//!
//! Entries are keyed by the token's hash and hold what the token read model said of it
//! (owner, kind, scopes, expiry, the grace end of a rotated secret, the owner's plan).
//! Expiry is checked against the clock on every request, as before; what can change a
//! token otherwise (a revocation, a rotation, a password change that revokes tokens, the
//! account's deletion, a plan change) is an event of the account's token, account or
//! subscription streams, and [`crate::read_cache`] keeps an entry from outliving the read
//! model showing it (its follower, its gate on the access-token read model, and the TTL:
//! `--token-cache-ttl`, 10 s by default; zero turns the cache off).
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

use crate::read_cache::{Followed, Owned, ReadCache};
use domain::{AccountId, StreamCategory};
use projections::access_tokens::PresentedToken;
use projections::{Follower, ProjectionError, ProjectionRunner};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Database, GlobalPosition};
use uuid::Uuid;

/// The default of `--token-cache-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

impl Owned for PresentedToken {
    fn owner(&self) -> AccountId {
        self.account_id
    }
}

/// Verified tokens of this process, with their invalidation.
pub struct TokenCache {
    verified: Arc<ReadCache<PresentedToken>>,
    /// Rotations this process made that its read model may not show yet.
    rotations: Mutex<Rotations>,
    /// How long a request waits for the read model to show a rotation.
    wait: Duration,
    projections: Arc<ProjectionRunner>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache whose entries live at most `ttl` (zero: no cache), gated on the
    /// access-token read model of `projections`; a request waits at most `wait` for that
    /// read model to show a rotation.
    pub fn new(ttl: Duration, wait: Duration, projections: Arc<ProjectionRunner>) -> Self {
        Self {
            verified: Arc::new(ReadCache::new(
                Follower::AccessTokens,
                // A deletion or password change revokes tokens; a plan decides what tokens
                // may do.
                &[
                    StreamCategory::AccessToken,
                    StreamCategory::Account,
                    StreamCategory::Subscription,
                ],
                ttl,
                projections.clone(),
            )),
            rotations: Mutex::new(Rotations::default()),
            wait,
            projections,
        }
    }

    /// What the log's follower keeps up to date ([`crate::read_cache::follow`]).
    pub fn followed(&self) -> Arc<dyn Followed> {
        self.verified.clone()
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
        // Kept small even when no request presents a secret (which also prunes).
        rotations.forget_shown(self.projections.applied(Follower::AccessTokens));
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
        self.verified
            .get(hash, projections::access_tokens::find_by_hash(db, hash))
            .await
    }

    /// How many rotations this process made are kept as not shown by the read model yet
    /// (a figure for tests: it must stay small whatever the load).
    pub fn rotations_kept(&self) -> usize {
        let rotations = self.rotations.lock().unwrap_or_else(|e| e.into_inner());
        rotations.tokens.len() + rotations.secrets.len()
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.verified.len()
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.verified.is_empty()
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
