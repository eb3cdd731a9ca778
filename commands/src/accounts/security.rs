//! Two-factor authentication (enrol, confirm, turn off, recovery codes),
//! re-authentication of a session, and the record of a data export (which needs it).

use super::{Accounts, FactorInput};
use crate::error::CommandError;
use crate::executor::CommandContext;
use crate::totp::{self, Enrollment};
use domain::account::AccountCommand;
use domain::{AccountId, SessionId};
use store::GlobalPosition;

/// Recovery codes, shown once.
#[derive(Debug)]
pub struct RecoveryCodes {
    /// The codes.
    pub codes: Vec<String>,
    /// Where they were committed.
    pub position: Option<GlobalPosition>,
}

impl Accounts {
    /// Starts 2FA enrolment: a new secret, its link and QR code. Nothing is enforced until
    /// a code confirms it. Needs a recent proof: a stolen session must not bind the
    /// account to an authenticator of its own.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn start_totp(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
    ) -> Result<Enrollment, CommandError> {
        let account = self.account(account_id).await?;
        let email = account.email.clone().ok_or(CommandError::AccountNotFound)?;
        let secret = totp::new_secret();
        let enrollment =
            totp::enrollment(&secret, email.as_str()).map_err(CommandError::Internal)?;
        let now = self.clock.now();
        self.run(
            ctx,
            account_id,
            now,
            AccountCommand::StartTotpEnrollment {
                secret,
                fresh: self.fresh(session_id, now),
                at: now,
            },
        )
        .await?;
        Ok(enrollment)
    }

    /// Turns 2FA on with a code of the pending secret; returns the recovery codes. Needs a
    /// recent proof, checked before the code is.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn confirm_totp(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        code: &str,
    ) -> Result<RecoveryCodes, CommandError> {
        let account = self.account(account_id).await?;
        let secret = match (&account.totp.secret, &account.totp.pending_secret) {
            (Some(_), _) => return Err(domain::account::AccountError::TotpAlreadyEnabled.into()),
            (None, Some(pending)) => pending.clone(),
            (None, None) => return Err(domain::account::AccountError::NoPendingEnrollment.into()),
        };
        let now = self.clock.now();
        self.require_fresh(account_id, session_id, now).await?;
        let unix = now.datetime().unix_timestamp().max(0) as u64;
        let step = totp::verify(&secret, code, unix).ok_or(CommandError::InvalidSecondFactor)?;
        let (codes, recovery_code_hashes) = totp::new_recovery_codes();
        let executed = self
            .run(
                ctx,
                account_id,
                now,
                AccountCommand::ConfirmTotp {
                    secret,
                    step,
                    recovery_code_hashes,
                    fresh: self.fresh(session_id, now),
                    at: now,
                },
            )
            .await?;
        Ok(RecoveryCodes {
            codes,
            position: executed.position,
        })
    }

    /// Turns 2FA off: needs the password, a code and a recent proof.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn disable_totp(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        password: &str,
        factor: FactorInput,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let now = self.clock.now();
        self.require_fresh(account_id, session_id, now).await?;
        let account = self.verify_password(account_id, password).await?;
        if !account.totp.enabled() {
            return Err(domain::account::AccountError::TotpNotEnabled.into());
        }
        let second_factor = self
            .prove(&account, Some(&factor), now)?
            .ok_or(CommandError::InvalidSecondFactor)?;
        let command = AccountCommand::DisableTotp {
            verified_password_version: account.password_version,
            second_factor,
            totp_secret: account.totp.secret.clone(),
            fresh: self.fresh(session_id, now),
            at: now,
        };
        Ok(self.run(ctx, account_id, now, command).await?.position)
    }

    /// Replaces the recovery codes (the old ones stop working); needs a recent proof.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn regenerate_recovery_codes(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
    ) -> Result<RecoveryCodes, CommandError> {
        let now = self.clock.now();
        let (codes, recovery_code_hashes) = totp::new_recovery_codes();
        let command = AccountCommand::RegenerateRecoveryCodes {
            recovery_code_hashes,
            fresh: self.fresh(session_id, now),
            at: now,
        };
        let executed = self.run(ctx, account_id, now, command).await?;
        Ok(RecoveryCodes {
            codes,
            position: executed.position,
        })
    }

    /// Refreshes the session's proof of credentials: the password, and a code with 2FA on.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn reauthenticate(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        password: &str,
        factor: Option<FactorInput>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let account = self.verify_password(account_id, password).await?;
        let now = self.clock.now();
        let second_factor = self.prove(&account, factor.as_ref(), now)?;
        let command = AccountCommand::Reauthenticate {
            session_id,
            verified_password_version: account.password_version,
            second_factor,
            totp_secret: account.totp.secret.clone(),
            at: now,
        };
        let executed = self
            .exec
            .execute::<domain::account::Account, _>(
                &super::account_stream(account_id),
                ctx,
                Some(account_id.0),
                now,
                |state| {
                    use domain::Aggregate;
                    state.decide(&command).map_err(|e| match e {
                        domain::account::AccountError::CredentialsChanged => {
                            CommandError::WrongPassword
                        }
                        other => other.into(),
                    })
                },
            )
            .await?;
        Ok(executed.position)
    }

    /// Records that the session downloads the account's data (the security log shows it,
    /// and the account is told); refused unless the session proved itself recently.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn record_data_export(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        let fresh = self.fresh(session_id, at);
        let command = AccountCommand::RecordDataExport { fresh, at };
        Ok(self.run(ctx, account_id, at, command).await?.position)
    }

    /// Refuses a sensitive change from a session whose proof is stale, before any slow work
    /// (the command itself decides it again on the state it appends to).
    pub(super) async fn require_fresh(
        &self,
        account_id: AccountId,
        session_id: SessionId,
        now: domain::Timestamp,
    ) -> Result<(), CommandError> {
        super::check_fresh(&self.exec, account_id, &self.fresh(session_id, now)).await
    }
}
