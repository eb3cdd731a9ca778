//! Read models of API and CLI tokens: `access_tokens` (what the owner sees) with
//! `access_token_hashes` (what a request is checked against) and `access_token_plans`
//! (each subscriber's plan in force, read in the same look-up so that `/api/v1` knows the
//! account's API access without another round trip), and the usage logs:
//! `token_usage_daily` (requests per day by status class) and `token_last_use`.

mod queries;
mod rotations;

pub use queries::*;

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::access_token::{AccessTokenEvent, UsageEvent};
use domain::account::AccountEvent;
use domain::subscription::PlanInForce;
use domain::{DomainEvent, StreamCategory, Timestamp};
use rotations::Rotation;
use sqlx::AnyConnection;
use store::DecodedEvent;
use uuid::Uuid;
use vault::FieldSealer;

/// Folds access-token events. Revoked tokens are removed; the secrets of every token of an
/// account are dropped when it is deleted or changes its password revoking its tokens.
/// Subscription events keep each account's plan in force (no row: no plan), by the rule
/// of [`domain::subscription::SubscriptionEvent::plan_in_force`], the one the billing
/// read model follows.
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
    Table {
        name: "access_token_plans",
        ddl: &["CREATE TABLE {t} (
            account_id TEXT PRIMARY KEY,
            plan_id    TEXT NOT NULL
        )"],
    },
];

#[async_trait]
impl Projector for AccessTokensProjector {
    fn name(&self) -> Follower {
        Follower::AccessTokens
    }

    fn version(&self) -> i32 {
        // 2: each account's plan in force.
        2
    }

    fn tables(&self) -> &'static [Table] {
        TOKEN_TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[
            StreamCategory::AccessToken,
            StreamCategory::Account,
            StreamCategory::Subscription,
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let stream = decoded.envelope.stream.as_str();
        let (t, h) = (
            tables.get("access_tokens"),
            tables.get("access_token_hashes"),
        );
        match decoded.event() {
            Some(DomainEvent::Account(
                event @ (AccountEvent::AccountDeleted { .. }
                | AccountEvent::PasswordChanged {
                    tokens_revoked: true,
                    ..
                }),
            )) => {
                if let Some(account_id) = StreamCategory::Account.id_in(stream) {
                    // Refused at once; the rows go when each token's stream records its
                    // revocation (the erasure, or the password change's own request).
                    tables
                        .forget_account(conn, &["access_token_hashes"], account_id)
                        .await?;
                    if matches!(event, AccountEvent::AccountDeleted { .. }) {
                        tables
                            .forget_account(conn, &["access_token_plans"], account_id)
                            .await?;
                    }
                }
            }
            Some(DomainEvent::Subscription(event)) => {
                let Some(account_id) = StreamCategory::Subscription.id_in(stream) else {
                    return Ok(());
                };
                let p = tables.get("access_token_plans");
                match event.plan_in_force() {
                    PlanInForce::Now(plan_id) => {
                        sqlx::query(&format!(
                            "INSERT INTO {p} (account_id, plan_id) VALUES ($1, $2) \
                             ON CONFLICT (account_id) DO UPDATE SET plan_id = excluded.plan_id"
                        ))
                        .bind(account_id)
                        .bind(plan_id)
                        .execute(&mut *conn)
                        .await?;
                    }
                    PlanInForce::Ended => {
                        tables
                            .forget_account(conn, &["access_token_plans"], account_id)
                            .await?;
                    }
                    PlanInForce::Unchanged => {}
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

    /// One event at a time, but for runs of rotations, written together
    /// ([`rotations`]): a run ends before an event that touches the token tables otherwise,
    /// or before a second rotation of a token it holds.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        let mut run: Vec<Rotation<'_>> = Vec::new();
        for decoded in events {
            if let Some(rotation) = Rotation::of(decoded) {
                if run.iter().any(|r| r.token_id() == rotation.token_id()) {
                    rotations::apply_run(conn, tables, &run).await?;
                    run.clear();
                }
                run.push(rotation);
                continue;
            }
            if !run.is_empty() && rotations::touches_tokens(decoded) {
                rotations::apply_run(conn, tables, &run).await?;
                run.clear();
            }
            self.apply(conn, tables, decoded).await?;
        }
        rotations::apply_run(conn, tables, &run).await?;
        Ok(())
    }
}

/// Folds usage events into per-day counts and the last use of each token; the last IP
/// and user agent are sealed with the account's data key.
#[derive(Debug, Clone)]
pub struct TokenUsageProjector {
    sealer: FieldSealer,
}

impl TokenUsageProjector {
    /// Seals the last client of each token with `sealer`.
    pub fn new(sealer: FieldSealer) -> Self {
        Self { sealer }
    }
}

/// Where the sealed last IP lives, bound into its seal.
pub(crate) const LAST_IP: &str = "token_last_use.last_ip";
/// Where the sealed last user agent lives, bound into its seal.
pub(crate) const LAST_USER_AGENT: &str = "token_last_use.last_user_agent";

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
        // 2: the last IP and user agent sealed.
        2
    }

    fn tables(&self) -> &'static [Table] {
        USAGE_TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Account, StreamCategory::Usage]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let stream = decoded.envelope.stream.as_str();
        match decoded.event() {
            Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) => {
                if let Some(account_id) = StreamCategory::Account.id_in(stream) {
                    tables
                        .forget_account(conn, &["token_usage_daily", "token_last_use"], account_id)
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
                let subject = Uuid::parse_str(account_id)
                    .map_err(|e| ProjectionError::Decode(e.to_string()))?;
                let last_ip = self
                    .sealer
                    .seal_optional(subject, LAST_IP, last_ip.as_deref())
                    .await?;
                let last_user_agent = self
                    .sealer
                    .seal_optional(subject, LAST_USER_AGENT, last_user_agent.as_deref())
                    .await?;
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
                .bind(last_ip)
                .bind(last_user_agent)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
