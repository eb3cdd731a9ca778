//! Per-subject data keys (an account's, later a workspace's), stored in the `data_keys`
//! table wrapped by a key derived from the master key, cached once unwrapped.
//!
//! The table may live in a database of its own (the key store), apart from the data it
//! seals: a backup of the data then holds no key, and destroying a key in the key store
//! erases the subject's personal data from every copy of the data, backups included.

use crate::{CryptoError, MasterKey, open, seal};
use domain::Timestamp;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use store::{Backend, Database};
use uuid::Uuid;

/// A stored key: subject, wrapped key (none once destroyed), created and destroyed at.
type KeyRow = (String, Option<Vec<u8>>, i64, Option<i64>);

/// An account's data key.
pub type DataKey = Arc<[u8; 32]>;

/// The per-account data keys, wrapped by the master key, cached in memory once unwrapped.
pub struct DataKeys {
    db: Database,
    wrapping: [u8; 32],
    cache: RwLock<Cache>,
}

/// The keys unwrapped so far (`None`: destroyed), and how many times keys were dropped
/// from it: a look-up caches what it read only if none was dropped meanwhile, so a key
/// read just before its destruction is not kept after it.
#[derive(Default)]
struct Cache {
    keys: HashMap<Uuid, Option<DataKey>>,
    drops: u64,
}

impl DataKeys {
    /// Keys stored in `db`, wrapped by a key derived from `master`.
    pub fn new(db: Database, master: &MasterKey) -> Self {
        Self {
            db,
            wrapping: master.derive("accounts/data-key-wrapping/v1"),
            cache: RwLock::default(),
        }
    }

    /// The key store.
    pub fn store(&self) -> &Database {
        &self.db
    }

    fn aad(subject: Uuid) -> Vec<u8> {
        format!("data-key:{subject}").into_bytes()
    }

    /// Creates the `data_keys` table in a key store of its own, if missing.
    pub async fn prepare_store(store: &Database) -> Result<(), CryptoError> {
        let blob = match store.backend() {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
        let mut w = store.begin_write().await?;
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS data_keys (subject_id TEXT PRIMARY KEY, \
             wrapped_key {blob}, created_at BIGINT NOT NULL, destroyed_at BIGINT)"
        ))
        .execute(&mut **w)
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// Moves the keys left in `data` (where earlier versions kept them) into this key
    /// store; returns how many moved.
    pub async fn adopt_from(&self, data: &Database) -> Result<usize, CryptoError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT subject_id, wrapped_key, created_at, destroyed_at FROM data_keys",
        )
        .fetch_all(data.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut w = self.db.begin_write().await?;
        for (subject, wrapped, created_at, destroyed_at) in &rows {
            sqlx::query(
                "INSERT INTO data_keys (subject_id, wrapped_key, created_at, destroyed_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (subject_id) DO NOTHING",
            )
            .bind(subject)
            .bind(wrapped.clone())
            .bind(created_at)
            .bind(destroyed_at)
            .execute(&mut **w)
            .await?;
        }
        w.commit().await?;
        let mut w = data.begin_write().await?;
        sqlx::query("DELETE FROM data_keys")
            .execute(&mut **w)
            .await?;
        w.commit().await?;
        Ok(rows.len())
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
        let drops = {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = cache.keys.get(&subject) {
                return Ok(cached.clone());
            }
            cache.drops
        };
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
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.drops == drops {
            cache.keys.insert(subject, key.clone());
        }
        Ok(key)
    }

    /// Destroys the data key of `subject`: its personal data becomes unreadable for good.
    #[tracing::instrument(skip_all, fields(%subject))]
    pub async fn destroy(&self, subject: Uuid, now: Timestamp) -> Result<(), CryptoError> {
        self.destroy_all(&[subject], now).await
    }

    /// Destroys the data keys of `subjects` (a subject without a key is passed over), in
    /// one transaction and one scrub of the key store.
    #[tracing::instrument(skip_all, fields(subjects = subjects.len()))]
    pub async fn destroy_all(&self, subjects: &[Uuid], now: Timestamp) -> Result<(), CryptoError> {
        if subjects.is_empty() {
            return Ok(());
        }
        let mut w = self.db.begin_write().await?;
        for subject in subjects {
            sqlx::query(
                "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = $2 \
                 WHERE subject_id = $1 AND destroyed_at IS NULL",
            )
            .bind(subject.to_string())
            .bind(now.unix_micros())
            .execute(&mut **w)
            .await?;
        }
        w.commit().await?;
        {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            cache.drops += 1;
            for subject in subjects {
                cache.keys.insert(*subject, None);
            }
        }
        self.scrub().await
    }

    /// Leaves no copy of destroyed keys in the key store's files: SQLite overwrites
    /// deleted content (`secure_delete`) and the WAL is truncated; PostgreSQL rewrites the
    /// small table into a new file, so no dead row of it remains in one.
    async fn scrub(&self) -> Result<(), CryptoError> {
        let sql = match self.db.backend() {
            Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
            Backend::Postgres => "VACUUM FULL data_keys",
        };
        sqlx::query(sql).execute(self.db.pool()).await?;
        Ok(())
    }

    /// Whether the master key opens the stored data keys (tried on one live key), for
    /// `accounts doctor`: `None` when no key is stored yet.
    pub async fn master_opens_keys(&self) -> Result<Option<bool>, CryptoError> {
        let row: Option<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT subject_id, wrapped_key FROM data_keys WHERE wrapped_key IS NOT NULL LIMIT 1",
        )
        .fetch_optional(self.db.pool())
        .await?;
        Ok(row.map(|(subject, wrapped)| {
            let subject = Uuid::parse_str(&subject).unwrap_or_default();
            open(&self.wrapping, &Self::aad(subject), &wrapped).is_ok()
        }))
    }

    /// Drops `subject`'s key from this process's cache (another node destroyed it): the
    /// next look-up reads the key store.
    pub fn forget(&self, subject: Uuid) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.drops += 1;
        cache.keys.remove(&subject);
    }

    /// Drops every key from this process's cache (another node destroyed keys this one
    /// cannot name: a deleted workspace's invitations').
    pub fn forget_all(&self) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.drops += 1;
        cache.keys.clear();
    }

    /// Forgets a key that was never used (its registration failed).
    pub async fn discard_unused(&self, subject: Uuid) -> Result<(), CryptoError> {
        let mut w = self.db.begin_write().await?;
        sqlx::query("DELETE FROM data_keys WHERE subject_id = $1")
            .bind(subject.to_string())
            .execute(&mut **w)
            .await?;
        w.commit().await?;
        self.forget(subject);
        Ok(())
    }
}
