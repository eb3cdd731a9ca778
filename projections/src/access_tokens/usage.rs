//! The usage logs of API and CLI tokens: `token_usage_daily` (requests per day by status
//! class) and `token_last_use` (the last use, its client sealed with the account's data
//! key), folded from the usage events the API flushes.

use crate::Follower;
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::access_token::UsageEvent;
use domain::account::AccountEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::AnyConnection;
use store::DecodedEvent;
use uuid::Uuid;
use vault::FieldSealer;

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

    fn concerns(&self, event: &DecodedEvent) -> bool {
        account_events_only(event, |e| matches!(e, AccountEvent::AccountDeleted { .. }))
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
