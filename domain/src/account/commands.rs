//! What a caller may ask of an account, and why it may be refused.

use super::SecondFactor;
use crate::access_token::TokenKind;
use crate::email::{DisplayName, EmailAddress};
use crate::profile::Bio;
use crate::session::{RevocationReason, SessionOrigin};
use crate::{AccountId, SessionId, Timestamp};
use std::time::Duration;
use uuid::Uuid;

/// Proof that a sensitive command comes from a session that proved its credentials
/// recently: the session, and how recent its proof must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fresh {
    /// The caller's session.
    pub session_id: SessionId,
    /// Its last proof must be at or after this instant.
    pub since: Timestamp,
}

impl Fresh {
    /// The proof a change by `session_id` at `now` needs: one made within `window`.
    pub fn within(session_id: SessionId, now: Timestamp, window: Duration) -> Self {
        let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        Self {
            session_id,
            since: Timestamp::from_unix_micros(now.unix_micros().saturating_sub(window)),
        }
    }
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
        /// The secret a TOTP code in `second_factor` was checked against: 2FA turned off
        /// and on again meanwhile holds another, and the code proves nothing of it.
        totp_secret: Option<String>,
        /// Absolute expiry.
        expires_at: Timestamp,
        /// Where from.
        origin: SessionOrigin,
        /// Now.
        at: Timestamp,
    },
    /// E-mail a new verification link to the account's address (it replaces the last).
    RequestEmailVerification {
        /// Now.
        at: Timestamp,
    },
    /// Mark the address verified: a genuine link of `generation` was opened.
    VerifyEmail {
        /// The generation the (authenticated) link carries.
        generation: u32,
        /// Now.
        at: Timestamp,
    },
    /// E-mail a link setting a new password to the account's address (it replaces the
    /// last).
    RequestPasswordReset {
        /// Now.
        at: Timestamp,
    },
    /// Set a new password through a genuine reset link of `generation`: every session
    /// ends.
    ResetPassword {
        /// The generation the (authenticated) link carries.
        generation: u32,
        /// Hash of a password that passed the policy.
        new_password_hash: String,
        /// The second factor proved, if any (required with 2FA on).
        second_factor: Option<SecondFactor>,
        /// The secret a TOTP code in `second_factor` was checked against.
        totp_secret: Option<String>,
        /// Also revoke every API and CLI token.
        revoke_tokens: bool,
        /// Now.
        at: Timestamp,
    },
    /// Ask to move the account to `new_email` (a link to confirm is e-mailed there),
    /// after the password was verified against `verified_password_version`.
    RequestEmailChange {
        /// The new address, validated.
        new_email: EmailAddress,
        /// The password version the password was checked against.
        verified_password_version: u32,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Withdraw the pending change of address, if there is one.
    CancelEmailChange {
        /// Now.
        at: Timestamp,
    },
    /// Move to the pending address: a genuine link of `generation` was opened (the new
    /// address is reserved for the account already).
    ConfirmEmailChange {
        /// The generation the (authenticated) link carries.
        generation: u32,
        /// Now.
        at: Timestamp,
    },
    /// Replace the password's hash with one of the current parameters (same password),
    /// unless it is no longer the hash the password was checked against.
    RehashPassword {
        /// The hash the password was checked against.
        verified_hash: String,
        /// The new hash.
        password_hash: String,
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
        /// The secret a TOTP code in `second_factor` was checked against: 2FA turned off
        /// and on again meanwhile holds another, and the code proves nothing of it.
        totp_secret: Option<String>,
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
        /// Also revoke every API and CLI token of the account.
        revoke_tokens: bool,
        /// The caller's session, which must have proved itself recently.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Begin 2FA enrolment with a new secret.
    StartTotpEnrollment {
        /// Base32 secret.
        secret: String,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Turn 2FA on with a code of the pending secret.
    ConfirmTotp {
        /// The pending secret the code was verified against: the one turned on, so it
        /// must still be the pending one (an enrolment started again meanwhile replaced
        /// it, and the user's app holds the other).
        secret: String,
        /// Step of the code, verified against `secret`.
        step: u64,
        /// Hashes of the new recovery codes.
        recovery_code_hashes: Vec<String>,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Turn 2FA off.
    DisableTotp {
        /// The password version the password was checked against.
        verified_password_version: u32,
        /// A code (or recovery code).
        second_factor: SecondFactor,
        /// The secret a TOTP code in `second_factor` was checked against: 2FA turned off
        /// and on again meanwhile holds another, and the code proves nothing of it.
        totp_secret: Option<String>,
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
    /// Issue an API or CLI token (its own stream records the rest): needs a recent proof
    /// and fewer than `max_live` live tokens.
    IssueAccessToken {
        /// The new token.
        token_id: Uuid,
        /// API or CLI.
        kind: TokenKind,
        /// When it stops working by itself, if ever.
        expires_at: Option<Timestamp>,
        /// Live (unexpired, unrevoked) tokens the account may have at most.
        max_live: u32,
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// A token was revoked (in its own stream): it no longer counts.
    RetireAccessToken {
        /// The token.
        token_id: Uuid,
        /// Now.
        at: Timestamp,
    },
    /// Record that the account holder is downloading the account's data: needs a recent
    /// proof.
    RecordDataExport {
        /// Recent proof.
        fresh: Fresh,
        /// Now.
        at: Timestamp,
    },
    /// Record that a deleted account's erasure finished (nothing if already recorded).
    RecordErasure {
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
    /// Issuing a token while the account has as many live tokens as it may.
    #[error(
        "the account has {max} live API and CLI tokens, the most it may have; revoke one first"
    )]
    TooManyTokens {
        /// The limit.
        max: u32,
    },
    /// Asking for a verification link when the address is verified already.
    #[error("the e-mail address is verified already")]
    EmailAlreadyVerified,
    /// A verification link that is not the latest one.
    #[error("this verification link was replaced by a newer one or never sent")]
    VerificationLinkInvalid,
    /// The latest verification link, past its expiry.
    #[error("this verification link expired; ask for a new one")]
    VerificationLinkExpired,
    /// A password reset link that is not the latest one, or was used.
    #[error("this password reset link was used, replaced by a newer one, or never sent")]
    PasswordResetLinkInvalid,
    /// The latest password reset link, past its expiry.
    #[error("this password reset link expired; ask for a new one")]
    PasswordResetLinkExpired,
    /// A new password reset link asked for too soon after the last.
    #[error("a password reset link was sent moments ago")]
    PasswordResetRequestedRecently {
        /// How long until another may be sent.
        retry_after: Duration,
    },
    /// A change to the address the account has already.
    #[error("this is the account's address already")]
    EmailUnchanged,
    /// A change link that is not the latest one, or whose change was withdrawn.
    #[error("this link was replaced by a newer one, withdrawn, or never sent")]
    EmailChangeLinkInvalid,
    /// The latest change link, past its expiry.
    #[error("this link expired; ask for the change again")]
    EmailChangeLinkExpired,
    /// A change of address asked for too soon after the last.
    #[error("a change of address was asked for moments ago")]
    EmailChangeRequestedRecently {
        /// How long until another may be asked for.
        retry_after: Duration,
    },
    /// A new verification link asked for too soon after the last.
    #[error("a verification link was sent moments ago")]
    VerificationRequestedRecently {
        /// How long until another may be sent.
        retry_after: Duration,
    },
}
