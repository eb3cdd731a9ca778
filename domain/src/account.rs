//! The account aggregate: registration, address, profile, password, two-factor authentication,
//! the sessions the account holds, and its deletion. Its events are in `events`, its
//! commands in `commands`, its decisions in `decide` (and the files it delegates to); this
//! file holds the state.

mod commands;
mod decide;
mod email_change;
mod events;
mod evolve;
mod password_reset;
mod rules;
mod tokens;
mod verification;

pub use commands::{AccountCommand, AccountError, Fresh};
pub use email_change::{
    EMAIL_CHANGE_LINK_LIFETIME, EMAIL_CHANGE_RESEND_AFTER, EmailChange, EmailChangeLink,
    PendingEmail,
};
pub use events::{AccountEvent, SecondFactor};
pub use password_reset::{
    PASSWORD_RESET_LINK_LIFETIME, PASSWORD_RESET_RESEND_AFTER, PasswordReset,
};
pub use verification::{EmailVerification, VERIFICATION_LINK_LIFETIME, VERIFICATION_RESEND_AFTER};

use crate::Aggregate;
use crate::access_token::TokenKind;
use crate::email::{DisplayName, EmailAddress};
use crate::profile::Bio;
use crate::session::{ActiveSession, SessionStatus};
use crate::{AccountId, SessionId, Timestamp};
use imbl::{OrdMap, OrdSet};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// The avatar, as the account references it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// Where it is stored.
    pub blob_key: String,
    /// Its media type.
    pub content_type: String,
}

/// Two-factor authentication state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotpState {
    /// Secret of an enrolment not confirmed yet.
    pub pending_secret: Option<String>,
    /// The active secret, with 2FA on.
    pub secret: Option<String>,
    /// The latest step used: a code of this step or earlier is refused.
    pub last_step: Option<u64>,
    /// Hashes of the unused recovery codes.
    pub recovery_codes: BTreeSet<String>,
}

impl TotpState {
    /// Whether 2FA is on.
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

/// A token the account counts as live (until revoked or past its expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveToken {
    /// API or CLI.
    pub kind: TokenKind,
    /// When it stops counting by itself, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was issued.
    pub issued_at: Timestamp,
}

/// An account as its events describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Set once registered.
    pub id: Option<AccountId>,
    /// Current address.
    pub email: Option<EmailAddress>,
    /// Current display name.
    pub display_name: Option<DisplayName>,
    /// Current bio.
    pub bio: Option<Bio>,
    /// Whether the creator profile is public.
    pub public_profile: bool,
    /// Current avatar.
    pub avatar: Option<Avatar>,
    /// Current argon2id PHC string.
    pub password_hash: Option<String>,
    /// Bumped on every password change; a sign-in carries the version it verified.
    pub password_version: u32,
    /// When it registered.
    pub registered_at: Option<Timestamp>,
    /// Whether the address is proven, and the live verification link if not.
    pub email_verification: EmailVerification,
    /// The latest password reset link.
    pub password_reset: PasswordReset,
    /// The latest change of address, and the one pending if any.
    pub email_change: EmailChange,
    /// Sessions not revoked (some may have passed their absolute expiry).
    pub sessions: OrdMap<SessionId, ActiveSession>,
    /// Sessions revoked, so that revoking again is a no-op rather than a 404.
    pub ended_sessions: OrdSet<SessionId>,
    /// Devices that signed in before, by [`crate::session::SessionOrigin::device_key`]:
    /// device class and network.
    pub known_devices: OrdSet<String>,
    /// Two-factor authentication.
    pub totp: TotpState,
    /// API and CLI tokens issued since tokens were counted, not revoked (some may have
    /// expired; [`Account::live_tokens`] leaves those out).
    pub access_tokens: BTreeMap<Uuid, LiveToken>,
    /// Deleted.
    pub deleted: bool,
    /// Whether its erasure is recorded.
    pub erased: bool,
}

impl Account {
    /// Whether the account exists (registered and not deleted).
    pub fn is_registered(&self) -> bool {
        self.id.is_some() && !self.deleted
    }

    /// Whether this account issued the session, and whether it still lives.
    pub fn session_status(&self, session_id: SessionId) -> SessionStatus {
        if self.sessions.contains_key(&session_id) {
            SessionStatus::Active
        } else if self.ended_sessions.contains(&session_id) {
            SessionStatus::Ended
        } else {
            SessionStatus::Unknown
        }
    }
}

impl Aggregate for Account {
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        self.decide_command(command)
    }

    fn evolve(&mut self, event: &AccountEvent) {
        self.apply(event);
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_devices;
#[cfg(test)]
mod tests_email_change;
#[cfg(test)]
mod tests_password_reset;
#[cfg(test)]
mod tests_security;
#[cfg(test)]
mod tests_sessions;
#[cfg(test)]
mod tests_support;
#[cfg(test)]
mod tests_tokens;
#[cfg(test)]
mod tests_verification;
