//! What happens to an account: the events of its `account-<id>` stream, and the second
//! factor a sign-in, a re-authentication or a password reset proves.

use crate::access_token::TokenKind;
use crate::email::{DisplayName, EmailAddress};
use crate::event::Event;
use crate::profile::Bio;
use crate::session::{RevocationReason, SessionOrigin};
use crate::{AccountId, SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

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
    /// A link that proves the account holds its address was e-mailed to it (at
    /// registration, and again on request): it replaces any earlier link.
    #[event(personal(email))]
    EmailVerificationRequested {
        /// The address the link was sent to.
        email: EmailAddress,
        /// The link's generation (1 for the first): only the latest works.
        generation: u32,
        /// When the link stops working.
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// The account proved it holds its address (its latest link was opened in time).
    #[event(no_personal_data)]
    EmailVerified {
        /// The generation of the link that proved it.
        generation: u32,
        /// When.
        at: Timestamp,
    },
    /// A link setting a new password was e-mailed to the account's address (a forgotten
    /// password): it replaces any earlier link.
    #[event(personal(email))]
    PasswordResetRequested {
        /// The address the link was sent to.
        email: EmailAddress,
        /// The link's generation (1 for the first): only the latest works, once.
        generation: u32,
        /// When the link stops working.
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// A change to another address was asked for: a link confirming it was e-mailed to
    /// the new address, replacing any earlier one. The account keeps its address until
    /// the link is opened.
    #[event(personal(email))]
    EmailChangeRequested {
        /// The new address (the link was sent there).
        email: EmailAddress,
        /// The link's generation (1 for the first): only the latest works.
        generation: u32,
        /// When the link stops working.
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// The account withdrew the change it asked for: its link no longer works.
    #[event(no_personal_data)]
    EmailChangeCancelled {
        /// The generation of the withdrawn link.
        generation: u32,
        /// When.
        at: Timestamp,
    },
    /// The account moved to a new address, its link opened in time: the new address is
    /// proven, and the old one is released.
    #[event(personal(old_email, new_email))]
    EmailChanged {
        /// The address it had.
        old_email: EmailAddress,
        /// The address it has now.
        new_email: EmailAddress,
        /// The generation of the link that confirmed it.
        generation: u32,
        /// When.
        at: Timestamp,
    },
    /// The password was replaced (from a session, or through a reset link).
    #[event(personal(password_hash))]
    PasswordChanged {
        /// The new argon2id PHC string.
        password_hash: String,
        /// When.
        changed_at: Timestamp,
        /// The session that changed it.
        changed_by_session: Option<SessionId>,
        /// Every API and CLI token of the account was revoked with it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        tokens_revoked: bool,
        /// The generation of the reset link that set it, for a forgotten password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reset_link: Option<u32>,
        /// The second factor a reset proved, with 2FA on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        second_factor: Option<SecondFactor>,
    },
    /// The password's hash was made again with the current parameters at a sign-in (the
    /// same password; the version does not change and nothing is told).
    #[event(personal(password_hash))]
    PasswordRehashed {
        /// The new argon2id PHC string.
        password_hash: String,
        /// When.
        at: Timestamp,
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
    /// An API or CLI token was issued (its stream, `accesstoken-<id>`, records the rest):
    /// the account counts it among its live tokens.
    #[event(no_personal_data)]
    AccessTokenIssued {
        /// The token.
        token_id: Uuid,
        /// API or CLI.
        kind: TokenKind,
        /// When it stops working by itself, if ever.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<Timestamp>,
        /// When.
        at: Timestamp,
    },
    /// A token was revoked (in its stream): it no longer counts.
    #[event(no_personal_data)]
    AccessTokenRetired {
        /// The token.
        token_id: Uuid,
        /// When.
        at: Timestamp,
    },
    /// The account holder downloaded a copy of the account's data (`GET /me/export`):
    /// recorded for the security log and a notice, since a stolen session could do it too.
    #[event(no_personal_data)]
    DataExported {
        /// The session that asked for it.
        session_id: SessionId,
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
    /// Erasure finished: the account's data key is destroyed, so its personal data opens
    /// nowhere any more. Every node forgets the key it may have cached.
    #[event(no_personal_data)]
    AccountErased {
        /// When.
        at: Timestamp,
    },
}
