//! The master key from configuration, the keys derived from it, and the keyed hash that
//! names e-mail reservation streams.

use crate::CryptoError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::email::EmailAddress;
use domain::event::StreamCategory;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::io::Write;
use std::path::Path;

/// The key every other key derives from. Never logged; `Debug` prints nothing of it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<secret>)")
    }
}

impl MasterKey {
    /// Parses 32 bytes of standard base64.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::BadMasterKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// A fresh random key as base64, the way `ACCOUNTS_MASTER_KEY` takes it.
    pub fn generate_base64() -> String {
        STANDARD.encode(Self::generate().0)
    }

    /// Reads the key in `path`, or creates one there (mode 0600) if the file is missing.
    /// Returns whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), CryptoError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path)?;
                file.write_all(STANDARD.encode(key.0).as_bytes())?;
                file.sync_all()?;
                Ok((key, true))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key that hashes the throttles' keys (accounts and IPs).
    pub fn throttle_secret(&self) -> [u8; 32] {
        self.derive("accounts/throttle-keys/v1")
    }

    /// The key that signs one-click unsubscribe links.
    pub fn unsubscribe_secret(&self) -> [u8; 32] {
        self.derive("accounts/unsubscribe-links/v1")
    }

    /// The key that signs workspace invitation links.
    pub fn invitation_secret(&self) -> [u8; 32] {
        self.derive("accounts/invitation-links/v1")
    }

    /// The key that signs the links verifying an account's e-mail address.
    pub fn verification_secret(&self) -> [u8; 32] {
        self.derive("accounts/email-verification-links/v1")
    }

    /// The key that signs the links setting a new password for a forgotten one.
    pub fn password_reset_secret(&self) -> [u8; 32] {
        self.derive("accounts/password-reset-links/v1")
    }

    /// The key that signs the links confirming a change of an account's address.
    pub fn email_change_secret(&self) -> [u8; 32] {
        self.derive("accounts/email-change-links/v1")
    }

    /// The key of the keyed hash that fingerprints a request made with an `Idempotency-Key`
    /// (its body may hold a password or an address: a backup must not let anyone test
    /// guesses against the stored fingerprint).
    pub fn request_fingerprint_secret(&self) -> [u8; 32] {
        self.derive("accounts/request-fingerprints/v1")
    }

    /// The key of the keyed hash naming Telegram users' streams (`telegramuser-<hash>`).
    pub fn telegram_user_secret(&self) -> [u8; 32] {
        self.derive("accounts/telegram-users/v1")
    }

    /// A key for one purpose, derived with HMAC-SHA256(master, label).
    pub(crate) fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Names the reservation stream of an e-mail address without revealing the address:
/// `email-<HMAC-SHA256(index key, lower-cased address)>`.
#[derive(Clone)]
pub struct EmailIndex([u8; 32]);

impl EmailIndex {
    /// Derives the index key from the master key.
    pub fn new(master: &MasterKey) -> Self {
        Self(master.derive("accounts/email-index/v1"))
    }

    /// The keyed hash of an address, hex.
    pub fn digest(&self, email: &EmailAddress) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(email.canonical().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The keyed hash of text that is not an address (a mistyped one, lower-cased and
    /// trimmed), hex; never equal to an address's [`Self::digest`].
    pub fn digest_text(&self, text: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"not-an-address:");
        mac.update(text.trim().to_lowercase().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The reservation stream of an address.
    pub fn stream(&self, email: &EmailAddress) -> String {
        StreamCategory::Email.stream(self.digest(email))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_master_key_file_is_created_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("mk-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let (created, was_created) = MasterKey::load_or_create(&path).unwrap();
        assert!(was_created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (loaded, was_created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!was_created);
        assert_eq!(created.0, loaded.0);
        assert!(!format!("{loaded:?}").contains(&STANDARD.encode(loaded.0)));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn email_streams_ignore_case_and_hide_the_address() {
        let index = EmailIndex::new(&MasterKey::from_base64(&STANDARD.encode([1u8; 32])).unwrap());
        let a = EmailAddress::parse("Ada@Example.com").unwrap();
        let b = EmailAddress::parse("ada@example.COM").unwrap();
        assert_eq!(index.stream(&a), index.stream(&b));
        assert!(index.stream(&a).starts_with("email-"));
        assert!(!index.stream(&a).contains("ada"));
        let other = EmailIndex::new(&MasterKey::generate());
        assert_ne!(
            other.stream(&a),
            index.stream(&a),
            "keyed: not a plain hash"
        );
    }

    /// What a mistyped address hashes to is keyed too, the same whatever its case and
    /// surrounding blanks, and never an address's digest.
    #[test]
    fn text_that_is_no_address_gets_a_keyed_digest_of_its_own() {
        let index = EmailIndex::new(&MasterKey::generate());
        let typo = index.digest_text(" Ada@Example ");
        assert_eq!(typo, index.digest_text("ada@example"));
        assert_ne!(
            typo,
            EmailIndex::new(&MasterKey::generate()).digest_text("ada@example")
        );
        use sha2::Digest;
        assert_ne!(typo, hex::encode(Sha256::digest(b"ada@example")));
        let address = EmailAddress::parse("ada@example.com").unwrap();
        assert_ne!(index.digest(&address), index.digest_text("ada@example.com"));
    }

    #[test]
    fn master_keys_must_be_32_bytes() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
