//! A forgotten password: a reset link e-mailed on request, and a new password set through
//! it. The link's token is checked here (its signature, `vault::AccountLinks`); whether it
//! is still the live link is the account's decision.

use super::{Accounts, Changed, FactorInput};
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::account::{AccountCommand, AccountError, AccountEvent};
use domain::email::EmailAddress;
use domain::{AccountId, password};

/// `POST /auth/password-reset/confirm`.
#[derive(Clone)]
pub struct ResetPassword {
    /// The token of the link in the e-mail (`pwr_…`).
    pub token: String,
    /// Must meet the policy.
    pub new_password: String,
    /// Needed with 2FA on.
    pub second_factor: Option<FactorInput>,
    /// Also revoke every API and CLI token.
    pub revoke_tokens: bool,
}

impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPassword")
            .field("revoke_tokens", &self.revoke_tokens)
            .finish_non_exhaustive()
    }
}

impl Accounts {
    fn reset_links(&self) -> Result<&vault::AccountLinks, CommandError> {
        self.links(|set| &set.password_reset, "password reset")
    }

    /// The address of the account a reset link's `token` names, if this service signed it
    /// and the account exists (whether the link is still live is not checked): wrong
    /// codes sent with the link count against that address's budget, as at sign-in.
    pub async fn password_reset_address(
        &self,
        token: &str,
    ) -> Result<Option<EmailAddress>, CommandError> {
        let Some((account_id, _)) = self.reset_links()?.verify(token) else {
            return Ok(None);
        };
        let account = self.account(account_id).await?;
        Ok(account.is_registered().then_some(account.email).flatten())
    }

    /// E-mails a reset link to the account holding `email`, if one does (the mail follows
    /// from the event); refused within a minute of the last link. The caller answers the
    /// same whatever happens, so that nobody learns which addresses have accounts.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        &self,
        ctx: &CommandContext,
        email: &EmailAddress,
    ) -> Result<(), CommandError> {
        let Some(account_id) = self.find_by_email(email).await?.and_then(|a| a.id) else {
            return Ok(());
        };
        let at = self.clock.now();
        self.run(
            ctx,
            account_id,
            at,
            AccountCommand::RequestPasswordReset { at },
        )
        .await?;
        Ok(())
    }

    /// Sets a new password through a reset link: every session ends (and, if asked, every
    /// token). With 2FA on, the second factor is needed too. Returns the account and what
    /// changed.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(
        &self,
        ctx: &CommandContext,
        cmd: ResetPassword,
    ) -> Result<(AccountId, Changed), CommandError> {
        let (account_id, generation) = self
            .reset_links()?
            .verify(&cmd.token)
            .ok_or(AccountError::PasswordResetLinkInvalid)?;
        password::check(&cmd.new_password).map_err(CommandError::WeakPassword)?;
        let now = self.clock.now();
        let account = self.account(account_id).await?;
        // A dead link learns nothing of the second factor, and costs no hashing.
        account.check_reset_link(generation, now)?;
        let second_factor = self.prove(&account, cmd.second_factor.as_ref(), now)?;
        let new_password_hash = self.passwords.hash(&cmd.new_password).await?;
        let command = AccountCommand::ResetPassword {
            generation,
            new_password_hash,
            second_factor,
            totp_secret: account.totp.secret.clone(),
            revoke_tokens: cmd.revoke_tokens,
            at: now,
        };
        let executed =
            self.run(ctx, account_id, now, command)
                .await
                .map_err(|error| match error {
                    // A genuine link of an account deleted since.
                    CommandError::AccountNotFound => AccountError::PasswordResetLinkInvalid.into(),
                    other => other,
                })?;
        let sessions_revoked = executed
            .events
            .iter()
            .filter(|e| matches!(e, AccountEvent::SessionRevoked { .. }))
            .count();
        Ok((
            account_id,
            Changed {
                sessions_revoked,
                position: executed.position,
            },
        ))
    }
}
