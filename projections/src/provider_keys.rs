//! The `provider_keys` read model: which owner (account or workspace) keeps a key of which
//! provider, its version and status, for the scheduler's daily re-verification; and
//! `provider_key_history`, what happened to each key (saved, verified, removed, read for a
//! generation), which grows with every resolve and so is read a page at a time here rather
//! than folded into the owner's state. No secret, hint or address is kept here; the keys
//! themselves are read from their stream.

use crate::Follower;
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::provider_key::{HistoryEntry, KeyStatus, Provider, ProviderKeyEvent};
use domain::workspace::WorkspaceEvent;
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;

/// Folds provider-key events into `provider_keys`; an owner's rows go with its deletion.
#[derive(Debug, Clone, Copy)]
pub struct ProviderKeysProjector;

const TABLES: &[Table] = &[
    Table {
        name: "provider_keys",
        ddl: &["CREATE TABLE {t} (
        owner_id  TEXT NOT NULL,
        provider  TEXT NOT NULL,
        version   BIGINT NOT NULL,
        status    TEXT NOT NULL,
        workspace BIGINT NOT NULL,
        PRIMARY KEY (owner_id, provider)
    )"],
    },
    Table {
        name: "provider_key_history",
        // `revision`: the event's revision in the owner's stream, which orders it.
        ddl: &[
            "CREATE TABLE {t} (
        owner_id      TEXT NOT NULL,
        revision      BIGINT NOT NULL,
        provider      TEXT NOT NULL,
        action        TEXT NOT NULL,
        version       BIGINT,
        status        TEXT,
        account_id    TEXT,
        service_token TEXT,
        at            BIGINT NOT NULL,
        PRIMARY KEY (owner_id, revision)
    )",
            "CREATE INDEX {t}_provider ON {t} (owner_id, provider, revision)",
        ],
    },
];

#[async_trait]
impl Projector for ProviderKeysProjector {
    fn name(&self) -> Follower {
        Follower::ProviderKeys
    }

    fn version(&self) -> i32 {
        // 2: each key's history.
        2
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
        let h = tables.get("provider_key_history");
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
            for table in [t, h] {
                sqlx::query(&format!("DELETE FROM {table} WHERE owner_id = $1"))
                    .bind(owner)
                    .execute(&mut *conn)
                    .await?;
            }
            return Ok(());
        }
        let Some(DomainEvent::ProviderKey(event)) = decoded.event() else {
            return Ok(());
        };
        let Some(owner) = StreamCategory::ProviderKeys.id_in(stream) else {
            return Ok(());
        };
        let entry = HistoryEntry::of(event);
        sqlx::query(&format!(
            "INSERT INTO {h} (owner_id, revision, provider, action, version, status, \
             account_id, service_token, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (owner_id, revision) DO NOTHING"
        ))
        .bind(owner)
        .bind(store::sql_int(decoded.envelope.revision))
        .bind(entry.provider.as_str())
        .bind(entry.action)
        .bind(entry.version.map(i64::from))
        .bind(entry.status.map(KeyStatus::as_str))
        .bind(entry.account_id.map(|a| a.0.to_string()))
        .bind(entry.service_token.map(|t| t.to_string()))
        .bind(entry.at.unix_micros())
        .execute(&mut *conn)
        .await?;
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

/// A page of what happened to `owner`'s key of `provider`, oldest first: the entries after
/// the one at stream revision `after` (none: from the first), at most `limit`, and whether
/// more follow. Each entry comes with its revision, the cursor of the page after it.
pub async fn history(
    db: &Database,
    owner: Uuid,
    provider: Provider,
    after: Option<u64>,
    limit: usize,
) -> Result<(Vec<(u64, HistoryEntry)>, bool), ProjectionError> {
    let rows = sqlx::query(
        "SELECT revision, action, version, status, account_id, service_token, at \
         FROM provider_key_history WHERE owner_id = $1 AND provider = $2 AND revision > $3 \
         ORDER BY revision LIMIT $4",
    )
    .bind(owner.to_string())
    .bind(provider.as_str())
    .bind(after.map_or(-1, store::sql_int))
    .bind(store::sql_int(limit).saturating_add(1))
    .fetch_all(db.pool())
    .await?;
    let more = rows.len() > limit;
    let mut entries = Vec::with_capacity(rows.len().min(limit));
    for row in rows.iter().take(limit) {
        let action: String = row.try_get("action")?;
        let Some(action) = HistoryEntry::ACTIONS.into_iter().find(|a| *a == action) else {
            continue;
        };
        let id = |column: &str| -> Result<Option<Uuid>, sqlx::Error> {
            Ok(row
                .try_get::<Option<String>, _>(column)?
                .and_then(|text| Uuid::parse_str(&text).ok()))
        };
        let revision: i64 = row.try_get("revision")?;
        entries.push((
            u64::try_from(revision).unwrap_or_default(),
            HistoryEntry {
                provider,
                action,
                version: row
                    .try_get::<Option<i64>, _>("version")?
                    .and_then(|v| u32::try_from(v).ok()),
                status: row
                    .try_get::<Option<String>, _>("status")?
                    .and_then(|s| KeyStatus::parse(&s)),
                account_id: id("account_id")?.map(AccountId),
                service_token: id("service_token")?,
                at: Timestamp::from_unix_micros(row.try_get("at")?),
            },
        ));
    }
    Ok((entries, more))
}
