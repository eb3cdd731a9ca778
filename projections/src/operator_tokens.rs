//! The `admin_tokens` read model: operator credentials by token hash.

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::operator::OperatorTokenEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;

/// Folds operator-token events into `admin_tokens`. Revoked tokens are deleted.
#[derive(Debug, Clone, Copy)]
pub struct OperatorTokensProjector;

const TABLES: &[Table] = &[Table {
    name: "admin_tokens",
    ddl: &["CREATE TABLE {t} (
        token_id   TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL,
        label      TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )"],
}];

#[async_trait]
impl Projector for OperatorTokensProjector {
    fn name(&self) -> Follower {
        Follower::OperatorTokens
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
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
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (token_id, token_hash, role, label, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (token_id) DO NOTHING"
                ))
                .bind(token_id)
                .bind(token_hash.as_str())
                .bind(role.as_str())
                .bind(label.as_str())
                .bind(at.unix_micros())
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

/// A live operator token: (id, role).
pub async fn find_by_hash(
    db: &Database,
    token_hash: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT token_id, role FROM admin_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| {
        let id: String = row.try_get("token_id")?;
        Ok((
            Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(e.into()))?,
            row.try_get("role")?,
        ))
    })
    .transpose()
}
