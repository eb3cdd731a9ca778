//! Changing an account's address: asked for from a session (with the password and a recent
//! proof), confirmed through a link e-mailed to the new address. Only the latest link
//! works, within a day; the change itself proves the account holds the new address. The
//! token is signed outside the domain (`vault::AccountLinks`); a command carries the
//! generation of a link whose signature was checked, and the account decides whether that
//! link is live. The new address is reserved (its `email-` stream) by the command layer
//! before the change is appended, and the old one released after.

use super::rules::resend_wait;
use super::{Account, AccountCommand, AccountError, AccountEvent};
use crate::Timestamp;
use crate::email::EmailAddress;
use std::time::Duration;

/// How long a link confirming a change of address works.
pub const EMAIL_CHANGE_LINK_LIFETIME: Duration = Duration::from_secs(86_400);

/// How long after a change was asked for another may be (a burst sends one mail).
pub const EMAIL_CHANGE_RESEND_AFTER: Duration = Duration::from_secs(60);

/// An address the account asked to move to, not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEmail {
    /// The new address (the link went there).
    pub email: EmailAddress,
    /// When the link stops working.
    pub expires_at: Timestamp,
}

/// The account's latest change of address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailChange {
    /// The latest link's generation (0: none sent).
    pub generation: u32,
    /// The change waiting for its link, if one is.
    pub pending: Option<PendingEmail>,
    /// When the latest link was sent.
    pub requested_at: Option<Timestamp>,
    /// The generation of the last confirmed change (0: none), so that opening its link
    /// again changes nothing rather than failing.
    pub confirmed: u32,
}

impl EmailChange {
    pub(super) fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::EmailChangeRequested {
                email,
                generation,
                expires_at,
                at,
            } => {
                self.generation = *generation;
                self.pending = Some(PendingEmail {
                    email: email.clone(),
                    expires_at: *expires_at,
                });
                self.requested_at = Some(*at);
            }
            AccountEvent::EmailChangeCancelled { .. } => self.pending = None,
            AccountEvent::EmailChanged { generation, .. } => {
                self.pending = None;
                self.confirmed = *generation;
            }
            _ => {}
        }
    }
}

/// What opening a genuine change link at a given time would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeLink<'a> {
    /// Move the account to this address.
    Moves(&'a EmailAddress),
    /// Nothing: the change of that link was made already.
    AlreadyConfirmed,
}

impl Account {
    /// Whether the change link of `generation` may move the account at `at`: the latest,
    /// unconfirmed, uncancelled and unexpired (or the link of the change already made,
    /// which does nothing again). Checked before the new address is reserved, and again as
    /// the change is decided.
    pub fn check_email_change_link(
        &self,
        generation: u32,
        at: Timestamp,
    ) -> Result<EmailChangeLink<'_>, AccountError> {
        let change = &self.email_change;
        if !self.is_registered() || generation == 0 {
            return Err(AccountError::EmailChangeLinkInvalid);
        }
        if generation == change.confirmed {
            return Ok(EmailChangeLink::AlreadyConfirmed);
        }
        let pending = match &change.pending {
            Some(pending) if generation == change.generation => pending,
            _ => return Err(AccountError::EmailChangeLinkInvalid),
        };
        if at >= pending.expires_at {
            return Err(AccountError::EmailChangeLinkExpired);
        }
        Ok(EmailChangeLink::Moves(&pending.email))
    }

    /// Decides [`AccountCommand::RequestEmailChange`], [`AccountCommand::CancelEmailChange`]
    /// and [`AccountCommand::ConfirmEmailChange`] for a registered account.
    pub(super) fn decide_email_change(
        &self,
        command: &AccountCommand,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        let change = &self.email_change;
        match command {
            AccountCommand::RequestEmailChange {
                new_email,
                verified_password_version,
                fresh,
                at,
            } => {
                self.check_password_version(*verified_password_version)?;
                self.check_fresh(fresh)?;
                let current = self.email.as_ref().ok_or(AccountError::NotFound)?;
                if current.canonical() == new_email.canonical() {
                    return Err(AccountError::EmailUnchanged);
                }
                let sent = change.requested_at;
                if let Some(retry_after) = resend_wait(sent, EMAIL_CHANGE_RESEND_AFTER, *at) {
                    return Err(AccountError::EmailChangeRequestedRecently { retry_after });
                }
                Ok(vec![AccountEvent::EmailChangeRequested {
                    email: new_email.clone(),
                    generation: change.generation + 1,
                    expires_at: at.plus(EMAIL_CHANGE_LINK_LIFETIME),
                    at: *at,
                }])
            }
            AccountCommand::CancelEmailChange { at } => Ok(change
                .pending
                .is_some()
                .then_some(AccountEvent::EmailChangeCancelled {
                    generation: change.generation,
                    at: *at,
                })
                .into_iter()
                .collect()),
            AccountCommand::ConfirmEmailChange { generation, at } => {
                match self.check_email_change_link(*generation, *at)? {
                    EmailChangeLink::AlreadyConfirmed => Ok(vec![]),
                    EmailChangeLink::Moves(new_email) => Ok(vec![AccountEvent::EmailChanged {
                        old_email: self.email.clone().ok_or(AccountError::NotFound)?,
                        new_email: new_email.clone(),
                        generation: *generation,
                        at: *at,
                    }]),
                }
            }
            _ => unreachable!("not an e-mail change command"),
        }
    }
}
