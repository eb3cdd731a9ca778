//! The `provider_keys` read model: which owner (account or workspace) keeps a key of which
//! provider, its version and status, for the scheduler's daily re-verification. No
//! secret, hint or address is kept here; the keys themselves are read from their stream.

use crate::Follower;
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::provider_key::{Provider, ProviderKeyEvent};
use domain::workspace::WorkspaceEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;

/// Folds provider-key events into `provider_keys`; an owner's rows go with its deletion.
#[derive(Debug, Clone, Copy)]
pub struct ProviderKeysProjector;

const TABLES: &[Table] = &[Table {
    name: "provider_keys",
    ddl: &["CREATE TABLE {t} (
        owner_id  TEXT NOT NULL,
        provider  TEXT NOT NULL,
        version   BIGINT NOT NULL,
        status    TEXT NOT NULL,
        workspace BIGINT NOT NULL,
        PRIMARY KEY (owner_id, provider)
    )"],
}];

#[async_trait]
impl Projector for ProviderKeysProjector {
    fn name(&self) -> Follower {
        Follower::ProviderKeys
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[
            StreamCategory::Account,
            StreamCategory::ProviderKeys,
            StreamCategory::Workspace,
        ]
    }

    fn concerns(&self, event: &DecodedEvent) -> bool {
        account_events_only(event, |e| matches!(e, AccountEvent::AccountDeleted { .. }))
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let t = tables.get("provider_keys");
        let stream = &decoded.envelope.stream;
        let deleted_owner = match decoded.event() {
            Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) => {
                StreamCategory::Account.id_in(stream)
            }
            Some(DomainEvent::Workspace(WorkspaceEvent::WorkspaceDeleted { .. })) => {
                StreamCategory::Workspace.id_in(stream)
            }
            _ => None,
        };
        if let Some(owner) = deleted_owner {
            sqlx::query(&format!("DELETE FROM {t} WHERE owner_id = $1"))
                .bind(owner)
                .execute(&mut *conn)
                .await?;
            return Ok(());
        }
        let Some(DomainEvent::ProviderKey(event)) = decoded.event() else {
            return Ok(());
        };
        let Some(owner) = StreamCategory::ProviderKeys.id_in(stream) else {
            return Ok(());
        };
        match event {
            ProviderKeyEvent::ProviderKeySet {
                provider,
                version,
                status,
                workspace,
                ..
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (owner_id, provider, version, status, workspace) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner_id, provider) DO UPDATE \
                     SET version = $3, status = $4, workspace = $5"
                ))
                .bind(owner)
                .bind(provider.as_str())
                .bind(i64::from(*version))
                .bind(status.as_str())
                .bind(i64::from(*workspace))
                .execute(&mut *conn)
                .await?;
            }
            ProviderKeyEvent::ProviderKeyVerified {
                provider,
                version,
                status,
                ..
            } => {
                sqlx::query(&format!(
                    "UPDATE {t} SET status = $1 WHERE owner_id = $2 AND provider = $3 \
                     AND version = $4"
                ))
                .bind(status.as_str())
                .bind(owner)
                .bind(provider.as_str())
                .bind(i64::from(*version))
                .execute(&mut *conn)
                .await?;
            }
            ProviderKeyEvent::ProviderKeyRemoved { provider, .. } => {
                sqlx::query(&format!(
                    "DELETE FROM {t} WHERE owner_id = $1 AND provider = $2"
                ))
                .bind(owner)
                .bind(provider.as_str())
                .execute(&mut *conn)
                .await?;
            }
            ProviderKeyEvent::ProviderKeyResolved { .. } => {}
        }
        Ok(())
    }
}

/// A stored key, as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKeyRow {
    /// The account or workspace.
    pub owner: Uuid,
    /// Whether the owner is a workspace.
    pub workspace: bool,
    /// The provider.
    pub provider: Provider,
}

/// Every stored key, by owner and provider.
pub async fn stored_keys(db: &Database) -> Result<Vec<StoredKeyRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT owner_id, provider, workspace FROM provider_keys ORDER BY owner_id, provider",
    )
    .fetch_all(db.pool())
    .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let owner: String = row.try_get("owner_id")?;
        let provider: String = row.try_get("provider")?;
        let (Ok(owner), Some(provider)) = (Uuid::parse_str(&owner), Provider::parse(&provider))
        else {
            continue;
        };
        keys.push(StoredKeyRow {
            owner,
            workspace: row.try_get::<i64, _>("workspace")? != 0,
            provider,
        });
    }
    Ok(keys)
}
