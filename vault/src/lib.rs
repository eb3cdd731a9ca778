//! The service's cryptography, shared by command handlers, read models and workers.
//!
//! - [`seal`]/[`open`]: AES-256-GCM with a context bound as associated data.
//! - [`MasterKey`]: from configuration; every other key derives from it. [`EmailIndex`]
//!   names e-mail reservation streams by a keyed hash, never the address.
//! - [`DataKeys`]: one AES-256 key per data subject (an account), stored wrapped by the
//!   master key. Personal data anywhere the service stores it is sealed with its subject's
//!   key; destroying the key erases every copy (crypto-shredding).
//! - [`FieldSealer`]: the same sealing for values kept outside the log (read-model
//!   columns, stored responses).
//! - [`UnsubscribeLinks`]: the HMAC-signed tokens of one-click unsubscribe links.
//! - [`InvitationLinks`]: the tokens of workspace invitation links.
//! - [`AccountLinks`]: the tokens of the links e-mailed to an account's address (verifying
//!   it, resetting a forgotten password, confirming a change of address).

mod account_links;
mod data_keys;
mod fields;
mod invitations;
mod links;
mod master;
mod seal;

pub use account_links::{
    AccountLinkSet, AccountLinks, EMAIL_CHANGE_TOKEN_PREFIX, PASSWORD_RESET_TOKEN_PREFIX,
    VERIFICATION_TOKEN_PREFIX,
};
pub use data_keys::{DataKey, DataKeys};
pub use fields::FieldSealer;
pub use invitations::{INVITATION_TOKEN_PREFIX, InvitationLinks, token_hash};
pub use links::UnsubscribeLinks;
pub use master::{EmailIndex, MasterKey};
pub use seal::{open, seal};

/// Why a cryptographic operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The master key given is not 32 bytes of base64.
    #[error("the master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    /// Sealed data did not authenticate (wrong key, or tampered).
    #[error("sealed data could not be opened")]
    Unsealable,
    /// The master key file could not be read or written.
    #[error("master key file: {0}")]
    Io(#[from] std::io::Error),
    /// The key table failed.
    #[error("data key storage: {0}")]
    Database(#[from] sqlx::Error),
}
