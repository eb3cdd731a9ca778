//! Changing an account's address: asked for from a session, withdrawn, or confirmed
//! through the link e-mailed to the new address. The link's token is checked here (its
//! signature, `vault::AccountLinks`); whether it is still the live link is the account's
//! decision. Confirming reserves the new address on its `email-` stream, appends the
//! change, then releases the old address; a crash between those steps leaves a
//! reservation its holder no longer claims, which the next claimant takes over
//! (`holder_let_go`).

use super::{Accounts, account_stream, invalid};
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::account::{Account, AccountCommand, AccountError, AccountEvent, EmailChangeLink};
use domain::email::EmailAddress;
use domain::reservation::EmailReservation;
use domain::{AccountId, Aggregate, SessionId, Timestamp};
use store::GlobalPosition;

/// `POST /me/email/change`.
#[derive(Clone)]
pub struct ChangeEmail {
    /// The new address, as typed.
    pub new_email: String,
    /// The account's password.
    pub password: String,
}

impl std::fmt::Debug for ChangeEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChangeEmail { .. }")
    }
}

/// A change of address waiting for its link.
#[derive(Debug, Clone)]
pub struct EmailChangeSent {
    /// The address the link went to.
    pub new_email: EmailAddress,
    /// When the link stops working.
    pub expires_at: Timestamp,
    /// Where the request was committed.
    pub position: Option<GlobalPosition>,
}

impl Accounts {
    /// Asks to move the account to another address (with the password, from a session
    /// that proved itself recently): a link to confirm is e-mailed there (the mail follows
    /// from the event), replacing any earlier one. Refused at once if another account holds
    /// the address, and within a minute of the last request.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn request_email_change(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        cmd: ChangeEmail,
    ) -> Result<EmailChangeSent, CommandError> {
        let new_email = EmailAddress::parse(&cmd.new_email).map_err(|e| invalid("new_email", e))?;
        let now = self.clock.now();
        // A stale proof is refused before the (slow) password check.
        self.require_fresh(account_id, session_id, now).await?;
        let account = self.verify_password(account_id, &cmd.password).await?;
        // Registration says as much to anyone; the confirmation decides it again.
        if !self.address_free_for(&new_email, account_id, now).await? {
            return Err(CommandError::EmailTaken);
        }
        let command = AccountCommand::RequestEmailChange {
            new_email: new_email.clone(),
            verified_password_version: account.password_version,
            fresh: self.fresh(session_id, now),
            at: now,
        };
        let executed = self
            .run_with(ctx, account_id, now, |state| {
                // Changed meanwhile: the password given was checked against an older one.
                state.decide(&command).map_err(|e| match e {
                    AccountError::CredentialsChanged => CommandError::WrongPassword,
                    other => other.into(),
                })
            })
            .await?;
        let expires_at = executed
            .state
            .email_change
            .pending
            .as_ref()
            .map(|pending| pending.expires_at)
            .ok_or_else(|| CommandError::Internal("a change asked for without a link".into()))?;
        Ok(EmailChangeSent {
            new_email,
            expires_at,
            position: executed.position,
        })
    }

    /// Withdraws the pending change of address, if there is one: its link stops working.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn cancel_email_change(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        let command = AccountCommand::CancelEmailChange { at };
        Ok(self.run(ctx, account_id, at, command).await?.position)
    }

    /// Moves the account a change link's `token` names to the address the link went to.
    /// Returns the account and, if it moved now, where that was committed (opening the
    /// link again changes nothing).
    #[tracing::instrument(skip_all)]
    pub async fn confirm_email_change(
        &self,
        ctx: &CommandContext,
        token: &str,
    ) -> Result<(AccountId, Option<GlobalPosition>), CommandError> {
        let links = self.links(|set| &set.email_change, "change-of-address")?;
        let (account_id, generation) = links
            .verify(token)
            .ok_or(AccountError::EmailChangeLinkInvalid)?;
        let at = self.clock.now();
        let account = self.account(account_id).await?;
        let new_email = match account.check_email_change_link(generation, at)? {
            EmailChangeLink::AlreadyConfirmed => return Ok((account_id, None)),
            EmailChangeLink::Moves(email) => email.clone(),
        };
        let new_stream = self.email_index.stream(&new_email);
        self.reserve_email(ctx, &new_email, account_id, at).await?;
        let command = AccountCommand::ConfirmEmailChange { generation, at };
        let executed = match self.run(ctx, account_id, at, command).await {
            Ok(executed) => executed,
            Err(error) => {
                self.give_back(ctx, &new_stream, account_id).await;
                return Err(match error {
                    // A genuine link of an account deleted since.
                    CommandError::AccountNotFound => AccountError::EmailChangeLinkInvalid.into(),
                    other => other,
                });
            }
        };
        if let Some(AccountEvent::EmailChanged { old_email, .. }) = executed.events.first() {
            let old_stream = self.email_index.stream(old_email);
            if let Err(error) = self.release_email(ctx, &old_stream, account_id).await {
                // The change stands; the old address frees itself when next claimed.
                tracing::warn!(%error, "releasing the old address after a change");
            }
        }
        Ok((account_id, executed.position))
    }

    /// Whether `account_id` may take `email`: nobody holds it, the account itself does, or
    /// its holder let it go.
    async fn address_free_for(
        &self,
        email: &EmailAddress,
        account_id: AccountId,
        now: Timestamp,
    ) -> Result<bool, CommandError> {
        let stream = self.email_index.stream(email);
        let current = self.exec.load::<EmailReservation>(&stream).await?.state;
        match (current.holder, current.reserved_at) {
            (Some(holder), Some(at)) if holder != account_id => {
                self.holder_let_go(&stream, holder, at, now).await
            }
            _ => Ok(true),
        }
    }

    /// Releases the address reserved for a change that was then refused, unless the
    /// account moved there after all (the same link opened twice at once).
    async fn give_back(&self, ctx: &CommandContext, stream: &str, account_id: AccountId) {
        let moved_there = match self.exec.load::<Account>(&account_stream(account_id)).await {
            Ok(loaded) => loaded
                .state
                .email
                .as_ref()
                .is_some_and(|email| self.email_index.stream(email) == stream),
            Err(_) => false,
        };
        if !moved_there && let Err(error) = self.release_email(ctx, stream, account_id).await {
            // Left held, it frees itself when next claimed (`holder_let_go`).
            tracing::warn!(%error, "giving back an address reserved for a refused change");
        }
    }
}
