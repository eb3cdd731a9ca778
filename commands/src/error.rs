//! Why a command was refused or failed.

use crate::codec::CodecError;
use crate::passwords::PasswordError;
use domain::account::AccountError;
use domain::password::PasswordProblem;
use domain::reservation::ReservationError;
use store::StoreError;
use vault::CryptoError;

/// The outcome of a command that did not succeed. The first group are the caller's doing
/// (the API answers 4xx); the last group are failures of the service (500).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A field is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The new password does not meet the policy.
    #[error("the password does not meet the policy")]
    WeakPassword(Vec<PasswordProblem>),
    /// The e-mail address belongs to another account.
    #[error("the e-mail address is already registered")]
    EmailTaken,
    /// Sign-in with a wrong e-mail or password (deliberately not saying which).
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    /// The current password given to confirm a change is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// 2FA is on and no code came with the credentials.
    #[error("a two-factor code is required")]
    SecondFactorRequired,
    /// The code is wrong, or was used already; or the recovery code is not valid.
    #[error("the two-factor code is not valid")]
    InvalidSecondFactor,
    /// The session must prove its credentials again first.
    #[error("confirm your password (and code) again first")]
    ReauthenticationRequired,
    /// The session is not one of the caller's.
    #[error("no such session")]
    SessionNotFound,
    /// The account does not exist.
    #[error("no such account")]
    AccountNotFound,
    /// Not enough credits for a hold.
    #[error("{requested} credits requested, {available} available")]
    InsufficientCredits {
        /// Credits available.
        available: u64,
        /// Credits asked for.
        requested: u64,
    },
    /// Refused by a business rule (the code says which).
    #[error("{message}")]
    Rejected {
        /// How the API answers it.
        kind: Rejection,
        /// Stable error code, e.g. `claim_ended`.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Asked again too soon (the API answers 429 with `Retry-After`).
    #[error("{message}")]
    TooSoon {
        /// Stable error code.
        code: &'static str,
        /// For people.
        message: String,
        /// How long until it may be asked again.
        retry_after: std::time::Duration,
    },
    /// The payment provider failed or refused.
    #[error("payment provider: {0}")]
    PaymentProvider(String),
    /// Other writers kept changing the stream; the command gave up after retrying.
    #[error("the account is being changed concurrently; try again")]
    Contention,
    /// The event log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Encoding or decoding an event failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A key operation failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Password hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// An invariant the domain should have prevented.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The code of [`AccountError::TooManyTokens`].
pub const TOO_MANY_TOKENS: &str = "too_many_tokens";

/// The kind of a business-rule refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// What was asked for does not exist (404).
    NotFound,
    /// The caller's role does not allow it (403).
    Forbidden,
    /// The version the caller read is no longer current (412).
    PreconditionFailed,
    /// It conflicts with the current state (409).
    Conflict,
    /// The request is invalid (422).
    Invalid,
    /// It is no longer available (410).
    Gone,
    /// The upload is too large (413).
    TooLarge,
    /// The media type is not accepted (415).
    Unsupported,
    /// What it needs is not configured or not running here (503).
    Unavailable,
}

impl CommandError {
    /// A business-rule refusal.
    pub fn rejected(kind: Rejection, code: &'static str, message: impl ToString) -> Self {
        Self::Rejected {
            kind,
            code,
            message: message.to_string(),
        }
    }
}

impl From<domain::credits::CreditsError> for CommandError {
    fn from(e: domain::credits::CreditsError) -> Self {
        use domain::credits::CreditsError as E;
        let message = e.to_string();
        match e {
            E::InsufficientCredits {
                available,
                requested,
            } => Self::InsufficientCredits {
                available,
                requested,
            },
            E::InvalidAmount => Self::rejected(Rejection::Invalid, "invalid_amount", message),
            E::InvalidExpiry => Self::rejected(Rejection::Invalid, "invalid_expiry", message),
            E::GenerationConflict => {
                Self::rejected(Rejection::Conflict, "generation_conflict", message)
            }
            E::UnknownGeneration => {
                Self::rejected(Rejection::NotFound, "generation_not_found", message)
            }
            E::HoldExpired => Self::rejected(Rejection::Conflict, "hold_expired", message),
            E::ExceedsHold { .. } => Self::rejected(Rejection::Invalid, "exceeds_hold", message),
            E::AlreadyClosed(_) => {
                Self::rejected(Rejection::Conflict, "generation_closed", message)
            }
            E::NothingToExpire => Self::rejected(Rejection::NotFound, "lot_not_found", message),
            E::TooManyOpenHolds { .. } => {
                Self::rejected(Rejection::Conflict, "too_many_open_holds", message)
            }
        }
    }
}

impl From<domain::subscription::SubscriptionError> for CommandError {
    fn from(e: domain::subscription::SubscriptionError) -> Self {
        use domain::subscription::SubscriptionError as E;
        let message = e.to_string();
        match e {
            E::NotSubscribed => Self::rejected(Rejection::Conflict, "no_subscription", message),
            E::AlreadyEnded => Self::rejected(Rejection::Conflict, "subscription_ended", message),
            E::CurrencyMismatch => Self::rejected(Rejection::Invalid, "currency_mismatch", message),
        }
    }
}

