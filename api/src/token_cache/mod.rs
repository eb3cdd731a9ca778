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
        if let Some(position) = self.secret_unseen(hash) {
            self.wait_for(position).await?;
            return Ok(self.look_up(db, hash).await?);
        }
        // The look-up's answer shows at least this much of the log: a rotation after it
        // may be missing from the answer, even if the read model shows it by the time the
        // answer comes.
        let before = self.projections.applied(Follower::AccessTokens);
        let found = self.look_up(db, hash).await?;
        match &found {
            Some(token) => match self.rotated_since(token.token_id, before) {
                Since::Not => return Ok(found),
                Since::At(position) => self.wait_for(position).await?,
                // The read model shows it now: looking again is enough.
                Since::Perhaps => {}
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
        let applied = self.projections.applied(Follower::AccessTokens);
        self.lock_rotations()
            .record(account, token, new_hash, position, applied);
    }

    /// The position of the last rotation this process made of `account`'s tokens that the
    /// read model does not show yet (what the reads of the account's token list wait for).
    pub fn last_rotation_unseen(&self, account: AccountId) -> Option<GlobalPosition> {
        let applied = self.projections.applied(Follower::AccessTokens);
        let mut rotations = self.lock_rotations();
        rotations.forget_shown(applied);
        rotations
            .tokens
            .values()
            .filter(|(owner, _)| *owner == account)
            .map(|(_, position)| *position)
            .max()
    }

    /// The position of a rotation by this process that the read model does not show yet,
    /// to the secret whose hash is `hash`.
    fn secret_unseen(&self, hash: &str) -> Option<GlobalPosition> {
        let applied = self.projections.applied(Follower::AccessTokens);
        let mut rotations = self.lock_rotations();
        if rotations.tokens.is_empty() {
            return None;
        }
        rotations.forget_shown(applied);
        rotations.secrets.get(hash).copied()
    }

    /// Whether this process rotated `token` after `before`, where a look-up began.
    fn rotated_since(&self, token: Uuid, before: GlobalPosition) -> Since {
        let applied = self.projections.applied(Follower::AccessTokens);
        self.lock_rotations().since(token, before, applied)
    }

    fn lock_rotations(&self) -> std::sync::MutexGuard<'_, Rotations> {
        self.rotations.lock().unwrap_or_else(|e| e.into_inner())
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
        let rotations = self.lock_rotations();
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

/// Whether a token was rotated after a look-up of it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Since {
    /// Not by this process, as far as the read model may not show it yet.
    Not,
    /// At this position, which the read model does not show yet.
    At(GlobalPosition),
    /// Perhaps: a rotation after the look-up began was let go since (the read model shows
    /// it now), and it may have been this token's.
    Perhaps,
}

/// Rotations this process made, until the read model shows them.
#[derive(Debug, Default)]
struct Rotations {
    /// Rotated tokens by id: their owner and the last rotation's position.
    tokens: HashMap<Uuid, (AccountId, GlobalPosition)>,
    /// The hashes of the secrets they issued, with the rotation's position.
    secrets: HashMap<String, GlobalPosition>,
    /// The last position of a rotation let go: a look-up that began before it may have
    /// missed it, though nothing here says so any more.
    let_go: GlobalPosition,
}

impl Rotations {
    /// Records the rotation of `token` of `account` at `position` to the secret whose hash
    /// is `new_hash`, while the read model shows `applied`.
    fn record(
        &mut self,
        account: AccountId,
        token: Uuid,
        new_hash: String,
        position: GlobalPosition,
        applied: GlobalPosition,
    ) {
        // Kept small even when no request presents a secret (which also prunes).
        self.forget_shown(applied);
        let entry = self.tokens.entry(token).or_insert((account, position));
        entry.1 = entry.1.max(position);
        self.secrets.insert(new_hash, position);
    }

    /// Whether `token` was rotated after `before` as far as a read model showing `applied`
    /// may not show.
    fn since(&mut self, token: Uuid, before: GlobalPosition, applied: GlobalPosition) -> Since {
        if !self.tokens.is_empty() {
            self.forget_shown(applied);
        }
        match self.tokens.get(&token) {
            Some((_, position)) if *position > before => Since::At(*position),
            _ if self.let_go > before => Since::Perhaps,
            _ => Since::Not,
        }
    }

    /// Forgets the rotations a read model that has applied `applied` shows.
    fn forget_shown(&mut self, applied: GlobalPosition) {
        let mut let_go = self.let_go;
        self.tokens.retain(|_, (_, position)| {
            let keep = *position > applied;
            if !keep {
                let_go = let_go.max(*position);
            }
            keep
        });
        self.secrets.retain(|_, position| *position > applied);
        self.let_go = let_go;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotations_of(token: Uuid, at: u64, applied: u64) -> Rotations {
        let mut rotations = Rotations::default();
        let account = AccountId(Uuid::new_v4());
        rotations.record(
            account,
            token,
            "new".to_owned(),
            GlobalPosition(at),
            GlobalPosition(applied),
        );
        rotations
    }

    #[test]
    fn a_rotation_the_read_model_does_not_show_is_waited_for() {
        let token = Uuid::new_v4();
        let mut rotations = rotations_of(token, 10, 5);
        assert_eq!(
            rotations.since(token, GlobalPosition(5), GlobalPosition(5)),
            Since::At(GlobalPosition(10))
        );
        assert_eq!(
            rotations.since(Uuid::new_v4(), GlobalPosition(5), GlobalPosition(5)),
            Since::Not
        );
    }

    /// The race a test over HTTP once lost: the look-up began while the read model did not
    /// show the rotation, and by the time it answered the read model showed it and the
    /// rotation was let go. The answer may be the token before the rotation.
    #[test]
    fn a_rotation_let_go_during_a_look_up_is_not_taken_for_none() {
        let token = Uuid::new_v4();
        let mut rotations = rotations_of(token, 10, 5);
        let before = GlobalPosition(5);
        // Another rotation is recorded once the read model shows the first one.
        rotations.record(
            AccountId(Uuid::new_v4()),
            Uuid::new_v4(),
            "other".to_owned(),
            GlobalPosition(20),
            GlobalPosition(15),
        );
        assert!(!rotations.tokens.contains_key(&token), "let go");
        assert_eq!(
            rotations.since(token, before, GlobalPosition(15)),
            Since::Perhaps
        );
        // A look-up that began once the read model showed it has nothing to fear.
        assert_eq!(
            rotations.since(token, GlobalPosition(15), GlobalPosition(15)),
            Since::Not
        );
    }
}
