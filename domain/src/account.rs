//! The account aggregate: registration, profile, password, two-factor authentication,
//! the sessions the account holds, and its deletion. Decisions live in
//! [`decide`](self::decide); this file holds the events, commands and state.

mod decide;

use crate::Aggregate;
use crate::email::{DisplayName, EmailAddress};
use crate::event::Event;
use crate::profile::Bio;
use crate::session::{ActiveSession, RevocationReason, SessionOrigin, SessionStatus};
use crate::{AccountId, SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The second factor a sign-in or re-authentication proved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactor {
    /// A TOTP code of this time step (30 s since the epoch).
    Totp {
        /// The step.
        step: u64,
    },
    /// A recovery code (its SHA-256, hex).
    RecoveryCode {
        /// The hash.
        code_hash: String,
    },
}

/// What happened to an account. Stored in the `account-<id>` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "account")]
pub enum AccountEvent {
    /// An account was created.
    #[event(personal(email, display_name, password_hash))]
    AccountRegistered {
        /// The new account.
        account_id: AccountId,
        /// As typed at registration.
        email: EmailAddress,
        /// Shown in the studio.
        display_name: DisplayName,
        /// An argon2id PHC string.
        password_hash: String,
        /// When.
        registered_at: Timestamp,
    },
    /// The password was replaced.
    #[event(personal(password_hash))]
    PasswordChanged {
        /// The new argon2id PHC string.
        password_hash: String,
        /// When.
        changed_at: Timestamp,
        /// The session that changed it.
        changed_by_session: Option<SessionId>,
    },
    /// A sign-in started a session.
    #[event(personal(origin))]
    SessionStarted {
        /// The new session.
        session_id: SessionId,
        /// SHA-256 (hex) of the bearer token; the token itself is never stored.
        token_hash: String,
        /// When.
        started_at: Timestamp,
        /// Absolute expiry.
        expires_at: Timestamp,
        /// Device, IP, user agent and location.
        origin: SessionOrigin,
        /// The second factor proved, with 2FA on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        second_factor: Option<SecondFactor>,
    },
    /// A sign-in came from a device this account had not used before (for a notice).
    #[event(personal(device, ip, location))]
    NewDeviceSignedIn {
        /// The session.
        session_id: SessionId,
        /// e.g. "Firefox 128 on Linux".
        device: String,
        /// Where from.
        ip: Option<String>,
        /// Coarse location.
        location: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// A session proved the password (and second factor) again.
    #[event(no_personal_data)]
    SessionReauthenticated {
        /// The session.
        session_id: SessionId,
        /// The second factor proved, with 2FA on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        second_factor: Option<SecondFactor>,
        /// When.
        at: Timestamp,
    },
    /// A session ended before its expiry.
    #[event(no_personal_data)]
    SessionRevoked {
        /// The session.
        session_id: SessionId,
        /// Why.
        reason: RevocationReason,
        /// When.
        revoked_at: Timestamp,
    },
    /// 2FA enrolment began; nothing is enforced until confirmed.
    #[event(personal(secret))]
    TotpEnrollmentStarted {
        /// The shared secret, base32.
        secret: String,
        /// When.
        at: Timestamp,
    },
    /// 2FA is on.
    #[event(no_personal_data)]
    TotpEnabled {
        /// SHA-256 (hex) of each recovery code.
        recovery_code_hashes: Vec<String>,
        /// The step of the code that confirmed it (used once, like any).
        step: u64,
        /// When.
        at: Timestamp,
    },
    /// 2FA is off.
    #[event(no_personal_data)]
    TotpDisabled {
        /// The factor that confirmed it.
        second_factor: SecondFactor,
        /// When.
        at: Timestamp,
    },
    /// New recovery codes replace the old ones.
    #[event(no_personal_data)]
    RecoveryCodesRegenerated {
        /// SHA-256 (hex) of each code.
        recovery_code_hashes: Vec<String>,
        /// When.
        at: Timestamp,
    },
    /// A recovery code was used up.
    #[event(no_personal_data)]
    RecoveryCodeUsed {
        /// Its hash.
        code_hash: String,
        /// Codes left.
        remaining: u32,
        /// When.
        at: Timestamp,
    },
    /// The profile changed; absent fields did not.
    #[event(personal(display_name, bio))]
    ProfileUpdated {
        /// New display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display_name: Option<DisplayName>,
        /// New bio (empty: none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bio: Option<Bio>,
        /// Whether the creator profile is public.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public_profile: Option<bool>,
        /// When.
        at: Timestamp,
    },
    /// A new avatar, in the blob store.
    #[event(no_personal_data)]
    AvatarChanged {
        /// Where it is stored.
        blob_key: String,
        /// Its media type.
        content_type: String,
        /// When.
        at: Timestamp,
    },
    /// The avatar was removed.
    #[event(no_personal_data)]
    AvatarRemoved {
        /// The blob that held it.
        blob_key: String,
        /// When.
        at: Timestamp,
    },
    /// The account was deleted; erasure (key, reservation, blobs) follows.
    #[event(no_personal_data)]
    AccountDeleted {
        /// The e-mail reservation stream to release.
        reservation_stream: String,
        /// The avatar blob to delete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        avatar_blob_key: Option<String>,
        /// When.
        at: Timestamp,
    },
}

/// Proof that a sensitive command comes from a session that proved its credentials
/// recently: the session, and how recent its proof must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    /// The caller's session.
    pub session_id: SessionId,
    /// Its last proof must be at or after this instant.
    pub since: Timestamp,
}

/// What a caller may ask of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Create the account. The e-mail must already be reserved for it.
    Register {
        /// The new id.
        account_id: AccountId,
        /// Validated address.
        email: EmailAddress,
        /// Validated name.
        display_name: DisplayName,
        /// Hash of a password that passed the policy.
        password_hash: String,
        /// Now.
        at: Timestamp,
    },
    /// Start a session after the password was verified against `verified_password_version`.
    StartSession {
        /// The new session.
        session_id: SessionId,
        /// SHA-256 (hex) of the token handed to the client.
        token_hash: String,
        /// The password version the credentials were checked against.
        verified_password_version: u32,
        /// The second factor proved, if any (required with 2FA on).
        second_factor: Option<SecondFactor>,
        /// Absolute expiry.
        expires_at: Timestamp,
        /// Where from.
        origin: SessionOrigin,
        /// Now.
        at: Timestamp,
    },
    /// Refresh a session's proof of credentials.
    Reauthenticate {
        /// The session.
        session_id: SessionId,
        /// The password version the password was checked against.
        verified_password_version: u32,
        /// Required with 2FA on.
        second_factor: Option<SecondFactor>,
        /// Now.
        at: Timestamp,
    },
    /// End a session: its own logout or a revoke from the session list.
    RevokeSession {
        /// The session to end.
        session_id: SessionId,
        /// Logout or revoke.
        reason: RevocationReason,
        /// Now.
        at: Timestamp,
    },
    /// Revoke every live session but `keep`.
    RevokeOtherSessions {
        /// The caller's session.
        keep: SessionId,
        /// Now.
        at: Timestamp,
    },
    /// Replace the password after the current one was verified against `verified_password_version`.
    ChangePassword {
        /// Hash of a new password that passed the policy.
        new_password_hash: String,
        /// The password version the current password was checked against.
        verified_password_version: u32,
        /// Also revoke every session but the caller's.
        sign_out_other_sessions: bool,
        /// The caller's session, which must have proved itself recently.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Begin 2FA enrolment with a new secret.
    StartTotpEnrollment {
        /// Base32 secret.
        secret: String,
        /// Now.
        at: Timestamp,
    },
    /// Turn 2FA on with a code of the pending secret.
    ConfirmTotp {
        /// Step of the code, verified against the pending secret.
        step: u64,
        /// Hashes of the new recovery codes.
        recovery_code_hashes: Vec<String>,
        /// Now.
        at: Timestamp,
    },
    /// Turn 2FA off.
    DisableTotp {
        /// The password version the password was checked against.
        verified_password_version: u32,
        /// A code (or recovery code).
        second_factor: SecondFactor,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Replace the recovery codes.
    RegenerateRecoveryCodes {
        /// Hashes of the new codes.
        recovery_code_hashes: Vec<String>,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Change the profile; `None` fields stay.
    UpdateProfile {
        /// New display name.
        display_name: Option<DisplayName>,
        /// New bio.
        bio: Option<Bio>,
        /// Public or not.
        public_profile: Option<bool>,
        /// Now.
        at: Timestamp,
    },
    /// Set the avatar (already stored).
    SetAvatar {
        /// Where it is stored.
        blob_key: String,
        /// Its media type.
        content_type: String,
        /// Now.
        at: Timestamp,
    },
    /// Remove the avatar.
    RemoveAvatar {
        /// Now.
        at: Timestamp,
    },
    /// Delete the account: every session ends now.
    DeleteAccount {
        /// The password version the password was checked against.
        verified_password_version: u32,
        /// The e-mail reservation stream to release.
        reservation_stream: String,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
}

/// Why an account command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Registration of an id that already exists.
    #[error("the account already exists")]
    AlreadyRegistered,
    /// A command for an account that does not exist (or was deleted).
    #[error("the account does not exist")]
    NotFound,
    /// The password changed after it was verified; the caller must verify again.
    #[error("the credentials changed while the request was processed")]
    CredentialsChanged,
    /// The session id is already in use.
    #[error("the session already exists")]
    SessionExists,
    /// The session was never issued by this account.
    #[error("the session does not exist")]
    SessionNotFound,
    /// A session whose expiry is not after its start.
    #[error("the session expiry must be in the future")]
    InvalidExpiry,
    /// 2FA is on: a code is needed.
    #[error("a two-factor code is required")]
    SecondFactorRequired,
    /// The code was already used, or the recovery code is not valid.
    #[error("the two-factor code is not valid")]
    InvalidSecondFactor,
    /// The session did not prove its credentials recently enough.
    #[error("confirm your password (and code) again first")]
    ReauthenticationRequired,
    /// Enrolling while 2FA is on.
    #[error("two-factor authentication is already on")]
    TotpAlreadyEnabled,
    /// Confirming without an enrolment, or changing 2FA while it is off.
    #[error("two-factor authentication is not on")]
    TotpNotEnabled,
    /// Confirming without an enrolment.
    #[error("start the enrolment first")]
    NoPendingEnrollment,
}

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
    /// Sessions not revoked (some may have passed their absolute expiry).
    pub sessions: BTreeMap<SessionId, ActiveSession>,
    /// Sessions revoked, so that revoking again is a no-op rather than a 404.
    pub ended_sessions: BTreeSet<SessionId>,
    /// Devices that signed in before.
    pub known_devices: BTreeSet<String>,
    /// Two-factor authentication.
    pub totp: TotpState,
    /// Deleted.
    pub deleted: bool,
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
        use AccountEvent as E;
        match event {
            E::AccountRegistered {
                account_id,
                email,
                display_name,
                password_hash,
                registered_at,
            } => {
                self.id = Some(*account_id);
                self.email = Some(email.clone());
                self.display_name = Some(display_name.clone());
                self.password_hash = Some(password_hash.clone());
                self.registered_at = Some(*registered_at);
            }
            E::PasswordChanged { password_hash, .. } => {
                self.password_hash = Some(password_hash.clone());
                self.password_version += 1;
            }
            E::SessionStarted {
                session_id,
                token_hash,
                started_at,
                expires_at,
                origin,
                second_factor,
            } => {
                self.sessions.insert(
                    *session_id,
                    ActiveSession {
                        token_hash: token_hash.clone(),
                        started_at: *started_at,
                        expires_at: *expires_at,
                        authenticated_at: *started_at,
                    },
                );
                self.known_devices.insert(origin.device.clone());
                self.use_factor(second_factor.as_ref());
            }
            E::NewDeviceSignedIn { .. } => {}
            E::SessionReauthenticated {
                session_id,
                second_factor,
                at,
            } => {
                if let Some(session) = self.sessions.get_mut(session_id) {
                    session.authenticated_at = *at;
                }
                self.use_factor(second_factor.as_ref());
            }
            E::SessionRevoked { session_id, .. } => {
                self.sessions.remove(session_id);
                self.ended_sessions.insert(*session_id);
            }
            E::TotpEnrollmentStarted { secret, .. } => {
                self.totp.pending_secret = Some(secret.clone())
            }
            E::TotpEnabled {
                recovery_code_hashes,
                step,
                ..
            } => {
                self.totp.secret = self.totp.pending_secret.take();
                self.totp.last_step = Some(*step);
                self.totp.recovery_codes = recovery_code_hashes.iter().cloned().collect();
            }
            E::TotpDisabled { .. } => self.totp = TotpState::default(),
            E::RecoveryCodesRegenerated {
                recovery_code_hashes,
                ..
            } => {
                self.totp.recovery_codes = recovery_code_hashes.iter().cloned().collect();
            }
            E::RecoveryCodeUsed { code_hash, .. } => {
                self.totp.recovery_codes.remove(code_hash);
            }
            E::ProfileUpdated {
                display_name,
                bio,
                public_profile,
                ..
            } => {
                if let Some(name) = display_name {
                    self.display_name = Some(name.clone());
                }
                if let Some(bio) = bio {
                    self.bio = (!bio.as_str().is_empty()).then(|| bio.clone());
                }
                if let Some(public) = public_profile {
                    self.public_profile = *public;
                }
            }
            E::AvatarChanged {
                blob_key,
                content_type,
                ..
            } => {
                self.avatar = Some(Avatar {
                    blob_key: blob_key.clone(),
                    content_type: content_type.clone(),
                });
            }
            E::AvatarRemoved { .. } => self.avatar = None,
            E::AccountDeleted { .. } => {
                self.deleted = true;
                self.avatar = None;
            }
        }
    }
}

impl Account {
    fn use_factor(&mut self, factor: Option<&SecondFactor>) {
        match factor {
            Some(SecondFactor::Totp { step }) => {
                self.totp.last_step =
                    Some(self.totp.last_step.map_or(*step, |last| last.max(*step)));
            }
            Some(SecondFactor::RecoveryCode { .. }) | None => {}
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_security;