impl From<domain::offer::OfferError> for CommandError {
    fn from(e: domain::offer::OfferError) -> Self {
        use domain::offer::OfferError as E;
        let message = e.to_string();
        match e {
            E::Ended => Self::rejected(Rejection::Gone, "claim_ended", message),
            E::BudgetExhausted => {
                Self::rejected(Rejection::Conflict, "claim_budget_exhausted", message)
            }
        }
    }
}

impl From<domain::purchase::PurchaseError> for CommandError {
    fn from(e: domain::purchase::PurchaseError) -> Self {
        use domain::purchase::PurchaseError as E;
        let message = e.to_string();
        match e {
            E::AlreadyStarted => Self::rejected(Rejection::Conflict, "purchase_exists", message),
            E::Unknown => Self::rejected(Rejection::NotFound, "purchase_not_found", message),
            E::PaymentMismatch => Self::rejected(Rejection::Invalid, "payment_mismatch", message),
        }
    }
}

impl From<domain::checkout::CheckoutError> for CommandError {
    fn from(e: domain::checkout::CheckoutError) -> Self {
        use domain::checkout::CheckoutError as E;
        let message = e.to_string();
        match e {
            E::TooManyPending { .. } => {
                Self::rejected(Rejection::Conflict, "too_many_pending_purchases", message)
            }
        }
    }
}

impl From<domain::invoice::InvoiceError> for CommandError {
    fn from(e: domain::invoice::InvoiceError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<domain::operator::OperatorTokenError> for CommandError {
    fn from(e: domain::operator::OperatorTokenError) -> Self {
        use domain::operator::OperatorTokenError as E;
        let message = e.to_string();
        match e {
            E::Exists => Self::rejected(Rejection::Conflict, "token_exists", message),
            E::Unknown => Self::rejected(Rejection::NotFound, "token_not_found", message),
            E::InvalidExpiry => Self::rejected(Rejection::Invalid, "invalid_expiry", message),
        }
    }
}

impl From<std::convert::Infallible> for CommandError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

impl From<AccountError> for CommandError {
    fn from(e: AccountError) -> Self {
        let message = e.to_string();
        match e {
            AccountError::NotFound => Self::AccountNotFound,
            AccountError::SessionNotFound => Self::SessionNotFound,
            AccountError::CredentialsChanged => Self::InvalidCredentials,
            AccountError::SecondFactorRequired => Self::SecondFactorRequired,
            AccountError::InvalidSecondFactor => Self::InvalidSecondFactor,
            AccountError::ReauthenticationRequired => Self::ReauthenticationRequired,
            AccountError::TotpAlreadyEnabled => {
                Self::rejected(Rejection::Conflict, "totp_already_enabled", message)
            }
            AccountError::TotpNotEnabled => {
                Self::rejected(Rejection::Conflict, "totp_not_enabled", message)
            }
            AccountError::NoPendingEnrollment => {
                Self::rejected(Rejection::Conflict, "no_pending_enrollment", message)
            }
            AccountError::TooManyTokens { .. } => {
                Self::rejected(Rejection::Conflict, TOO_MANY_TOKENS, message)
            }
            AccountError::EmailAlreadyVerified => {
                Self::rejected(Rejection::Conflict, "email_already_verified", message)
            }
            AccountError::VerificationLinkInvalid => {
                Self::rejected(Rejection::NotFound, "verification_link_invalid", message)
            }
            AccountError::VerificationLinkExpired => {
                Self::rejected(Rejection::Gone, "verification_link_expired", message)
            }
            AccountError::PasswordResetLinkInvalid => {
                Self::rejected(Rejection::NotFound, "password_reset_link_invalid", message)
            }
            AccountError::PasswordResetLinkExpired => {
                Self::rejected(Rejection::Gone, "password_reset_link_expired", message)
            }
            AccountError::PasswordResetRequestedRecently { retry_after } => Self::TooSoon {
                code: "password_reset_requested_recently",
                message,
                retry_after,
            },
            AccountError::VerificationRequestedRecently { retry_after } => Self::TooSoon {
                code: "verification_requested_recently",
                message,
                retry_after,
            },
            AccountError::EmailUnchanged => {
                Self::rejected(Rejection::Invalid, "email_unchanged", message)
            }
            AccountError::EmailChangeLinkInvalid => {
                Self::rejected(Rejection::NotFound, "email_change_link_invalid", message)
            }
            AccountError::EmailChangeLinkExpired => {
                Self::rejected(Rejection::Gone, "email_change_link_expired", message)
            }
            AccountError::EmailChangeRequestedRecently { retry_after } => Self::TooSoon {
                code: "email_change_requested_recently",
                message,
                retry_after,
            },
            AccountError::AlreadyRegistered
            | AccountError::SessionExists
            | AccountError::InvalidExpiry => Self::Internal(message),
        }
    }
}

impl From<ReservationError> for CommandError {
    fn from(e: ReservationError) -> Self {
        match e {
            ReservationError::EmailTaken => Self::EmailTaken,
        }
    }
}

impl From<domain::access_token::AccessTokenError> for CommandError {
    fn from(e: domain::access_token::AccessTokenError) -> Self {
        use domain::access_token::AccessTokenError as E;
        match e {
            E::Exists => Self::Internal("a new token id was already taken".into()),
            E::NotFound => Self::rejected(Rejection::NotFound, "token_not_found", e),
            E::Expired => Self::rejected(Rejection::Conflict, "token_expired", e),
            E::Invalid { field, message } => Self::Invalid { field, message },
        }
    }
}
