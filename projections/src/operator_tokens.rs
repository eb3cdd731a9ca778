//! The `admin_tokens` read model: operator credentials by token hash.

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::operator::{OperatorRole, OperatorTokenEvent, expiry};
use domain::{DomainEvent, StreamCategory, Timestamp};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;

/// Folds operator-token events into `admin_tokens`. Revoked tokens are deleted; expired
/// ones stay until revoked, and [`find_by_hash`] returns their expiry for the caller to
/// refuse them.
#[derive(Debug, Clone, Copy)]
pub struct OperatorTokensProjector;

const TABLES: &[Table] = &[Table {
    name: "admin_tokens",
    ddl: &["CREATE TABLE {t} (
        token_id   TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL,
        label      TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
    )"],
}];

#[async_trait]
impl Projector for OperatorTokensProjector {
    fn name(&self) -> Follower {
        Follower::OperatorTokens
    }

    fn version(&self) -> i32 {
        // 2: expires_at.
        2
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::OperatorToken]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let Some(DomainEvent::OperatorToken(event)) = decoded.event() else {
            return Ok(());
        };
        let Some(token_id) = StreamCategory::OperatorToken.id_in(&decoded.envelope.stream) else {
            return Ok(());
        };
        let t = tables.get("admin_tokens");
        match event {
            OperatorTokenEvent::OperatorTokenCreated {
                token_hash,
                role,
                label,
                at,
                expires_at,
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (token_id, token_hash, role, label, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_id) DO NOTHING"
                ))
                .bind(token_id)
                .bind(token_hash.as_str())
                .bind(role.as_str())
                .bind(label.as_str())
                .bind(at.unix_micros())
                .bind(expiry(*at, *expires_at).unix_micros())
                .execute(&mut *conn)
                .await?;
            }
            OperatorTokenEvent::OperatorTokenRevoked { .. } => {
                sqlx::query(&format!("DELETE FROM {t} WHERE token_id = $1"))
                    .bind(token_id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// An operator token the read model holds (not revoked; possibly expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOperatorToken {
    /// Its id.
    pub token_id: Uuid,
    /// What it may do.
    pub role: OperatorRole,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// The operator token with `token_hash`, unless revoked; the caller refuses an expired one.
pub async fn find_by_hash(
    db: &Database,
    token_hash: &str,
) -> Result<Option<StoredOperatorToken>, sqlx::Error> {
    let row =
        sqlx::query("SELECT token_id, role, expires_at FROM admin_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(db.pool())
            .await?;
    row.map(|row| {
        let decode = |e: String| sqlx::Error::Decode(e.into());
        let id: String = row.try_get("token_id")?;
        let role: String = row.try_get("role")?;
        Ok(StoredOperatorToken {
            token_id: Uuid::parse_str(&id).map_err(|e| decode(e.to_string()))?,
            role: role.parse().map_err(decode)?,
            expires_at: Timestamp::from_unix_micros(row.try_get("expires_at")?),
        })
    })
    .transpose()
}
