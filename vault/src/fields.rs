//! Sealed values outside the log: read-model columns and stored responses that hold
//! personal data or secrets are sealed with their data subject's key, like the personal
//! fields of events, and opened when read. Destroying the key then erases every copy of
//! them (dead rows, WAL, backups), not only the log's.

use crate::{CryptoError, DataKeys, open, seal};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;
use uuid::Uuid;

/// Seals and opens values under their subject's data key. The associated data binds the
/// subject and a context naming where the value lives (e.g. `accounts.email`), so a
/// sealed value cannot be moved to another row's subject or another column unnoticed.
#[derive(Clone)]
pub struct FieldSealer {
    keys: Arc<DataKeys>,
}

impl std::fmt::Debug for FieldSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldSealer")
    }
}

fn aad(subject: Uuid, context: &str) -> Vec<u8> {
    format!("field:{subject}:{context}").into_bytes()
}

impl FieldSealer {
    /// Seals with the keys of `keys`.
    pub fn new(keys: Arc<DataKeys>) -> Self {
        Self { keys }
    }

    /// The data keys used.
    pub fn keys(&self) -> &Arc<DataKeys> {
        &self.keys
    }

    /// `value` sealed for `subject` (base64), or `None` if the subject's key is gone: its
    /// personal data is erased, and nothing of it is to be stored.
    pub async fn seal(
        &self,
        subject: Uuid,
        context: &str,
        value: &[u8],
    ) -> Result<Option<String>, CryptoError> {
        let Some(key) = self.keys.get(subject).await? else {
            return Ok(None);
        };
        Ok(Some(STANDARD.encode(seal(
            &key,
            &aad(subject, context),
            value,
        ))))
    }

    /// [`seal`](Self::seal) for text.
    pub async fn seal_text(
        &self,
        subject: Uuid,
        context: &str,
        value: &str,
    ) -> Result<Option<String>, CryptoError> {
        self.seal(subject, context, value.as_bytes()).await
    }

    /// Opens what [`seal`](Self::seal) produced; `None` if the subject's key is gone.
    pub async fn open(
        &self,
        subject: Uuid,
        context: &str,
        sealed: &str,
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        let Some(key) = self.keys.get(subject).await? else {
            return Ok(None);
        };
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| CryptoError::Unsealable)?;
        open(&key, &aad(subject, context), &bytes).map(Some)
    }

    /// [`open`](Self::open) for text.
    pub async fn open_text(
        &self,
        subject: Uuid,
        context: &str,
        sealed: &str,
    ) -> Result<Option<String>, CryptoError> {
        self.open(subject, context, sealed)
            .await?
            .map(|bytes| String::from_utf8(bytes).map_err(|_| CryptoError::Unsealable))
            .transpose()
    }

    /// Opens an optional sealed text column (NULL stays `None`).
    pub async fn open_optional(
        &self,
        subject: Uuid,
        context: &str,
        sealed: Option<&str>,
    ) -> Result<Option<String>, CryptoError> {
        match sealed {
            Some(sealed) => self.open_text(subject, context, sealed).await,
            None => Ok(None),
        }
    }

    /// Seals an optional text (`None` stays `None`).
    pub async fn seal_optional(
        &self,
        subject: Uuid,
        context: &str,
        value: Option<&str>,
    ) -> Result<Option<String>, CryptoError> {
        match value {
            Some(value) => self.seal_text(subject, context, value).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;
    use domain::Timestamp;
    use store::Database;
    use store::testkit::TestSqlite;

    #[tokio::test]
    async fn fields_open_for_their_subject_and_context_until_the_key_is_destroyed() {
        let sqlite = TestSqlite::create();
        let db = Database::connect(&sqlite.url, 2).await.unwrap();
        db.migrate().await.unwrap();
        let keys = Arc::new(DataKeys::new(db, &MasterKey::generate()));
        let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Timestamp::from_unix_micros(0);
        keys.create(ada, now).await.unwrap();
        keys.create(bob, now).await.unwrap();
        let sealer = FieldSealer::new(keys.clone());

        let sealed = sealer
            .seal_text(ada, "accounts.email", "ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(!sealed.contains("ada"));
        assert_eq!(
            sealer
                .open_text(ada, "accounts.email", &sealed)
                .await
                .unwrap(),
            Some("ada@example.com".to_owned())
        );
        assert!(
            sealer
                .open_text(bob, "accounts.email", &sealed)
                .await
                .is_err(),
            "bound to its subject"
        );
        assert!(
            sealer
                .open_text(ada, "accounts.display_name", &sealed)
                .await
                .is_err(),
            "bound to its column"
        );

        keys.destroy(ada, now).await.unwrap();
        assert_eq!(
            sealer
                .open_text(ada, "accounts.email", &sealed)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            sealer.seal_text(ada, "accounts.email", "x").await.unwrap(),
            None,
            "nothing is sealed for an erased subject"
        );
    }
}
