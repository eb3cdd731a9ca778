//! The editor preferences read model: each account's values set and version, and the
//! history of every change (set or reset, per key). An account's rows go with it.

use crate::Follower;
use crate::page::{After, Page, Paged};
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::editor_preferences::EditorPreferencesEvent;
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};

/// Folds editor-preference events into `editor_preferences` and `editor_preference_changes`.
#[derive(Debug, Clone, Copy)]
pub struct EditorPreferencesProjector;

const TABLES: &[Table] = &[
    Table {
        name: "editor_preferences",
        ddl: &["CREATE TABLE {t} (
            account_id TEXT PRIMARY KEY,
            preferences TEXT NOT NULL,
            version    BIGINT NOT NULL
        )"],
    },
    Table {
        name: "editor_preference_changes",
        ddl: &[
            "CREATE TABLE {t} (
            account_id TEXT NOT NULL,
            change_id  TEXT NOT NULL,
            setting    TEXT NOT NULL,
            action     TEXT NOT NULL,
            value      TEXT,
            at         BIGINT NOT NULL,
            PRIMARY KEY (account_id, change_id)
        )",
            "CREATE INDEX {t}_time ON {t} (account_id, at)",
        ],
    },
];

#[async_trait]
impl Projector for EditorPreferencesProjector {
    fn name(&self) -> Follower {
        Follower::EditorPreferences
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Account, StreamCategory::EditorPreferences]
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
        let (p, c) = (
            tables.get("editor_preferences"),
            tables.get("editor_preference_changes"),
        );
        let stream = &decoded.envelope.stream;
        if let Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) = decoded.event() {
            if let Some(account) = StreamCategory::Account.id_in(stream) {
                let names = ["editor_preferences", "editor_preference_changes"];
                tables.forget_account(conn, &names, account).await?;
            }
            return Ok(());
        }
        let Some(DomainEvent::EditorPreferences(event)) = decoded.event() else {
            return Ok(());
        };
        let Some(account) = StreamCategory::EditorPreferences.id_in(stream) else {
            return Ok(());
        };
        let row = sqlx::query(&format!(
            "SELECT preferences, version FROM {p} WHERE account_id = $1"
        ))
        .bind(account)
        .fetch_optional(&mut *conn)
        .await?;
        let (mut values, version): (serde_json::Map<String, serde_json::Value>, i64) = match row {
            Some(row) => (
                serde_json::from_str(&row.try_get::<String, _>("preferences")?).unwrap_or_default(),
                row.try_get("version")?,
            ),
            None => (serde_json::Map::new(), 0),
        };
        let (changes, at): (Vec<(String, &str, Option<String>)>, Timestamp) = match event {
            EditorPreferencesEvent::EditorPreferencesSet { set, at, .. } => {
                for (key, value) in &set.0 {
                    values.insert(key.clone(), value.clone());
                }
                let changes = set
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), "set", Some(v.to_string())))
                    .collect();
                (changes, *at)
            }
            EditorPreferencesEvent::EditorPreferencesReset { keys, at } => {
                for key in keys {
                    values.remove(key);
                }
                (
                    keys.iter().map(|k| (k.clone(), "reset", None)).collect(),
                    *at,
                )
            }
        };
        sqlx::query(&format!(
            "INSERT INTO {p} (account_id, preferences, version) VALUES ($1, $2, $3) \
             ON CONFLICT (account_id) DO UPDATE SET preferences = excluded.preferences, \
             version = excluded.version"
        ))
        .bind(account)
        .bind(serde_json::Value::Object(values).to_string())
        .bind(version + 1)
        .execute(&mut *conn)
        .await?;
        for (n, (key, action, value)) in changes.into_iter().enumerate() {
            sqlx::query(&format!(
                "INSERT INTO {c} (account_id, change_id, setting, action, value, at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, change_id) DO NOTHING"
            ))
            .bind(account)
            .bind(format!("{}-{n:03}", decoded.envelope.event_id))
            .bind(key)
            .bind(action)
            .bind(value)
            .bind(at.unix_micros())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// An account's editor preferences: the values set and the version.
pub async fn preferences(
    db: &Database,
    account: AccountId,
) -> Result<(serde_json::Map<String, serde_json::Value>, u64), ProjectionError> {
    let row =
        sqlx::query("SELECT preferences, version FROM editor_preferences WHERE account_id = $1")
            .bind(account.0.to_string())
            .fetch_optional(db.pool())
            .await?;
    let Some(row) = row else {
        return Ok((serde_json::Map::new(), 0));
    };
    let values = serde_json::from_str(&row.try_get::<String, _>("preferences")?)
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    let version: i64 = row.try_get("version")?;
    Ok((values, u64::try_from(version).unwrap_or(0)))
}

/// One change of one preference.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceChange {
    /// Its id (the event's, and the key's place in it).
    pub change_id: String,
    /// The setting.
    pub key: String,
    /// `set` or `reset`.
    pub action: String,
    /// The value set.
    pub value: Option<serde_json::Value>,
    /// When.
    pub at: Timestamp,
}

/// An account's preference changes, newest first, a page at a time.
pub async fn history(
    db: &Database,
    account: AccountId,
    page: &Page,
) -> Result<Paged<PreferenceChange>, ProjectionError> {
    let (at, key, limit) = page.bounds();
    let rows = sqlx::query(
        "SELECT change_id, setting, action, value, at FROM editor_preference_changes \
         WHERE account_id = $1 AND (at < $2 OR (at = $2 AND change_id < $3)) \
         ORDER BY at DESC, change_id DESC LIMIT $4",
    )
    .bind(account.0.to_string())
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let changes = rows
        .iter()
        .map(|row| {
            let value: Option<String> = row.try_get("value")?;
            Ok(PreferenceChange {
                change_id: row.try_get("change_id")?,
                key: row.try_get("setting")?,
                action: row.try_get("action")?,
                value: value.and_then(|v| serde_json::from_str(&v).ok()),
                at: Timestamp::from_unix_micros(row.try_get("at")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Paged::cut(changes, page, |c| After {
        at: c.at.unix_micros(),
        key: c.change_id.clone(),
    }))
}
