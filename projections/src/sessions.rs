//! The `sessions` read model: live sessions, looked up by token hash on every
//! authenticated request and listed on `GET /me/sessions`. Where a session started (device,
//! IP, user agent, location) is one column sealed with the account's data key.

use crate::Follower;
use crate::accounts::account_of;
use crate::page::{After, Page, Paged};
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::activity::ActivityEvent;
use domain::session::SessionOrigin;
use domain::{AccountId, DomainEvent, SessionId, StreamCategory, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;
use vault::FieldSealer;

/// Folds session events into `sessions`. Revoked sessions are deleted: the log keeps
/// their history.
#[derive(Debug, Clone)]
pub struct SessionsProjector {
    sealer: FieldSealer,
}

impl SessionsProjector {
    /// Seals the sessions' origins with `sealer`.
    pub fn new(sealer: FieldSealer) -> Self {
        Self { sealer }
    }
}

/// Where the sealed origin lives, bound into its seal.
const ORIGIN: &str = "sessions.origin";

const TABLES: &[Table] = &[Table {
    name: "sessions",
    ddl: &[
        "CREATE TABLE {t} (
            session_id     TEXT PRIMARY KEY,
            account_id     TEXT NOT NULL,
            token_hash     TEXT NOT NULL UNIQUE,
            origin         TEXT,
            created_at     BIGINT NOT NULL,
            last_active_at BIGINT NOT NULL,
            expires_at     BIGINT NOT NULL
        )",
        "CREATE INDEX {t}_by_account ON {t} (account_id)",
    ],
}];

#[async_trait]
impl Projector for SessionsProjector {
    fn name(&self) -> Follower {
        Follower::Sessions
    }

    fn version(&self) -> i32 {
        // 2: the origin sealed in one column.
        2
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Account, StreamCategory::Activity]
    }

    fn concerns(&self, event: &DecodedEvent) -> bool {
        account_events_only(event, |e| {
            matches!(
                e,
                AccountEvent::SessionStarted { .. }
                    | AccountEvent::SessionRevoked { .. }
                    | AccountEvent::AccountDeleted { .. }
            )
        })
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let t = tables.get("sessions");
        match decoded.event() {
            Some(DomainEvent::Account(AccountEvent::SessionStarted {
                session_id,
                token_hash,
                started_at,
                expires_at,
                origin,
                ..
            })) => {
                let Some(account_id) = account_of(decoded, StreamCategory::Account) else {
                    return Ok(());
                };
                let Ok(subject) = Uuid::parse_str(&account_id) else {
                    return Ok(());
                };
                let origin = serde_json::to_vec(origin)
                    .map_err(|e| ProjectionError::Decode(e.to_string()))?;
                let origin = self.sealer.seal(subject, ORIGIN, &origin).await?;
                sqlx::query(&format!(
                    "INSERT INTO {t} (session_id, account_id, token_hash, origin, created_at, \
                     last_active_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6) \
                     ON CONFLICT (session_id) DO NOTHING"
                ))
                .bind(session_id.to_string())
                .bind(account_id)
                .bind(token_hash.as_str())
                .bind(origin)
                .bind(started_at.unix_micros())
                .bind(expires_at.unix_micros())
                .execute(&mut *conn)
                .await?;
            }
            Some(DomainEvent::Account(AccountEvent::SessionRevoked { session_id, .. })) => {
                sqlx::query(&format!("DELETE FROM {t} WHERE session_id = $1"))
                    .bind(session_id.to_string())
                    .execute(&mut *conn)
                    .await?;
            }
            Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) => {
                // Every row of the account goes, even of sessions that expired unrevoked.
                if let Some(account_id) = account_of(decoded, StreamCategory::Account) {
                    tables
                        .forget_account(conn, &["sessions"], &account_id)
                        .await?;
                }
            }
            Some(DomainEvent::Activity(ActivityEvent::SessionsActive { sessions })) => {
                for seen in sessions {
                    sqlx::query(&format!(
                        "UPDATE {t} SET last_active_at = $2 WHERE session_id = $1 AND last_active_at < $2"
                    ))
                    .bind(seen.session_id.to_string())
                    .bind(seen.last_active_at.unix_micros())
                    .execute(&mut *conn)
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A live session, as an authenticated request checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    /// The session.
    pub session_id: SessionId,
    /// Its account.
    pub account_id: AccountId,
    /// When it started.
    pub created_at: Timestamp,
    /// Last request recorded in the log (the API adds what it saw since the last flush).
    pub last_active_at: Timestamp,
    /// Absolute expiry.
    pub expires_at: Timestamp,
}

/// A live session with where it started, as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The session.
    pub session: LiveSession,
    /// Device, IP, user agent and location (empty once the account's key is gone).
    pub origin: SessionOrigin,
}

const COLUMNS: &str = "session_id, account_id, created_at, last_active_at, expires_at";

fn parse_uuid(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn decode(row: &AnyRow) -> Result<LiveSession, sqlx::Error> {
    Ok(LiveSession {
        session_id: SessionId(parse_uuid(&row.try_get::<String, _>("session_id")?)?),
        account_id: AccountId(parse_uuid(&row.try_get::<String, _>("account_id")?)?),
        created_at: Timestamp::from_unix_micros(row.try_get("created_at")?),
        last_active_at: Timestamp::from_unix_micros(row.try_get("last_active_at")?),
        expires_at: Timestamp::from_unix_micros(row.try_get("expires_at")?),
    })
}

/// The live session holding a token (by its hash).
pub async fn find_by_token_hash(
    db: &Database,
    token_hash: &str,
) -> Result<Option<LiveSession>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// A page of the account's sessions not past their absolute expiry at `now`, newest first
/// (ties by id), with their origins opened.
pub async fn list_for_account(
    db: &Database,
    sealer: &FieldSealer,
    account_id: AccountId,
    now: Timestamp,
    page: &Page,
) -> Result<Paged<SessionRow>, ProjectionError> {
    let (at, key, limit) = page.bounds();
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, origin FROM sessions WHERE account_id = $1 AND expires_at > $2 \
         AND (created_at < $3 OR (created_at = $3 AND session_id > $4)) \
         ORDER BY created_at DESC, session_id LIMIT $5"
    ))
    .bind(account_id.to_string())
    .bind(now.unix_micros())
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut sessions = Vec::with_capacity(rows.len());
    for row in &rows {
        let sealed: Option<String> = row.try_get("origin")?;
        let origin = match sealed {
            Some(sealed) => sealer
                .open(account_id.0, ORIGIN, &sealed)
                .await?
                .map(|bytes| serde_json::from_slice(&bytes))
                .transpose()
                .map_err(|e| ProjectionError::Decode(e.to_string()))?
                .unwrap_or_default(),
            None => SessionOrigin::default(),
        };
        sessions.push(SessionRow {
            session: decode(row)?,
            origin,
        });
    }
    Ok(Paged::cut(sessions, page, |s| After {
        at: s.session.created_at.unix_micros(),
        key: s.session.session_id.to_string(),
    }))
}
