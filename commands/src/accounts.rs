//! Account commands: registration, sign-in (with two-factor authentication), sessions,
//! password, deletion. Two-factor enrolment and re-authentication are in
//! [`security`](self::security); profile and avatar in [`profile`](self::profile).

mod profile;
mod security;

pub use profile::ProfileChange;
pub use security::RecoveryCodes;

use crate::clock::Clock;
use crate::error::CommandError;
use crate::executor::{CommandContext, Executor};
use crate::passwords::Passwords;
use crate::tokens;
use domain::account::{Account, AccountCommand, Fresh, SecondFactor};
use domain::email::{DisplayName, EmailAddress};
use domain::reservation::{EmailReservation, ReservationCommand};
use domain::session::{RevocationReason, SessionOrigin};
use domain::{AccountId, Aggregate, SessionId, StreamCategory, Timestamp, password};
use std::sync::Arc;
use std::time::Duration;
use store::{BlobStore, GlobalPosition};
use uuid::Uuid;
use vault::{DataKeys, EmailIndex};

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

/// `POST /auth/register`.
#[derive(Debug, Clone)]
pub struct RegisterAccount {
    /// As typed.
    pub email: String,
    /// Must meet the policy.
    pub password: String,
    /// 1 to 64 characters.
    pub display_name: String,
}

/// A second factor as a client sends it.
#[derive(Debug, Clone)]
pub enum FactorInput {
    /// A 6-digit code from the authenticator app.
    Totp(String),
    /// One of the recovery codes.
    RecoveryCode(String),
}

/// `POST /auth/login`.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// As typed.
    pub email: String,
    /// As typed.
    pub password: String,
    /// Needed with 2FA on.
    pub second_factor: Option<FactorInput>,
    /// Device, IP, location.
    pub origin: SessionOrigin,
}

/// A started session.
#[derive(Debug)]
pub struct SignedIn {
    /// The account.
    pub account_id: AccountId,
    /// The session.
    pub session_id: SessionId,
    /// The bearer token, handed to the client once.
    pub token: String,
    /// Absolute expiry.
    pub expires_at: Timestamp,
    /// Where it was committed.
    pub position: GlobalPosition,
}

