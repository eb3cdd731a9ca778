//! Read models of API and CLI tokens: `access_tokens` (what the owner sees) with
//! `access_token_hashes` (what a request is checked against), and the usage logs:
//! `token_usage_daily` (requests per day by status class) and `token_last_use`.

use crate::Follower;
use crate::runner::Projector;
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::access_token::{AccessTokenEvent, Scope, TokenKind, UsageEvent};
use domain::account::AccountEvent;
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;

/// Folds access-token events. Revoked tokens and those of deleted accounts are removed.
#[derive(Debug, Clone, Copy)]
pub struct AccessTokensProjector;

const TOKEN_TABLES: &[Table] = &[
    Table {
        name: "access_tokens",
        ddl: &[
            "CREATE TABLE {t} (
                token_id   TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                kind       TEXT NOT NULL,
                label      TEXT NOT NULL,
                scopes     TEXT NOT NULL,
                hint       TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                expires_at BIGINT
            )",
            "CREATE INDEX {t}_account ON {t} (account_id)",
        ],
    },
    Table {
        name: "access_token_hashes",
        ddl: &[
            "CREATE TABLE {t} (
                token_hash  TEXT PRIMARY KEY,
                token_id    TEXT NOT NULL,
                account_id  TEXT NOT NULL,
                valid_until BIGINT
            )",
            "CREATE INDEX {t}_token ON {t} (token_id)",
        ],
    },
];

