//! A forgotten password: a link e-mailed to the account's address sets a new one. Only the
//! latest link works, once, within the hour; any password change ends it. Setting the
//! password ends every session, and proves the account holds its address. The token is
//! signed outside the domain (`vault::AccountLinks`); a command carries the generation of a
//! link whose signature was checked, and the account decides whether that link is live.

use super::rules::resend_wait;
use super::{Account, AccountCommand, AccountError, AccountEvent};
use crate::Timestamp;
use crate::session::RevocationReason;
use std::time::Duration;

/// How long a password reset link works.
pub const PASSWORD_RESET_LINK_LIFETIME: Duration = Duration::from_secs(3600);

/// How long after a reset link was sent another may be (a burst of requests sends one).
pub const PASSWORD_RESET_RESEND_AFTER: Duration = Duration::from_secs(60);

/// The account's latest password reset link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordReset {
    /// The latest link's generation (0: none sent).
    pub generation: u32,
    /// When it stops working.
    pub expires_at: Option<Timestamp>,
    /// When it was sent.
    pub requested_at: Option<Timestamp>,
    /// Whether it may still set a password: no password change since it was sent.
    pub open: bool,
}

impl PasswordReset {
    pub(super) fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::PasswordResetRequested {
                generation,
                expires_at,
                at,
                ..
            } => {
                self.generation = *generation;
                self.expires_at = Some(*expires_at);
                self.requested_at = Some(*at);
                self.open = true;
            }
            // Used, or made pointless by a change from a session.
            AccountEvent::PasswordChanged { .. } => self.open = false,
            _ => {}
        }
    }
}

impl Account {
    /// Whether the reset link of `generation` may set a password at `at`: the latest one,
    /// unused, unexpired. Checked before the slow work of a reset, and again as it is
    /// decided.
    pub fn check_reset_link(&self, generation: u32, at: Timestamp) -> Result<(), AccountError> {
        let reset = &self.password_reset;
        if !self.is_registered() || generation == 0 || generation != reset.generation || !reset.open
        {
            return Err(AccountError::PasswordResetLinkInvalid);
        }
        if reset.expires_at.is_none_or(|expiry| at >= expiry) {
            return Err(AccountError::PasswordResetLinkExpired);
        }
        Ok(())
    }

    /// Decides [`AccountCommand::RequestPasswordReset`] and
    /// [`AccountCommand::ResetPassword`] for a registered account.
    pub(super) fn decide_password_reset(
        &self,
        command: &AccountCommand,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::RequestPasswordReset { at } => {
                let sent = self.password_reset.requested_at;
                if let Some(retry_after) = resend_wait(sent, PASSWORD_RESET_RESEND_AFTER, *at) {
                    return Err(AccountError::PasswordResetRequestedRecently { retry_after });
                }
                let email = self.email.clone().ok_or(AccountError::NotFound)?;
                Ok(vec![AccountEvent::PasswordResetRequested {
                    email,
                    generation: self.password_reset.generation + 1,
                    expires_at: at.plus(PASSWORD_RESET_LINK_LIFETIME),
                    at: *at,
                }])
            }
            AccountCommand::ResetPassword {
                generation,
                new_password_hash,
                second_factor,
                totp_secret,
                revoke_tokens,
                at,
            } => {
                self.check_reset_link(*generation, *at)?;
                // With 2FA on, the mailbox alone does not take the account.
                let used_factor =
                    self.second_factor_events(second_factor.as_ref(), totp_secret.as_deref(), *at)?;
                let mut events = vec![AccountEvent::PasswordChanged {
                    password_hash: new_password_hash.clone(),
                    changed_at: *at,
                    changed_by_session: None,
                    tokens_revoked: *revoke_tokens,
                    reset_link: Some(*generation),
                    second_factor: second_factor.clone(),
                }];
                events.extend(used_factor);
                events.extend(self.revoke_all_but(None, RevocationReason::PasswordChanged, *at));
                // The link reached the address: the account holds it.
                if !self.email_verification.is_verified() {
                    events.push(AccountEvent::EmailVerified {
                        generation: self.email_verification.generation,
                        at: *at,
                    });
                }
                Ok(events)
            }
            _ => unreachable!("not a password reset command"),
        }
    }
}