/// `PUT /me/password`.
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// To confirm it is the owner.
    pub current_password: String,
    /// Must meet the policy and differ from the current one.
    pub new_password: String,
    /// Also revoke every other session.
    pub sign_out_other_sessions: bool,
}

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
        }
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
        self.exec
            .execute::<Account, _>(
                &account_stream(account_id),
                ctx,
                Some(account_id.0),
                at,
                |state| Ok(state.decide(&command)?),
            )
            .await
    }

    /// The freshness a sensitive change by `session_id` needs now.
    fn fresh(&self, session_id: SessionId, now: Timestamp) -> Fresh {
        let window = self.sessions.reauthentication_window.as_micros() as i64;
        Fresh {
            session_id,
            since: Timestamp::from_unix_micros(now.unix_micros().saturating_sub(window)),
        }
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

    /// Creates an account. The address is reserved first, on its own stream with an
    /// expected revision: two registrations of one address cannot both succeed.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        ctx: &CommandContext,
        cmd: RegisterAccount,
    ) -> Result<(AccountId, GlobalPosition), CommandError> {
        let email = EmailAddress::parse(&cmd.email).map_err(|e| invalid("email", e))?;
        let display_name =
            DisplayName::parse(&cmd.display_name).map_err(|e| invalid("display_name", e))?;
        password::check(&cmd.password).map_err(CommandError::WeakPassword)?;

        let account_id = AccountId(Uuid::new_v4());
        let password_hash = self.passwords.hash(&cmd.password).await?;
        let now = self.clock.now();
        self.keys.create(account_id.0, now).await?;
        if let Err(error) = self.reserve_email(ctx, &email, account_id, now).await {
            self.keys.discard_unused(account_id.0).await?;
            return Err(error);
        }
        let register = AccountCommand::Register {
            account_id,
            email,
            display_name,
            password_hash,
            at: now,
        };
        let executed = self.run(ctx, account_id, now, register).await?;
        let position = executed
            .position
            .ok_or_else(|| CommandError::Internal("registration appended nothing".into()))?;
        Ok((account_id, position))
    }

    async fn reserve_email(
        &self,
        ctx: &CommandContext,
        email: &EmailAddress,
        account_id: AccountId,
        now: Timestamp,
    ) -> Result<(), CommandError> {
        let stream = self.email_index.stream(email);
        let current = self.exec.load::<EmailReservation>(&stream).await?.state;
        let holder_gone = match (current.holder, current.reserved_at) {
            (Some(holder), Some(at)) if holder != account_id => {
                let holder_account = self.exec.load::<Account>(&account_stream(holder)).await?;
                // A deleted account, or one that never came to exist.
                holder_account.state.deleted
                    || (holder_account.expected == store::ExpectedRevision::NoStream
                        && now.since(at) > ABANDONED_RESERVATION_AFTER)
            }
            _ => false,
        };
        self.exec
            .execute::<EmailReservation, _>(&stream, ctx, None, now, |state| {
                // Only the holder checked above may be considered gone.
                let holder_abandoned = holder_gone && state.holder == current.holder;
                Ok(state.decide(&ReservationCommand::Reserve {
                    account_id,
                    holder_abandoned,
                    at: now,
                })?)
            })
            .await?;
        Ok(())
    }

    /// Frees an e-mail address held by a deleted account.
    pub async fn release_email(
        &self,
        ctx: &CommandContext,
        reservation_stream: &str,
        account_id: AccountId,
    ) -> Result<(), CommandError> {
        let at = self.clock.now();
        self.exec
            .execute::<EmailReservation, _>(reservation_stream, ctx, None, at, |state| {
                Ok(state.decide(&ReservationCommand::Release { account_id, at })?)
            })
            .await?;
        Ok(())
    }

    /// The account holding `email`, loaded.
    async fn find_by_email(&self, email: &EmailAddress) -> Result<Option<Account>, CommandError> {
        let stream = self.email_index.stream(email);
        let Some(holder) = self
            .exec
            .load::<EmailReservation>(&stream)
            .await?
            .state
            .holder
        else {
            return Ok(None);
        };
        let account = self.account(holder).await?;
        Ok(account.is_registered().then_some(account))
    }

    /// Turns what the client sent into the proof the aggregate checks; `None` when 2FA is
    /// off. The aggregate refuses a step used before and an unknown recovery code.
    fn prove(
        &self,
        account: &Account,
        input: Option<&FactorInput>,
        now: Timestamp,
    ) -> Result<Option<SecondFactor>, CommandError> {
        let Some(secret) = &account.totp.secret else {
            return Ok(None);
        };
        match input {
            None => Err(CommandError::SecondFactorRequired),
            Some(FactorInput::Totp(code)) => {
                let unix = now.datetime().unix_timestamp().max(0) as u64;
                crate::totp::verify(secret, code, unix)
                    .map(|step| Some(SecondFactor::Totp { step }))
                    .ok_or(CommandError::InvalidSecondFactor)
            }
            Some(FactorInput::RecoveryCode(code)) => Ok(Some(SecondFactor::RecoveryCode {
                code_hash: crate::totp::hash_recovery_code(code),
            })),
        }
    }

    /// Starts a session if the e-mail and password match (and, with 2FA on, the code). A
    /// wrong e-mail and a wrong password get the same error after the same work.
    #[tracing::instrument(skip_all)]
    pub async fn sign_in(
        &self,
        ctx: &CommandContext,
        cmd: SignIn,
    ) -> Result<SignedIn, CommandError> {
        let account = match EmailAddress::parse(&cmd.email) {
            Ok(email) if cmd.password.chars().count() <= password::MAX_CHARS => {
                self.find_by_email(&email).await?
            }
            _ => None,
        };
        let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
        let verified = self.passwords.verify(&cmd.password, hash).await?;
        let (Some(account), true) = (account, verified) else {
            return Err(CommandError::InvalidCredentials);
        };
        let account_id = account.id.ok_or(CommandError::InvalidCredentials)?;
        let now = self.clock.now();
        // Only someone who knows the password learns that a code is needed.
        let second_factor = self.prove(&account, cmd.second_factor.as_ref(), now)?;

        let issued = tokens::new_session_token();
        let session_id = SessionId(Uuid::new_v4());
        let expires_at = now.plus(self.sessions.absolute_ttl);
        let start = AccountCommand::StartSession {
            session_id,
            token_hash: issued.hash.clone(),
            verified_password_version: account.password_version,
            second_factor,
            expires_at,
            origin: cmd.origin,
            at: now,
        };
        let executed = self.run(ctx, account_id, now, start).await?;
        Ok(SignedIn {
            account_id,
            session_id,
            token: issued.token,
            expires_at,
            position: executed
                .position
                .ok_or_else(|| CommandError::Internal("sign-in appended nothing".into()))?,
        })
    }

    /// Ends one of the account's sessions (its own logout, or a revoke from the list).
    /// Ending a session that already ended changes nothing.
    #[tracing::instrument(skip_all, fields(%account_id, %session_id))]
    pub async fn revoke_session(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        reason: RevocationReason,
    ) -> Result<Changed, CommandError> {
        let now = self.clock.now();
        let executed = self
            .run(
                ctx,
                account_id,
                now,
                AccountCommand::RevokeSession {
                    session_id,
                    reason,
                    at: now,
                },
            )
            .await?;
        Ok(Changed {
            sessions_revoked: executed.events.len(),
            position: executed.position,
        })
    }

    /// Revokes every live session of the account except `keep`.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn revoke_other_sessions(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        keep: SessionId,
    ) -> Result<Changed, CommandError> {
        let now = self.clock.now();
        let executed = self
            .run(
                ctx,
                account_id,
                now,
                AccountCommand::RevokeOtherSessions { keep, at: now },
            )
            .await?;
        Ok(Changed {
            sessions_revoked: executed.events.len(),
            position: executed.position,
        })
    }

    /// Changes the password after checking the current one; with `sign_out_other_sessions`
    /// the other sessions are revoked in the same append.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn change_password(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        cmd: ChangePassword,
    ) -> Result<Changed, CommandError> {
        password::check(&cmd.new_password).map_err(CommandError::WeakPassword)?;
        if cmd.new_password == cmd.current_password {
            return Err(invalid(
                "new_password",
                "must differ from the current password",
            ));
        }
        let now = self.clock.now();
        // A stale proof is refused before the (slow) password check.
        self.require_fresh(account_id, session_id, now).await?;
        let account = self
            .verify_password(account_id, &cmd.current_password)
            .await?;
        let new_password_hash = self.passwords.hash(&cmd.new_password).await?;
        let command = AccountCommand::ChangePassword {
            new_password_hash,
            verified_password_version: account.password_version,
            sign_out_other_sessions: cmd.sign_out_other_sessions,
            fresh: self.fresh(session_id, now),
            at: now,
        };
        let executed = self
            .exec
            .execute::<Account, _>(
                &account_stream(account_id),
                ctx,
                Some(account_id.0),
                now,
                |state| {
                    // Changed meanwhile: the current password given was checked against an
                    // older one.
                    state.decide(&command).map_err(|e| match e {
                        domain::account::AccountError::CredentialsChanged => {
                            CommandError::WrongPassword
                        }
                        other => other.into(),
                    })
                },
            )
            .await?;
        Ok(Changed {
            sessions_revoked: executed.events.len().saturating_sub(1),
            position: executed.position,
        })
    }

    /// Deletes the account (with its password and a recent proof): every session ends
    /// now; the erasure worker then releases the address, destroys the data key and
    /// removes the avatar.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn delete_account(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        password: &str,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let now = self.clock.now();
        self.require_fresh(account_id, session_id, now).await?;
        let account = self.verify_password(account_id, password).await?;
        let email = account.email.clone().ok_or(CommandError::AccountNotFound)?;
        let command = AccountCommand::DeleteAccount {
            verified_password_version: account.password_version,
            reservation_stream: self.email_index.stream(&email),
            fresh: self.fresh(session_id, now),
            at: now,
        };
        Ok(self.run(ctx, account_id, now, command).await?.position)
    }
}
