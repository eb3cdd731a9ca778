//! Read-your-writes: which followers of the log must have applied a change before the
//! command that made it answers, so the very next request sees it (a revoked session is
//! refused, a new token accepted, a bought pack's credits shown). The policies live here,
//! in one place, rather than in the handlers. Changes only reads of their own aggregate
//! show (credit holds and settlements) are waited for by those reads instead
//! ([`ProjectionRunner::wait_for_stream`]), so their commands answer once committed; so
//! are token rotations, by the requests that present the token's secrets
//! ([`ProjectionRunner::wait_for_log`] and the API's token cache).

use crate::{Follower, ProjectionError, ProjectionRunner};
use std::time::Duration;
use store::GlobalPosition;
use tokio::time::Instant;

/// A kind of change, and so what must show it before its command answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// A change one read model shows: that read model. For example sign-in, sign-out
    /// and revocations with [`Follower::Sessions`], so a revoked token is refused by the
    /// very next request and a new one accepted.
    ReadModel(Follower),
    /// A password change, which may revoke sessions: sessions, then the account.
    SessionsAndAccount,
    /// Subscription changes and completed purchases: the billing process reacts first
    /// (invoices, charges, allowance credits), then the credits and billing read models
    /// show what it appended, and the token read model the plan in force (API access on
    /// `/api/v1` follows the plan).
    Billing,
    /// An account deleted: the erasure reactor finishes (subscription ended, address
    /// released, tokens revoked, key destroyed), then every read model holding the
    /// account's rows shows it.
    AccountDeletion,
}

impl Visibility {
    /// The followers that must reach the change's position, then those that must reach
    /// the head of the log as it stands once the first have (what reactors appended).
    pub fn policy(self) -> (Vec<Follower>, &'static [Follower]) {
        use Follower as F;
        match self {
            Self::ReadModel(read_model) => (vec![read_model], &[]),
            Self::SessionsAndAccount => (vec![F::Sessions, F::Accounts], &[]),
            Self::Billing => (
                vec![F::BillingProcess],
                &[F::Credits, F::Billing, F::AccessTokens],
            ),
            Self::AccountDeletion => (
                vec![F::AccountErasure],
                &[
                    F::Accounts,
                    F::Sessions,
                    F::Billing,
                    F::AccessTokens,
                    F::TokenUsage,
                    F::Workspaces,
                    F::EditorPreferences,
                    F::Telegram,
                ],
            ),
        }
    }
}

impl ProjectionRunner {
    /// Waits until `change`, committed at `position`, is visible by its policy; each stage
    /// waits at most `timeout`.
    pub async fn wait_visible(
        &self,
        change: Visibility,
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let (first, then) = change.policy();
        self.wait_for(&first, position, timeout).await?;
        if !then.is_empty() {
            let head = self.log.committed_head().await?;
            self.wait_for(then, head.max(position), timeout).await?;
        }
        Ok(())
    }

    /// The position `follower` is known in this process to have applied, without a round
    /// trip (what its runner, or a wait, last published): a read that starts after taking
    /// it shows at least that much.
    pub fn applied(&self, follower: Follower) -> GlobalPosition {
        GlobalPosition(
            self.progress
                .get(&follower)
                .map_or(0, |progress| *progress.borrow()),
        )
    }

    /// Waits until `follower` has applied every event committed to `stream`: the read
    /// side of read-your-writes, for changes whose commands answer once committed (credit
    /// holds and settlements) and whose reads of that aggregate wait instead. It holds
    /// across nodes, as the stream's end is read from the log, and waits only while the
    /// follower is behind that stream.
    pub async fn wait_for_stream(
        &self,
        follower: Follower,
        stream: &str,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        match self.log.stream_last_position(stream).await? {
            Some(last) => self.wait_for(&[follower], last, timeout).await,
            None => Ok(()),
        }
    }

    /// Waits until `follower` has applied everything committed to the log so far, on any
    /// node: the read side of read-your-writes for a read that cannot name the stream it
    /// needs (a token looked up by the hash of a secret the read model does not know,
    /// perhaps one a rotation issued a moment ago).
    pub async fn wait_for_log(
        &self,
        follower: Follower,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let head = self.log.committed_head().await?;
        self.wait_for(&[follower], head, timeout).await
    }

    /// Waits until every projection in `names` has applied `position`.
    pub async fn wait_for(
        &self,
        names: &[Follower],
        position: GlobalPosition,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let deadline = Instant::now() + timeout;
        for name in names {
            let progress = self
                .progress
                .get(name)
                .ok_or_else(|| ProjectionError::UnknownProjection(name.key().to_owned()))?;
            let mut seen = progress.subscribe();
            loop {
                if *seen.borrow_and_update() >= position.0 {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ProjectionError::Lagging {
                        name: *name,
                        position,
                    });
                }
                // The runner of this process announces progress at once; a runner in another
                // process is only seen in the checkpoint table, looked at now and then.
                tokio::select! {
                    _ = seen.changed() => {}
                    () = tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(200))) => {
                        let stored = self.checkpoint(*name).await?;
                        self.publish(*name, stored);
                    }
                }
            }
        }
        Ok(())
    }
}
