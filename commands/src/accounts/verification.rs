//! Verifying an account's e-mail address: a new link on request, and a link opened. The
//! link's token is checked here (its signature, `vault::AccountLinks`); whether it is
//! still the live link is the account's decision.

use super::Accounts;
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::account::{AccountCommand, AccountError};
use domain::{AccountId, Timestamp};
use store::GlobalPosition;

impl Accounts {
    /// E-mails a new verification link to the account's address (the mail follows from
    /// the event); refused once verified, or within a minute of the last link. Returns
    /// when the new link stops working.
    #[tracing::instrument(skip_all, fields(account = %account_id))]
    pub async fn request_email_verification(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Timestamp, CommandError> {
        let at = self.clock.now();
        let executed = self
            .run(
                ctx,
                account_id,
                at,
                AccountCommand::RequestEmailVerification { at },
            )
            .await?;
        if executed.events.is_empty() {
            return Err(CommandError::Internal(
                "a verification request appended nothing".into(),
            ));
        }
        executed
            .state
            .email_verification
            .expires_at
            .ok_or_else(|| CommandError::Internal("a link sent without an expiry".into()))
    }

    /// Verifies the address of the account a link's `token` names. Returns the account
    /// and, if the address was not verified before, where that was committed.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(
        &self,
        ctx: &CommandContext,
        token: &str,
    ) -> Result<(AccountId, Option<GlobalPosition>), CommandError> {
        let links = self.links(|set| &set.email_verification, "verification")?;
        let (account_id, generation) = links
            .verify(token)
            .ok_or(AccountError::VerificationLinkInvalid)?;
        let at = self.clock.now();
        let executed = self
            .run(
                ctx,
                account_id,
                at,
                AccountCommand::VerifyEmail { generation, at },
            )
            .await
            .map_err(|error| match error {
                // A genuine link of an account deleted since.
                CommandError::AccountNotFound => AccountError::VerificationLinkInvalid.into(),
                other => other,
            })?;
        Ok((account_id, executed.position))
    }
}
