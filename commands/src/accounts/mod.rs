//! Account commands: registration and deletion (`lifecycle`), sign-in
//! with two-factor authentication (`sign_in`), sessions and password
//! (`sessions`), two-factor enrolment and re-authentication
//! (`security`), profile and avatar (`profile`), e-mail verification (`verification`), a
//! forgotten password (`password_reset`), a change of address (`email_change`).

mod email_change;
mod lifecycle;
mod password_reset;
mod profile;
mod security;
mod sessions;
mod sign_in;
mod verification;

pub use email_change::{ChangeEmail, EmailChangeSent};
pub use lifecycle::RegisterAccount;
pub use password_reset::ResetPassword;
pub use profile::ProfileChange;
pub use security::RecoveryCodes;
pub use sessions::ChangePassword;
pub use sign_in::{FactorInput, SignIn, SignedIn};

use crate::avatar::DecodeSlots;
use crate::clock::Clock;
use crate::error::CommandError;
use crate::executor::{CommandContext, Executor};
use crate::passwords::Passwords;
use domain::account::{Account, AccountCommand, AccountEvent, Fresh};
use domain::{AccountId, Aggregate, SessionId, StreamCategory, Timestamp, password};
use std::sync::Arc;
use std::time::Duration;
use store::{BlobStore, GlobalPosition};
use vault::{AccountLinkSet, AccountLinks, DataKeys, EmailIndex};

/// How long sessions live, and how recent a proof sensitive changes need.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// A session ends this long after it started, however active.
    pub absolute_ttl: Duration,
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
    /// Sensitive changes need the session to have proved its credentials this recently.
    pub reauthentication_window: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            absolute_ttl: Duration::from_secs(30 * 24 * 3600),
            idle_timeout: Duration::from_secs(7 * 24 * 3600),
            reauthentication_window: Duration::from_secs(10 * 60),
        }
    }
}

/// A reservation whose account never came to exist may be taken over after this long.
/// Requests time out long before, so the registration that made it is no longer running.
pub const ABANDONED_RESERVATION_AFTER: Duration = Duration::from_secs(600);

/// What a command changed, and where, for read-your-writes.
#[derive(Debug, Clone, Copy)]
pub struct Changed {
    /// How many sessions were revoked.
    pub sessions_revoked: usize,
    /// The last position committed (`None`: nothing needed doing).
    pub position: Option<GlobalPosition>,
}

/// The account command handlers.
#[derive(Clone)]
pub struct Accounts {
    exec: Executor,
    keys: Arc<DataKeys>,
    email_index: EmailIndex,
    passwords: Passwords,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    sessions: SessionPolicy,
    decodes: DecodeSlots,
    links: Option<AccountLinkSet>,
}

fn invalid(field: &'static str, message: impl ToString) -> CommandError {
    CommandError::Invalid {
        field,
        message: message.to_string(),
    }
}

/// The stream of an account.
pub fn account_stream(id: AccountId) -> String {
    StreamCategory::Account.stream(id)
}

/// Refuses a change unless the session of `fresh` proved its credentials recently (the
/// account aggregate's rule, [`Account::check_fresh`]), for changes decided on another
/// stream than the account's (a plan change). A session the account does not hold has
/// proved nothing.
pub(crate) async fn check_fresh(
    exec: &Executor,
    account_id: AccountId,
    fresh: &Fresh,
) -> Result<(), CommandError> {
    let account = exec
        .load::<Account>(&account_stream(account_id))
        .await?
        .state;
    if !account.is_registered() {
        return Err(CommandError::AccountNotFound);
    }
    account
        .check_fresh(fresh)
        .map_err(|_| CommandError::ReauthenticationRequired)
}

impl Accounts {
    /// Handlers over `exec`.
    pub fn new(
        exec: Executor,
        email_index: EmailIndex,
        passwords: Passwords,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        sessions: SessionPolicy,
    ) -> Self {
        Self {
            keys: exec.codec().keys().clone(),
            exec,
            email_index,
            passwords,
            blobs,
            clock,
            sessions,
            decodes: DecodeSlots::default(),
            links: None,
        }
    }

    /// The same handlers, checking the links e-mailed to accounts (verification, reset,
    /// change of address) with `links`' keys.
    pub fn with_account_links(mut self, links: AccountLinkSet) -> Self {
        self.links = Some(links);
        self
    }

    /// The links of one kind (`what` names it in the error if none are configured).
    fn links(
        &self,
        kind: fn(&AccountLinkSet) -> &AccountLinks,
        what: &str,
    ) -> Result<&AccountLinks, CommandError> {
        self.links
            .as_ref()
            .map(kind)
            .ok_or_else(|| CommandError::Internal(format!("no key for {what} links")))
    }

    /// The same handlers, decoding avatars in `slots`.
    pub fn with_decode_slots(mut self, slots: DecodeSlots) -> Self {
        self.decodes = slots;
        self
    }

    /// The avatar decode slots (shared by clones of these handlers).
    pub fn decode_slots(&self) -> &DecodeSlots {
        &self.decodes
    }

    /// The session lifetimes in force.
    pub fn session_policy(&self) -> SessionPolicy {
        self.sessions
    }

    /// The blob store avatars live in.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The account as its events describe it.
    pub async fn account(&self, account_id: AccountId) -> Result<Account, CommandError> {
        Ok(self
            .exec
            .load::<Account>(&account_stream(account_id))
            .await?
            .state)
    }

    async fn run(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        at: Timestamp,
        command: AccountCommand,
    ) -> Result<crate::executor::Executed<Account>, CommandError> {
        self.run_with(ctx, account_id, at, |state| Ok(state.decide(&command)?))
            .await
    }

    /// Appends what `decide` returns on the account's stream (sealed with its key),
    /// decided against the state the append checks.
    async fn run_with(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        at: Timestamp,
        decide: impl FnMut(&Account) -> Result<Vec<AccountEvent>, CommandError>,
    ) -> Result<crate::executor::Executed<Account>, CommandError> {
        self.exec
            .execute::<Account, _>(
                &account_stream(account_id),
                ctx,
                Some(account_id.0),
                at,
                decide,
            )
            .await
    }

    /// The freshness a sensitive change by `session_id` needs now.
    pub fn fresh(&self, session_id: SessionId, now: Timestamp) -> Fresh {
        Fresh::within(session_id, now, self.sessions.reauthentication_window)
    }

    /// Loads the account and checks `password` against it (argon2, off the runtime).
    async fn verify_password(
        &self,
        account_id: AccountId,
        password: &str,
    ) -> Result<Account, CommandError> {
        let account = self.account(account_id).await?;
        if !account.is_registered() {
            return Err(CommandError::AccountNotFound);
        }
        if password.chars().count() > password::MAX_CHARS
            || !self
                .passwords
                .verify(password, account.password_hash.as_deref())
                .await?
        {
            return Err(CommandError::WrongPassword);
        }
        Ok(account)
    }
}
