//! Idempotency keys: the first request with a key runs and its response is stored; a retry
//! with the same key (and the same request) gets that response back without running again.
//! The same key with a different request is refused.

use domain::{AccountId, Timestamp};
use sqlx::Row;
use std::time::Duration;
use store::Database;

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
    /// A request that has not completed after this long is presumed dead (its process
    /// crashed) and the key may run again.
    lease: Duration,
    /// Keys are kept this long.
    retention: Duration,
}

impl IdempotencyStore {
    /// Keys in `db`, kept 24 hours.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
        }
    }

    /// Claims `scope` (the caller's credential, method, path and key, hashed) for a request
    /// whose fingerprint is `request_hash`.
    #[tracing::instrument(skip_all)]
    pub async fn claim(
        &self,
        scope: &str,
        request_hash: &str,
        now: Timestamp,
    ) -> Result<Claim, sqlx::Error> {
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
            "SELECT request_hash, status, content_type, body, created_at, completed_at \
             FROM idempotency_keys WHERE scope = $1",
        )
        .bind(scope)
        .fetch_one(&mut **w)
        .await?;
        let stored_hash: String = row.try_get("request_hash")?;
        let created_at: i64 = row.try_get("created_at")?;
        let expired = now.unix_micros() - created_at > self.retention.as_micros() as i64;
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
                body: row
                    .try_get::<Option<Vec<u8>>, _>("body")?
                    .unwrap_or_default(),
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

    /// Stores the response of a claimed request, made by `account` if authenticated.
    pub async fn complete(
        &self,
        scope: &str,
        response: &StoredResponse,
        account: Option<AccountId>,
        now: Timestamp,
    ) -> Result<(), sqlx::Error> {
        let mut w = self.db.begin_write().await?;
        sqlx::query(
            "UPDATE idempotency_keys SET status = $2, content_type = $3, body = $4, completed_at = $5, \
             account_id = $6 WHERE scope = $1",
        )
        .bind(scope)
        .bind(i32::from(response.status))
        .bind(response.content_type.clone())
        .bind(response.body.clone())
        .bind(now.unix_micros())
        .bind(account.map(|a| a.to_string()))
        .execute(&mut **w)
        .await?;
        w.commit().await
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
