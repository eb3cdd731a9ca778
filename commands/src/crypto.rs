//! Encryption of personal data: the master key, per-account data keys, and the keyed hash
//! that names e-mail reservation streams.
//!
//! Each account has its own AES-256 data key, stored outside the log (table `data_keys`)
//! wrapped (AES-256-GCM) by a key derived from the master key. Personal fields of an
//! account's events are sealed with its data key; destroying the key leaves the log intact
//! and the personal data in it unreadable.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::Timestamp;
use domain::email::EmailAddress;
use domain::event::StreamCategory;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, RwLock};
use store::Database;
use uuid::Uuid;

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

const NONCE_LEN: usize = 12;

/// Seals `plaintext` with AES-256-GCM under `key`, binding `aad`: `nonce || ciphertext`.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens what [`seal`] produced with the same key and `aad`.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN {
        return Err(CryptoError::Unsealable);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| CryptoError::Unsealable)
}

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

    /// The default secret signing payment webhooks (the sandbox provider's), so the
    /// embedded default needs no configuration for it.
    pub fn webhook_secret(&self) -> [u8; 32] {
        self.derive("accounts/payments-webhook/v1")
    }

    /// The key that signs one-click unsubscribe links.
    pub fn unsubscribe_secret(&self) -> [u8; 32] {
        self.derive("accounts/unsubscribe-links/v1")
    }

    /// A key for one purpose, derived with HMAC-SHA256(master, label).
    fn derive(&self, label: &str) -> [u8; 32] {
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

    /// The reservation stream of an address.
    pub fn stream(&self, email: &EmailAddress) -> String {
        StreamCategory::Email.stream(self.digest(email))
    }
}

/// An account's data key.
pub type DataKey = Arc<[u8; 32]>;

/// The per-account data keys, wrapped by the master key, cached in memory once unwrapped.
pub struct DataKeys {
    db: Database,
    wrapping: [u8; 32],
    cache: RwLock<HashMap<Uuid, Option<DataKey>>>,
}

impl DataKeys {
    /// Keys stored in `db`, wrapped by a key derived from `master`.
    pub fn new(db: Database, master: &MasterKey) -> Self {
        Self {
            db,
            wrapping: master.derive("accounts/data-key-wrapping/v1"),
            cache: RwLock::new(HashMap::new()),
        }
    }

    fn aad(subject: Uuid) -> Vec<u8> {
        format!("data-key:{subject}").into_bytes()
    }

    /// Creates the data key of `subject` unless it has one (so a retried registration
    /// keeps the key its first attempt made).
    #[tracing::instrument(skip_all, fields(%subject))]
    pub async fn create(&self, subject: Uuid, now: Timestamp) -> Result<(), CryptoError> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let wrapped = seal(&self.wrapping, &Self::aad(subject), &key);
        let mut w = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO data_keys (subject_id, wrapped_key, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (subject_id) DO NOTHING",
        )
        .bind(subject.to_string())
        .bind(wrapped)
        .bind(now.unix_micros())
        .execute(&mut **w)
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// The data key of `subject`; `None` if it never had one or it was destroyed.
    pub async fn get(&self, subject: Uuid) -> Result<Option<DataKey>, CryptoError> {
        if let Some(cached) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&subject)
        {
            return Ok(cached.clone());
        }
        let row: Option<(Option<Vec<u8>>,)> =
            sqlx::query_as("SELECT wrapped_key FROM data_keys WHERE subject_id = $1")
                .bind(subject.to_string())
                .fetch_optional(self.db.pool())
                .await?;
        let key = match row {
            // Not created yet: do not cache, it may appear in a moment.
            None => return Ok(None),
            Some((None,)) => None,
            Some((Some(wrapped),)) => {
                let raw = open(&self.wrapping, &Self::aad(subject), &wrapped)?;
                let key: [u8; 32] = raw.try_into().map_err(|_| CryptoError::Unsealable)?;
                Some(Arc::new(key))
            }
        };
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject, key.clone());
        Ok(key)
    }

    /// Destroys the data key of `subject`: its personal data becomes unreadable for good.
    #[tracing::instrument(skip_all, fields(%subject))]
    pub async fn destroy(&self, subject: Uuid, now: Timestamp) -> Result<(), CryptoError> {
        let mut w = self.db.begin_write().await?;
        sqlx::query(
            "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = $2 \
             WHERE subject_id = $1 AND destroyed_at IS NULL",
        )
        .bind(subject.to_string())
        .bind(now.unix_micros())
        .execute(&mut **w)
        .await?;
        w.commit().await?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject, None);
        Ok(())
    }

    /// Forgets a key that was never used (its registration failed).
    pub async fn discard_unused(&self, subject: Uuid) -> Result<(), CryptoError> {
        let mut w = self.db.begin_write().await?;
        sqlx::query("DELETE FROM data_keys WHERE subject_id = $1")
            .bind(subject.to_string())
            .execute(&mut **w)
            .await?;
        w.commit().await?;
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&subject);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"stream-1:event-1", b"ada@example.com");
        assert!(!sealed.windows(3).any(|w| w == b"ada"));
        assert_eq!(
            open(&key, b"stream-1:event-1", &sealed).unwrap(),
            b"ada@example.com"
        );
        assert!(
            open(&key, b"stream-1:event-2", &sealed).is_err(),
            "bound to its context"
        );
        assert!(
            open(&[8u8; 32], b"stream-1:event-1", &sealed).is_err(),
            "bound to its key"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&key, b"stream-1:event-1", &tampered).is_err());
    }

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

    #[test]
    fn master_keys_must_be_32_bytes() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
