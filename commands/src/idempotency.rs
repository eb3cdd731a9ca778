//! Idempotency keys: the first request with a key runs and its response is stored; a retry
//! with the same key (and the same request) gets that response back without running again.
//! The same key with a different request is refused.
//!
//! A response made for an account is stored sealed with the account's data key (it may
//! hold personal data or a secret shown once), so it is unreadable on disk and gone with
//! the key when the account is erased.

use domain::{AccountId, Timestamp};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;
use std::time::Duration;
use store::Database;
use vault::FieldSealer;

/// Why the idempotency store failed.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The table failed.
    #[error("idempotency keys: {0}")]
    Database(#[from] sqlx::Error),
    /// A response could not be sealed or opened.
    #[error("idempotency keys: {0}")]
    Crypto(#[from] vault::CryptoError),
}

/// What a stored response's seal is bound to, besides its account.
fn context(scope: &str) -> String {
    format!("idempotency_keys.body:{scope}")
}

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: run it, then [`IdempotencyStore::complete`] or [`IdempotencyStore::release`].
    Run,
    /// Done before: send this again.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// Storage of idempotency keys, in the `idempotency_keys` table.
#[derive(Clone)]
pub struct IdempotencyStore {
    db: Database,
    sealer: FieldSealer,
    /// A request that has not completed after this long is presumed dead (its process
    /// crashed) and the key may run again.
    lease: Duration,
    /// Keys are kept this long.
    retention: Duration,
    /// Keys the requests' fingerprints.
    fingerprint_key: [u8; 32],
}

impl IdempotencyStore {
    /// Keys in `db`, kept 24 hours; responses of an account sealed with `sealer`; requests
    /// fingerprinted with a hash keyed by `fingerprint_key`.
    pub fn new(db: Database, sealer: FieldSealer, fingerprint_key: [u8; 32]) -> Self {
        Self {
            db,
            sealer,
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
            fingerprint_key,
        }
    }

    /// The fingerprint of a request made of `parts` (hex), which [`Self::claim`] keeps to
    /// tell a retry from another request under the same key: keyed, since a body may hold
    /// a password or an address that an unkeyed hash would let a backup's reader test
    /// guesses against.
    pub fn fingerprint(&self, parts: &[&[u8]]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key)
            .expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// Claims `scope` (the caller's credential, method, path and key, hashed) for a request
    /// whose fingerprint is `request_hash`.
    #[tracing::instrument(skip_all)]
    pub async fn claim(
        &self,
        scope: &str,
        request_hash: &str,
        now: Timestamp,
    ) -> Result<Claim, IdempotencyError> {
        let mut w = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, request_hash, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(request_hash)
        .bind(now.unix_micros())
        .execute(&mut **w)
        .await?
        .rows_affected();
        if inserted == 1 {
            w.commit().await?;
            return Ok(Claim::Run);
        }
        let row = sqlx::query(
            "SELECT request_hash, status, content_type, body, body_sealed, account_id, \
             created_at, completed_at FROM idempotency_keys WHERE scope = $1",
        )
        .bind(scope)
        .fetch_one(&mut **w)
        .await?;
        let stored_hash: String = row.try_get("request_hash")?;
        let created_at: i64 = row.try_get("created_at")?;
        let body = self.opened_body(scope, &row).await?;
        // A sealed response whose key is gone (its account was erased) is no more.
        let expired =
            now.unix_micros() - created_at > self.retention.as_micros() as i64 || body.is_none();
        let claim = if expired {
            sqlx::query(
                "UPDATE idempotency_keys SET request_hash = $2, status = NULL, content_type = NULL, \
                 body = NULL, created_at = $3, completed_at = NULL WHERE scope = $1",
            )
            .bind(scope)
            .bind(request_hash)
            .bind(now.unix_micros())
            .execute(&mut **w)
            .await?;
            Claim::Run
        } else if stored_hash != request_hash {
            Claim::Mismatch
        } else if let Some(status) = row.try_get::<Option<i32>, _>("status")? {
            Claim::Replay(StoredResponse {
                status: status as u16,
                content_type: row.try_get("content_type")?,
                body: body.unwrap_or_default(),
            })
        } else if now.unix_micros() - created_at > self.lease.as_micros() as i64 {
            sqlx::query("UPDATE idempotency_keys SET created_at = $2 WHERE scope = $1")
                .bind(scope)
                .bind(now.unix_micros())
                .execute(&mut **w)
                .await?;
            Claim::Run
        } else {
            Claim::InProgress
        };
        w.commit().await?;
        Ok(claim)
    }

    /// Stores the response of a claimed request, made by `account` if authenticated (then
    /// sealed with the account's key; if that key is already gone, the key is released).
    pub async fn complete(
        &self,
        scope: &str,
        response: &StoredResponse,
        account: Option<AccountId>,
        now: Timestamp,
    ) -> Result<(), IdempotencyError> {
        let body = match account {
            Some(account) => {
                let Some(sealed) = self
                    .sealer
                    .seal(account.0, &context(scope), &response.body)
                    .await?
                else {
                    return Ok(self.release(scope).await?);
                };
                sealed.into_bytes()
            }
            None => response.body.clone(),
        };
        let mut w = self.db.begin_write().await?;
        sqlx::query(
            "UPDATE idempotency_keys SET status = $2, content_type = $3, body = $4, completed_at = $5, \
             account_id = $6, body_sealed = $7 WHERE scope = $1",
        )
        .bind(scope)
        .bind(i32::from(response.status))
        .bind(response.content_type.clone())
        .bind(body)
        .bind(now.unix_micros())
        .bind(account.map(|a| a.to_string()))
        .bind(i64::from(account.is_some()))
        .execute(&mut **w)
        .await?;
        Ok(w.commit().await?)
    }

    /// The stored body of `row`, opened if sealed; `None` if its account's key is gone.
    async fn opened_body(
        &self,
        scope: &str,
        row: &sqlx::any::AnyRow,
    ) -> Result<Option<Vec<u8>>, IdempotencyError> {
        let body: Option<Vec<u8>> = row.try_get("body")?;
        let Some(body) = body else {
            return Ok(Some(Vec::new()));
        };
        if row.try_get::<i64, _>("body_sealed")? == 0 {
            return Ok(Some(body));
        }
        let account: Option<String> = row.try_get("account_id")?;
        let Some(account) = account.and_then(|a| uuid::Uuid::parse_str(&a).ok()) else {
            return Ok(None);
        };
        let sealed = String::from_utf8(body).map_err(|_| vault::CryptoError::Unsealable)?;
        Ok(self.sealer.open(account, &context(scope), &sealed).await?)
    }

    /// Gives a claim up (the request failed in a way worth retrying): the key may run again.
    pub async fn release(&self, scope: &str) -> Result<(), sqlx::Error> {
        let mut w = self.db.begin_write().await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND completed_at IS NULL")
            .bind(scope)
            .execute(&mut **w)
            .await?;
        w.commit().await
    }

    /// Deletes every response kept for an account's requests (the account is erased).
    pub async fn purge_account(&self, account: AccountId) -> Result<u64, sqlx::Error> {
        let mut w = self.db.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE account_id = $1")
            .bind(account.to_string())
            .execute(&mut **w)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(deleted)
    }

    /// Deletes keys past their retention.
    pub async fn purge(&self, now: Timestamp) -> Result<u64, sqlx::Error> {
        let cutoff = now.unix_micros() - self.retention.as_micros() as i64;
        let mut w = self.db.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff)
            .execute(&mut **w)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(deleted)
    }
}