async fn forget_account(
    conn: &mut AnyConnection,
    tables: &Tables,
    names: &[&str],
    account_id: &str,
) -> Result<(), sqlx::Error> {
    for name in names {
        sqlx::query(&format!(
            "DELETE FROM {} WHERE account_id = $1",
            tables.get(name)
        ))
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Projector for AccessTokensProjector {
    fn name(&self) -> Follower {
        Follower::AccessTokens
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TOKEN_TABLES
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), sqlx::Error> {
        let stream = decoded.envelope.stream.as_str();
        let (t, h) = (
            tables.get("access_tokens"),
            tables.get("access_token_hashes"),
        );
        match decoded.event() {
            Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) => {
                if let Some(account_id) = StreamCategory::Account.id_in(stream) {
                    // Refused at once; the rows go when the erasure revokes each token.
                    forget_account(conn, tables, &["access_token_hashes"], account_id).await?;
                }
            }
            Some(DomainEvent::AccessToken(event)) => {
                let Some(token_id) = StreamCategory::AccessToken.id_in(stream) else {
                    return Ok(());
                };
                match event {
                    AccessTokenEvent::AccessTokenCreated {
                        account_id,
                        kind,
                        label,
                        scopes,
                        token_hash,
                        hint,
                        expires_at,
                        at,
                    } => {
                        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
                        sqlx::query(&format!(
                            "INSERT INTO {t} (token_id, account_id, kind, label, scopes, hint, created_at, expires_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (token_id) DO NOTHING"
                        ))
                        .bind(token_id)
                        .bind(account_id.to_string())
                        .bind(kind.as_str())
                        .bind(label.as_str())
                        .bind(scopes.join(" "))
                        .bind(hint.as_str())
                        .bind(at.unix_micros())
                        .bind(expires_at.map(Timestamp::unix_micros))
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query(&format!(
                            "INSERT INTO {h} (token_hash, token_id, account_id, valid_until) VALUES ($1, $2, $3, NULL) \
                             ON CONFLICT (token_hash) DO NOTHING"
                        ))
                        .bind(token_hash.as_str())
                        .bind(token_id)
                        .bind(account_id.to_string())
                        .execute(&mut *conn)
                        .await?;
                    }
                    AccessTokenEvent::AccessTokenRotated {
                        token_hash,
                        hint,
                        previous_hash,
                        previous_valid_until,
                        ..
                    } => {
                        let account: Option<String> = sqlx::query_scalar(&format!(
                            "SELECT account_id FROM {t} WHERE token_id = $1"
                        ))
                        .bind(token_id)
                        .fetch_optional(&mut *conn)
                        .await?;
                        let Some(account) = account else {
                            return Ok(());
                        };
                        sqlx::query(&format!("UPDATE {t} SET hint = $2 WHERE token_id = $1"))
                            .bind(token_id)
                            .bind(hint.as_str())
                            .execute(&mut *conn)
                            .await?;
                        // Earlier secrets die now; the one just replaced lives out its grace.
                        sqlx::query(&format!(
                            "DELETE FROM {h} WHERE token_id = $1 AND token_hash <> $2"
                        ))
                        .bind(token_id)
                        .bind(previous_hash.as_str())
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query(&format!(
                            "UPDATE {h} SET valid_until = $2 WHERE token_hash = $1"
                        ))
                        .bind(previous_hash.as_str())
                        .bind(previous_valid_until.unix_micros())
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query(&format!(
                            "INSERT INTO {h} (token_hash, token_id, account_id, valid_until) VALUES ($1, $2, $3, NULL) \
                             ON CONFLICT (token_hash) DO NOTHING"
                        ))
                        .bind(token_hash.as_str())
                        .bind(token_id)
                        .bind(account)
                        .execute(&mut *conn)
                        .await?;
                    }
                    AccessTokenEvent::AccessTokenRevoked { .. } => {
                        for table in [&h, &t] {
                            sqlx::query(&format!("DELETE FROM {table} WHERE token_id = $1"))
                                .bind(token_id)
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Folds usage events into per-day counts and the last use of each token.
#[derive(Debug, Clone, Copy)]
pub struct TokenUsageProjector;

const USAGE_TABLES: &[Table] = &[
    Table {
        name: "token_usage_daily",
        ddl: &["CREATE TABLE {t} (
            token_id      TEXT NOT NULL,
            account_id    TEXT NOT NULL,
            day           TEXT NOT NULL,
            ok            BIGINT NOT NULL,
            client_errors BIGINT NOT NULL,
            server_errors BIGINT NOT NULL,
            PRIMARY KEY (token_id, day)
        )"],
    },
    Table {
        name: "token_last_use",
        ddl: &["CREATE TABLE {t} (
            token_id        TEXT PRIMARY KEY,
            account_id      TEXT NOT NULL,
            last_used_at    BIGINT NOT NULL,
            last_ip         TEXT,
            last_user_agent TEXT
        )"],
    },
];

#[async_trait]
impl Projector for TokenUsageProjector {
    fn name(&self) -> Follower {
        Follower::TokenUsage
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        USAGE_TABLES
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), sqlx::Error> {
        let stream = decoded.envelope.stream.as_str();
        match decoded.event() {
            Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) => {
                if let Some(account_id) = StreamCategory::Account.id_in(stream) {
                    forget_account(
                        conn,
                        tables,
                        &["token_usage_daily", "token_last_use"],
                        account_id,
                    )
                    .await?;
                }
            }
            Some(DomainEvent::Usage(UsageEvent::TokenUsed {
                token_id,
                days,
                last_used_at,
                last_ip,
                last_user_agent,
            })) => {
                let Some(account_id) = StreamCategory::Usage.id_in(stream) else {
                    return Ok(());
                };
                let daily = tables.get("token_usage_daily");
                for day in days {
                    sqlx::query(&format!(
                        "INSERT INTO {daily} (token_id, account_id, day, ok, client_errors, server_errors) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (token_id, day) DO UPDATE SET \
                         ok = {daily}.ok + excluded.ok, \
                         client_errors = {daily}.client_errors + excluded.client_errors, \
                         server_errors = {daily}.server_errors + excluded.server_errors"
                    ))
                    .bind(token_id.to_string())
                    .bind(account_id)
                    .bind(day.day.as_str())
                    .bind(day.ok as i64)
                    .bind(day.client_errors as i64)
                    .bind(day.server_errors as i64)
                    .execute(&mut *conn)
                    .await?;
                }
                let last = tables.get("token_last_use");
                sqlx::query(&format!(
                    "INSERT INTO {last} (token_id, account_id, last_used_at, last_ip, last_user_agent) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token_id) DO UPDATE SET \
                     last_used_at = excluded.last_used_at, last_ip = excluded.last_ip, \
                     last_user_agent = excluded.last_user_agent \
                     WHERE excluded.last_used_at >= {last}.last_used_at"
                ))
                .bind(token_id.to_string())
                .bind(account_id)
                .bind(last_used_at.unix_micros())
                .bind(last_ip.clone())
                .bind(last_user_agent.clone())
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// A token a request presented, as the read model knows it.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    /// The token.
    pub token_id: Uuid,
    /// Its owner.
    pub account_id: AccountId,
    /// API or CLI.
    pub kind: TokenKind,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
    /// For a secret replaced by a rotation: when it dies.
    pub hash_valid_until: Option<Timestamp>,
}

fn uuid_of(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn kind_of(text: &str) -> TokenKind {
    match text {
        "cli_device" => TokenKind::CliDevice,
        "cli_recorder" => TokenKind::CliRecorder,
        _ => TokenKind::Api,
    }
}

/// The token whose secret hashes to `token_hash`, if any (expiry is the caller's to check).
pub async fn find_by_hash(
    db: &Database,
    token_hash: &str,
) -> Result<Option<PresentedToken>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.token_id, t.account_id, t.kind, t.scopes, t.expires_at, h.valid_until \
         FROM access_token_hashes h JOIN access_tokens t ON t.token_id = h.token_id \
         WHERE h.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        let scopes: String = row.try_get("scopes")?;
        Ok(PresentedToken {
            token_id: uuid_of(&row.try_get::<String, _>("token_id")?)?,
            account_id: AccountId(uuid_of(&row.try_get::<String, _>("account_id")?)?),
            kind: kind_of(&row.try_get::<String, _>("kind")?),
            scopes: scopes.split_whitespace().filter_map(Scope::parse).collect(),
            expires_at: row
                .try_get::<Option<i64>, _>("expires_at")?
                .map(Timestamp::from_unix_micros),
            hash_valid_until: row
                .try_get::<Option<i64>, _>("valid_until")?
                .map(Timestamp::from_unix_micros),
        })
    })
    .transpose()
}

/// A token as its owner sees it in a list.
#[derive(Debug, Clone)]
pub struct TokenSummary {
    /// Its id.
    pub token_id: Uuid,
    /// API or CLI.
    pub kind: TokenKind,
    /// The owner's name for it.
    pub label: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Prefix and last four characters.
    pub hint: String,
    /// Created.
    pub created_at: Timestamp,
    /// Expires.
    pub expires_at: Option<Timestamp>,
    /// Last request, as of the last usage flush.
    pub last_used_at: Option<Timestamp>,
    /// Its client IP.
    pub last_ip: Option<String>,
    /// Its user agent.
    pub last_user_agent: Option<String>,
}

/// The live tokens of `account`, newest first: API tokens, or CLI tokens.
pub async fn list(
    db: &Database,
    account: AccountId,
    cli: bool,
) -> Result<Vec<TokenSummary>, sqlx::Error> {
    let kinds = if cli {
        "('cli_device', 'cli_recorder')"
    } else {
        "('api')"
    };
    let rows = sqlx::query(&format!(
        "SELECT t.token_id, t.kind, t.label, t.scopes, t.hint, t.created_at, t.expires_at, \
         u.last_used_at, u.last_ip, u.last_user_agent \
         FROM access_tokens t LEFT JOIN token_last_use u ON u.token_id = t.token_id \
         WHERE t.account_id = $1 AND t.kind IN {kinds} ORDER BY t.created_at DESC, t.token_id"
    ))
    .bind(account.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let scopes: String = row.try_get("scopes")?;
            Ok(TokenSummary {
                token_id: uuid_of(&row.try_get::<String, _>("token_id")?)?,
                kind: kind_of(&row.try_get::<String, _>("kind")?),
                label: row.try_get("label")?,
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                hint: row.try_get("hint")?,
                created_at: Timestamp::from_unix_micros(row.try_get("created_at")?),
                expires_at: row
                    .try_get::<Option<i64>, _>("expires_at")?
                    .map(Timestamp::from_unix_micros),
                last_used_at: row
                    .try_get::<Option<i64>, _>("last_used_at")?
                    .map(Timestamp::from_unix_micros),
                last_ip: row.try_get("last_ip")?,
                last_user_agent: row.try_get("last_user_agent")?,
            })
        })
        .collect()
}

/// The ids of `account`'s live tokens (for revoking them all).
pub async fn ids_of_account(db: &Database, account: AccountId) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT token_id FROM access_tokens WHERE account_id = $1")
            .bind(account.to_string())
            .fetch_all(db.pool())
            .await?;
    ids.iter().map(|id| uuid_of(id)).collect()
}

/// Requests of one day by status class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// 2xx.
    pub ok: i64,
    /// 4xx.
    pub client_errors: i64,
    /// 5xx.
    pub server_errors: i64,
}

/// Per-day counts of `token_id` (of `account`), oldest first.
pub async fn daily_usage(
    db: &Database,
    account: AccountId,
    token_id: Uuid,
) -> Result<Vec<DailyUsage>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT day, ok, client_errors, server_errors FROM token_usage_daily \
         WHERE account_id = $1 AND token_id = $2 ORDER BY day",
    )
    .bind(account.to_string())
    .bind(token_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(DailyUsage {
                day: row.try_get("day")?,
                ok: row.try_get("ok")?,
                client_errors: row.try_get("client_errors")?,
                server_errors: row.try_get("server_errors")?,
            })
        })
        .collect()
}
