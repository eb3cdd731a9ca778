//! What the API and the workers read of the token read models.

use super::{LAST_IP, LAST_USER_AGENT};
use crate::ProjectionError;
use crate::page::{After, Page, Paged};
use domain::access_token::{Scope, TokenKind};
use domain::{AccountId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;
use store::Database;
use uuid::Uuid;
use vault::FieldSealer;

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
    /// The owner's plan in force (`None`: no plan), whose entitlements say whether the
    /// token may be used on `/api/v1` and with which of its scopes.
    pub plan: Option<String>,
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

/// The token whose secret hashes to `token_hash`, if any (expiry is the caller's to
/// check), with its owner's plan in force: one look-up.
pub async fn find_by_hash(
    db: &Database,
    token_hash: &str,
) -> Result<Option<PresentedToken>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT t.token_id, t.account_id, t.kind, t.scopes, t.expires_at, h.valid_until, p.plan_id \
         FROM access_token_hashes h JOIN access_tokens t ON t.token_id = h.token_id \
         LEFT JOIN access_token_plans p ON p.account_id = t.account_id \
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
            plan: row.try_get("plan_id")?,
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

const SUMMARY: &str = "SELECT t.token_id, t.kind, t.label, t.scopes, t.hint, t.created_at, t.expires_at, \
     u.last_used_at, u.last_ip, u.last_user_agent \
     FROM access_tokens t LEFT JOIN token_last_use u ON u.token_id = t.token_id";

/// A row of [`SUMMARY`], its label and last client opened with `sealer`.
async fn summary(
    sealer: &FieldSealer,
    account: AccountId,
    row: &AnyRow,
) -> Result<TokenSummary, ProjectionError> {
    let scopes: String = row.try_get("scopes")?;
    let label: String = row.try_get("label")?;
    let last_ip: Option<String> = row.try_get("last_ip")?;
    let last_user_agent: Option<String> = row.try_get("last_user_agent")?;
    Ok(TokenSummary {
        token_id: uuid_of(&row.try_get::<String, _>("token_id")?)?,
        kind: kind_of(&row.try_get::<String, _>("kind")?),
        label: sealer
            .open_text(account.0, super::LABEL, &label)
            .await?
            .unwrap_or_default(),
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        hint: row.try_get("hint")?,
        created_at: Timestamp::from_unix_micros(row.try_get("created_at")?),
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(Timestamp::from_unix_micros),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(Timestamp::from_unix_micros),
        last_ip: sealer
            .open_optional(account.0, LAST_IP, last_ip.as_deref())
            .await?,
        last_user_agent: sealer
            .open_optional(account.0, LAST_USER_AGENT, last_user_agent.as_deref())
            .await?,
    })
}

/// A page of the live tokens of `account`, newest first (ties by id): API tokens, or CLI
/// tokens; the last client of each opened with `sealer`.
pub async fn list(
    db: &Database,
    sealer: &FieldSealer,
    account: AccountId,
    cli: bool,
    page: &Page,
) -> Result<Paged<TokenSummary>, ProjectionError> {
    let kinds = if cli {
        "('cli_device', 'cli_recorder')"
    } else {
        "('api')"
    };
    let (at, key, limit) = page.bounds();
    let rows = sqlx::query(&format!(
        "{SUMMARY} WHERE t.account_id = $1 AND t.kind IN {kinds} \
         AND (t.created_at < $2 OR (t.created_at = $2 AND t.token_id > $3)) \
         ORDER BY t.created_at DESC, t.token_id LIMIT $4"
    ))
    .bind(account.to_string())
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let mut tokens = Vec::with_capacity(rows.len());
    for row in &rows {
        tokens.push(summary(sealer, account, row).await?);
    }
    Ok(Paged::cut(tokens, page, |t| After {
        at: t.created_at.unix_micros(),
        key: t.token_id.to_string(),
    }))
}

/// The live API token `token_id` of `account`, if it is one.
pub async fn find_api_token(
    db: &Database,
    sealer: &FieldSealer,
    account: AccountId,
    token_id: Uuid,
) -> Result<Option<TokenSummary>, ProjectionError> {
    let row = sqlx::query(&format!(
        "{SUMMARY} WHERE t.account_id = $1 AND t.kind = 'api' AND t.token_id = $2"
    ))
    .bind(account.to_string())
    .bind(token_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(row) => Ok(Some(summary(sealer, account, &row).await?)),
        None => Ok(None),
    }
}

/// The ids of `account`'s tokens whose secrets were dropped (a password change revoked
/// them) but whose streams have not recorded the revocation yet.
pub async fn ids_without_secrets(
    db: &Database,
    account: AccountId,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT t.token_id FROM access_tokens t WHERE t.account_id = $1 \
         AND NOT EXISTS (SELECT 1 FROM access_token_hashes h WHERE h.token_id = t.token_id)",
    )
    .bind(account.to_string())
    .fetch_all(db.pool())
    .await?;
    ids.iter().map(|id| uuid_of(id)).collect()
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
