//! Read models of API and CLI tokens: `access_tokens` (what the owner sees) with
//! `access_token_hashes` (what a request is checked against) and `access_token_plans`
//! (each subscriber's plan in force, read in the same look-up so that `/api/v1` knows the
//! account's API access without another round trip), and the usage logs (`usage.rs`):
//! `token_usage_daily` (requests per day by status class) and `token_last_use`.

mod queries;
mod rotations;
mod usage;

pub use queries::*;
pub use usage::TokenUsageProjector;
pub(crate) use usage::{LAST_IP, LAST_USER_AGENT};

use crate::Follower;
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::access_token::AccessTokenEvent;
use domain::account::AccountEvent;
use domain::subscription::PlanInForce;
use domain::{DomainEvent, StreamCategory, Timestamp};
use rotations::Rotation;
use sqlx::AnyConnection;
use store::DecodedEvent;
use vault::FieldSealer;

/// Folds access-token events. Revoked tokens are removed; the secrets of every token of an
/// account are dropped when it is deleted or changes its password revoking its tokens.
/// Subscription events keep each account's plan in force (no row: no plan), by the rule
/// of [`domain::subscription::SubscriptionEvent::plan_in_force`], the one the billing
/// read model follows.
/// The label, the owner's own words, is sealed with the account's data key.
#[derive(Debug, Clone)]
pub struct AccessTokensProjector {
    sealer: FieldSealer,
}

impl AccessTokensProjector {
    /// Seals each token's label with `sealer`.
    pub fn new(sealer: FieldSealer) -> Self {
        Self { sealer }
    }
}

/// Where the sealed label lives, bound into its seal.
pub(crate) const LABEL: &str = "access_tokens.label";

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
        // 2: each account's plan in force; 3: the label sealed.
        3
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

    fn concerns(&self, event: &DecodedEvent) -> bool {
        account_events_only(event, |e| {
            matches!(
                e,
                AccountEvent::AccountDeleted { .. }
                    | AccountEvent::PasswordChanged {
                        tokens_revoked: true,
                        ..
                    }
            )
        })
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
                        // Empty once the key is gone (a rebuild after the account's
                        // erasure, of a token created before labels were sealed).
                        let label = self
                            .sealer
                            .seal_text(account_id.0, LABEL, label)
                            .await?
                            .unwrap_or_default();
                        sqlx::query(&format!(
                            "INSERT INTO {t} (token_id, account_id, kind, label, scopes, hint, created_at, expires_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (token_id) DO NOTHING"
                        ))
                        .bind(token_id)
                        .bind(account_id.to_string())
                        .bind(kind.as_str())
                        .bind(label)
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
                        let replaced: Option<String> = sqlx::query_scalar(&format!(
                            "UPDATE {h} SET valid_until = $2 WHERE token_hash = $1 \
                             RETURNING token_hash"
                        ))
                        .bind(previous_hash.as_str())
                        .bind(previous_valid_until.unix_micros())
                        .fetch_optional(&mut *conn)
                        .await?;
                        // The secret it replaced was dropped meanwhile (a password change
                        // revoking every token, committed between the rotation's checks
                        // and its append): the token is dead, and so is its new secret.
                        if replaced.is_none() {
                            return Ok(());
                        }
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
    /// (`rotations`): a run ends before an event that touches the token tables otherwise.
    /// A second rotation of a token the run holds is taken into the first
    /// (`rotations::Rotation::absorb`).
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        if events.iter().any(rotations::touches_tokens) {
            rotations::index_scans_only(conn).await?;
        }
        let mut run: Vec<Rotation<'_>> = Vec::new();
        for decoded in events {
            if let Some(rotation) = Rotation::of(decoded) {
                let rotation = match run.iter_mut().find(|r| r.token_id() == rotation.token_id()) {
                    Some(earlier) => match earlier.absorb(rotation) {
                        Ok(()) => continue,
                        Err(apart) => {
                            rotations::apply_run(conn, tables, &run).await?;
                            run.clear();
                            apart
                        }
                    },
                    None => rotation,
                };
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
