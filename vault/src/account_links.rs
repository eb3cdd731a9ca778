//! The links e-mailed to an account's address: the one proving the account holds it, the
//! one setting a new password for a forgotten one, and the one confirming a change to a new
//! address (sent there). A link's token names the account and
//! the link's generation and carries an HMAC over both (each purpose with a key of its own,
//! derived from the master key): checked without a look-up, and derivable again by the
//! mailer from the request event, so it is stored nowhere. Whether a genuine link is still
//! the live one (its generation the latest, not expired, not used) is the account's to
//! decide.

use crate::MasterKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::AccountId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The prefix of e-mail verification tokens.
pub const VERIFICATION_TOKEN_PREFIX: &str = "ver_";
/// The prefix of password reset tokens.
pub const PASSWORD_RESET_TOKEN_PREFIX: &str = "pwr_";

/// The prefix of the tokens confirming a change of address.
pub const EMAIL_CHANGE_TOKEN_PREFIX: &str = "emc_";

/// Account (16 bytes), generation (4), HMAC-SHA256 (32).
const TOKEN_BYTES: usize = 52;

/// Makes and checks the tokens of one kind of account link: its prefix + base64url(account
/// ‖ generation ‖ HMAC-SHA256(key, account ‖ generation)).
#[derive(Clone)]
pub struct AccountLinks {
    key: [u8; 32],
    prefix: &'static str,
}

impl std::fmt::Debug for AccountLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountLinks")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl AccountLinks {
    /// E-mail verification links (`ver_`), signed with `key`.
    pub fn email_verification(key: [u8; 32]) -> Self {
        Self {
            key,
            prefix: VERIFICATION_TOKEN_PREFIX,
        }
    }

    /// Password reset links (`pwr_`), signed with `key`.
    pub fn password_reset(key: [u8; 32]) -> Self {
        Self {
            key,
            prefix: PASSWORD_RESET_TOKEN_PREFIX,
        }
    }

    /// Links confirming a change of address (`emc_`), signed with `key`.
    pub fn email_change(key: [u8; 32]) -> Self {
        Self {
            key,
            prefix: EMAIL_CHANGE_TOKEN_PREFIX,
        }
    }

    fn mac(&self, account: AccountId, generation: u32) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(account.0.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac
    }

    /// The token of `account`'s link of `generation`.
    pub fn token(&self, account: AccountId, generation: u32) -> String {
        let mut bytes = Vec::with_capacity(TOKEN_BYTES);
        bytes.extend_from_slice(account.0.as_bytes());
        bytes.extend_from_slice(&generation.to_be_bytes());
        bytes.extend_from_slice(&self.mac(account, generation).finalize().into_bytes());
        format!("{}{}", self.prefix, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The account and generation of a token this service signed; `None` for anything
    /// else (the signature is compared in constant time).
    pub fn verify(&self, token: &str) -> Option<(AccountId, u32)> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(self.prefix)?)
            .ok()?;
        if bytes.len() != TOKEN_BYTES {
            return None;
        }
        let account = AccountId(Uuid::from_slice(&bytes[..16]).ok()?);
        let generation = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        self.mac(account, generation)
            .verify_slice(&bytes[20..])
            .ok()?;
        Some((account, generation))
    }
}

/// The three kinds of account link, each signed with a key of its own derived from the
/// master key: what the command handlers check and the mailer signs.
#[derive(Debug, Clone)]
pub struct AccountLinkSet {
    /// Proving the account holds its address (`ver_`).
    pub email_verification: AccountLinks,
    /// Setting a new password for a forgotten one (`pwr_`).
    pub password_reset: AccountLinks,
    /// Confirming a change to a new address (`emc_`).
    pub email_change: AccountLinks,
}

impl AccountLinkSet {
    /// Every kind, with the keys `master` derives.
    pub fn new(master: &MasterKey) -> Self {
        Self {
            email_verification: AccountLinks::email_verification(master.verification_secret()),
            password_reset: AccountLinks::password_reset(master.password_reset_secret()),
            email_change: AccountLinks::email_change(master.email_change_secret()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_signed_with_the_key_verify_and_they_name_account_and_generation() {
        let links = AccountLinks::email_verification([5; 32]);
        let account = AccountId(Uuid::new_v4());
        let token = links.token(account, 3);
        assert!(token.starts_with(VERIFICATION_TOKEN_PREFIX));
        assert_eq!(links.verify(&token), Some((account, 3)));
        assert_ne!(token, links.token(account, 4));
        assert_eq!(
            AccountLinks::email_verification([6; 32]).verify(&token),
            None
        );

        // Another generation (or account) under the same signature is a forgery.
        let mut bytes = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(VERIFICATION_TOKEN_PREFIX).unwrap())
            .unwrap();
        bytes[19] ^= 1;
        let forged = format!(
            "{VERIFICATION_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(&bytes)
        );
        assert_eq!(links.verify(&forged), None);

        assert_eq!(links.verify("ver_short"), None);
        assert_eq!(links.verify(&token.replacen("ver_", "inv_", 1)), None);
        assert_eq!(links.verify(&format!("{token}A")), None);
    }

    #[test]
    fn a_link_of_one_kind_is_not_one_of_another() {
        // Each kind has a key of its own (`MasterKey` derives one per purpose).
        let (verification, reset) = (
            AccountLinks::email_verification([5; 32]),
            AccountLinks::password_reset([6; 32]),
        );
        let account = AccountId(Uuid::new_v4());
        let token = reset.token(account, 1);
        assert!(token.starts_with(PASSWORD_RESET_TOKEN_PREFIX));
        assert_eq!(reset.verify(&token), Some((account, 1)));
        assert_eq!(verification.verify(&token), None);
        let renamed = token.replacen(PASSWORD_RESET_TOKEN_PREFIX, VERIFICATION_TOKEN_PREFIX, 1);
        assert_eq!(verification.verify(&renamed), None);

        let change = AccountLinks::email_change([7; 32]);
        let token = change.token(account, 1);
        assert!(token.starts_with(EMAIL_CHANGE_TOKEN_PREFIX));
        assert_eq!(change.verify(&token), Some((account, 1)));
        assert_eq!(reset.verify(&token), None);
        let renamed = token.replacen(EMAIL_CHANGE_TOKEN_PREFIX, PASSWORD_RESET_TOKEN_PREFIX, 1);
        assert_eq!(reset.verify(&renamed), None);
    }
}
