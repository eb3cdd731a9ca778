//! Proving that an account holds its e-mail address: a link e-mailed at registration and
//! again on request, of which only the latest works, until it expires. The link's token is
//! signed outside the domain (`vault::VerificationLinks`); a command carries the
//! generation of a link whose signature was checked, and the account decides whether that
//! link is still the live one.

use super::rules::resend_wait;
use super::{Account, AccountCommand, AccountError, AccountEvent};
use crate::Timestamp;
use std::time::Duration;

/// How long a verification link works.
pub const VERIFICATION_LINK_LIFETIME: Duration = Duration::from_secs(3 * 86_400);

/// How long after a link was sent another may be asked for (the mail is on its way; a
/// burst of requests sends one).
pub const VERIFICATION_RESEND_AFTER: Duration = Duration::from_secs(60);

/// Whether an account's address is verified, and its live link if not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailVerification {
    /// When the address was proven, if it was.
    pub verified_at: Option<Timestamp>,
    /// The latest link's generation (0: none sent).
    pub generation: u32,
    /// When the latest link stops working.
    pub expires_at: Option<Timestamp>,
    /// When the latest link was sent.
    pub requested_at: Option<Timestamp>,
}

impl EmailVerification {
    /// Whether the account proved it holds its address.
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }

    pub(super) fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::EmailVerificationRequested {
                generation,
                expires_at,
                at,
                ..
            } => {
                self.generation = *generation;
                self.expires_at = Some(*expires_at);
                self.requested_at = Some(*at);
            }
            AccountEvent::EmailVerified { at, .. } => self.verified_at = Some(*at),
            _ => {}
        }
    }
}

impl Account {
    /// Decides [`AccountCommand::RequestEmailVerification`] and
    /// [`AccountCommand::VerifyEmail`] for a registered account.
    pub(super) fn decide_verification(
        &self,
        command: &AccountCommand,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        let verification = &self.email_verification;
        match command {
            AccountCommand::RequestEmailVerification { at } => {
                if verification.is_verified() {
                    return Err(AccountError::EmailAlreadyVerified);
                }
                let sent = verification.requested_at;
                if let Some(retry_after) = resend_wait(sent, VERIFICATION_RESEND_AFTER, *at) {
                    return Err(AccountError::VerificationRequestedRecently { retry_after });
                }
                let email = self.email.clone().ok_or(AccountError::NotFound)?;
                Ok(vec![AccountEvent::EmailVerificationRequested {
                    email,
                    generation: verification.generation + 1,
                    expires_at: at.plus(VERIFICATION_LINK_LIFETIME),
                    at: *at,
                }])
            }
            AccountCommand::VerifyEmail { generation, at } => {
                // Opening a link again, or an older one, once verified changes nothing.
                if verification.is_verified() {
                    return Ok(vec![]);
                }
                if *generation == 0 || *generation != verification.generation {
                    return Err(AccountError::VerificationLinkInvalid);
                }
                if verification.expires_at.is_none_or(|expiry| *at >= expiry) {
                    return Err(AccountError::VerificationLinkExpired);
                }
                Ok(vec![AccountEvent::EmailVerified {
                    generation: *generation,
                    at: *at,
                }])
            }
            _ => unreachable!("not a verification command"),
        }
    }
}
