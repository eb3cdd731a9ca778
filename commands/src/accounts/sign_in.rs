//! Sign-in: the password (argon2, off the runtime), the second factor with 2FA on, and
//! the session it starts.

use super::Accounts;
use crate::error::CommandError;
use crate::executor::CommandContext;
use crate::passwords::Passwords;
use crate::tokens;
use domain::account::{Account, AccountCommand, SecondFactor};
use domain::activity::{SignInEvent, SignInFailure};
use domain::email::EmailAddress;
use domain::session::SessionOrigin;
use domain::{AccountId, DomainEvent, SessionId, StreamCategory, Timestamp, password};
use store::GlobalPosition;
use uuid::Uuid;

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

/// A started session (its `Debug` leaves the bearer token out).
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

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("account_id", &self.account_id)
            .field("session_id", &self.session_id)
            .field("expires_at", &self.expires_at)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    /// Turns what the client sent into the proof the aggregate checks; `None` when 2FA is
    /// off. The aggregate refuses a step used before and an unknown recovery code.
    pub(super) fn prove(
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
        let stale_hash = hash
            .filter(|hash| !Passwords::is_current(hash))
            .map(str::to_owned);
        let now = self.clock.now();
        let known = account.as_ref().and_then(|a| a.id);
        let (Some(account), true) = (account, verified) else {
            if let Some(account_id) = known {
                self.record_failure(ctx, account_id, SignInFailure::Password, &cmd.origin, now);
            }
            return Err(CommandError::InvalidCredentials);
        };
        let account_id = account.id.ok_or(CommandError::InvalidCredentials)?;
        // Only someone who knows the password learns that a code is needed.
        let second_factor = match self.prove(&account, cmd.second_factor.as_ref(), now) {
            Err(CommandError::InvalidSecondFactor) => {
                let reason = SignInFailure::SecondFactor;
                self.record_failure(ctx, account_id, reason, &cmd.origin, now);
                return Err(CommandError::InvalidSecondFactor);
            }
            proved => proved?,
        };
        let origin = cmd.origin.clone();

        let issued = tokens::new_session_token();
        let session_id = SessionId(Uuid::new_v4());
        let expires_at = now.plus(self.sessions.absolute_ttl);
        let start = AccountCommand::StartSession {
            session_id,
            token_hash: issued.hash.clone(),
            verified_password_version: account.password_version,
            second_factor,
            totp_secret: account.totp.secret.clone(),
            expires_at,
            origin: cmd.origin,
            at: now,
        };
        let executed = match self.run(ctx, account_id, now, start).await {
            Err(CommandError::InvalidSecondFactor) => {
                let reason = SignInFailure::SecondFactor;
                self.record_failure(ctx, account_id, reason, &origin, now);
                return Err(CommandError::InvalidSecondFactor);
            }
            executed => executed?,
        };
        if let Some(stale_hash) = stale_hash {
            self.rehash(ctx, account_id, stale_hash, cmd.password);
        }
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

    /// Replaces `stale_hash`, made with earlier parameters, by a hash of `password` with the
    /// current ones, in the background (the sign-in does not wait for it): an account's
    /// password then costs what an unknown address's decoy costs to check, so the time of
    /// a refused sign-in no longer tells which addresses have accounts. A failure is only
    /// logged; the next sign-in tries again.
    fn rehash(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        stale_hash: String,
        password: String,
    ) {
        let (accounts, ctx) = (self.clone(), ctx.clone());
        tokio::spawn(async move {
            let rehashed = async {
                let password_hash = accounts.passwords.hash(&password).await?;
                let at = accounts.clock.now();
                let command = AccountCommand::RehashPassword {
                    verified_hash: stale_hash,
                    password_hash,
                    at,
                };
                accounts.run(&ctx, account_id, at, command).await
            };
            if let Err(error) = rehashed.await {
                tracing::warn!(%error, %account_id, "could not rehash a password");
            }
        });
    }

    /// Records a refused sign-in on the account's `signins-` stream, for its security log.
    /// The append runs in the background: the refusal is answered after the same work
    /// whether or not an account has the address, and a failure to record is only logged.
    fn record_failure(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        reason: SignInFailure,
        origin: &SessionOrigin,
        at: Timestamp,
    ) {
        let event = DomainEvent::from(SignInEvent::SignInFailed {
            reason,
            origin: origin.clone(),
            at,
        });
        let metadata = ctx.metadata(Some(account_id.0), at);
        let (log, codec) = (self.exec.log().clone(), self.exec.codec().clone());
        tokio::spawn(async move {
            let stream = StreamCategory::SignIns.stream(account_id);
            let appended =
                crate::activity::append_counted(&log, &codec, &stream, &event, metadata).await;
            if let Err(error) = appended {
                tracing::warn!(%error, "could not record a refused sign-in");
            }
        });
    }
}
