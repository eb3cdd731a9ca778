//! What `GET /me`, the mailer and invitations read from the `accounts` read model: an
//! account's row with its sealed columns opened.

use super::{BIO, DISPLAY_NAME, EMAIL, PENDING_EMAIL};
use crate::batch::{select_keys, text_keys};
use crate::runner::ProjectionError;
use domain::{AccountId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use store::Database;
use uuid::Uuid;
use vault::FieldSealer;

/// An account as `GET /me` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// The id.
    pub account_id: AccountId,
    /// As registered.
    pub email: String,
    /// Shown in the studio.
    pub display_name: String,
    /// The bio.
    pub bio: Option<String>,
    /// Whether the creator profile is public.
    pub public_profile: bool,
    /// Whether the account has an avatar.
    pub has_avatar: bool,
    /// Whether 2FA is on.
    pub totp_enabled: bool,
    /// Whether the account proved it holds its address.
    pub email_verified: bool,
    /// When it registered.
    pub created_at: Timestamp,
    /// When the password last changed.
    pub password_changed_at: Option<Timestamp>,
    /// The address a change waits to move to, and when its link stops working.
    pub pending_email: Option<(String, Timestamp)>,
}

/// The columns [`open_row`] reads.
const COLUMNS: &str = "account_id, email, display_name, bio, public_profile, avatar_key, \
     totp_enabled, email_verified, created_at, password_changed_at, pending_email, \
     pending_email_expires_at";

/// One account, its personal fields opened (`None` once its key is destroyed: erased).
pub async fn find(
    db: &Database,
    sealer: &FieldSealer,
    account_id: AccountId,
) -> Result<Option<AccountRow>, ProjectionError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM accounts WHERE account_id = $1"
    ))
    .bind(account_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(row) => open_row(sealer, account_id, &row).await,
        None => Ok(None),
    }
}

/// The accounts of `ids` that [`find`] would find, by id, read with one statement per 512
/// (a mailer's batch needs every recipient at once).
pub async fn find_many(
    db: &Database,
    sealer: &FieldSealer,
    ids: &[AccountId],
) -> Result<HashMap<AccountId, AccountRow>, ProjectionError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys = text_keys(ids);
    let mut conn = db.pool().acquire().await?;
    let rows = select_keys(
        &mut conn,
        &format!("SELECT {COLUMNS} FROM accounts WHERE"),
        &["account_id"],
        &keys,
    )
    .await?;
    drop(conn);
    let mut found = HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("account_id")?;
        let Ok(id) = Uuid::parse_str(&id) else {
            continue;
        };
        if let Some(account) = open_row(sealer, AccountId(id), row).await? {
            found.insert(account.account_id, account);
        }
    }
    Ok(found)
}

/// An account's row with its personal fields opened; `None` once its key is destroyed.
async fn open_row(
    sealer: &FieldSealer,
    account_id: AccountId,
    row: &AnyRow,
) -> Result<Option<AccountRow>, ProjectionError> {
    let subject = account_id.0;
    let sealed = |column: &str| row.try_get::<Option<String>, _>(column);
    let (Some(email), Some(display_name)) = (
        sealer
            .open_optional(subject, EMAIL, sealed("email")?.as_deref())
            .await?,
        sealer
            .open_optional(subject, DISPLAY_NAME, sealed("display_name")?.as_deref())
            .await?,
    ) else {
        return Ok(None);
    };
    Ok(Some(AccountRow {
        account_id,
        email,
        display_name,
        bio: sealer
            .open_optional(subject, BIO, sealed("bio")?.as_deref())
            .await?,
        public_profile: row.try_get::<i64, _>("public_profile")? != 0,
        has_avatar: row.try_get::<Option<String>, _>("avatar_key")?.is_some(),
        totp_enabled: row.try_get::<i64, _>("totp_enabled")? != 0,
        email_verified: row.try_get::<i64, _>("email_verified")? != 0,
        created_at: Timestamp::from_unix_micros(row.try_get("created_at")?),
        password_changed_at: row
            .try_get::<Option<i64>, _>("password_changed_at")?
            .map(Timestamp::from_unix_micros),
        pending_email: match (
            sealer
                .open_optional(subject, PENDING_EMAIL, sealed("pending_email")?.as_deref())
                .await?,
            row.try_get::<Option<i64>, _>("pending_email_expires_at")?,
        ) {
            (Some(email), Some(expires_at)) => {
                Some((email, Timestamp::from_unix_micros(expires_at)))
            }
            _ => None,
        },
    }))
}
