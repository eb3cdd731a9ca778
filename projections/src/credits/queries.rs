//! What the API and the workers read of the credit read models.

use domain::{AccountId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;
use store::{Database, GlobalPosition};
use uuid::Uuid;

/// A lot on the balance card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotRow {
    /// Its id.
    pub lot_id: Uuid,
    /// Its account.
    pub account_id: AccountId,
    /// Where from.
    pub source: String,
    /// Why it was granted (`purchase:<id>`, `claim:<id>`…).
    pub grant_key: String,
    /// Lower is spent first.
    pub priority: i64,
    /// Credits granted.
    pub amount: u64,
    /// Credits left.
    pub remaining: u64,
    /// When it stops counting.
    pub expires_at: Option<Timestamp>,
    /// When it arrived.
    pub granted_at: Timestamp,
    /// An expiry was recorded.
    pub expired: bool,
}

pub(super) fn uuid_of(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

pub(super) fn lot(row: &AnyRow) -> Result<LotRow, sqlx::Error> {
    Ok(LotRow {
        lot_id: uuid_of(&row.try_get::<String, _>("lot_id")?)?,
        account_id: AccountId(uuid_of(&row.try_get::<String, _>("account_id")?)?),
        source: row.try_get("source")?,
        grant_key: row.try_get("grant_key")?,
        priority: row.try_get("priority")?,
        amount: row.try_get::<i64, _>("amount")? as u64,
        remaining: row.try_get::<i64, _>("remaining")? as u64,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(Timestamp::from_unix_micros),
        granted_at: Timestamp::from_unix_micros(row.try_get("granted_at")?),
        expired: row.try_get::<i64, _>("expired")? != 0,
    })
}

const LOT_COLUMNS: &str = "lot_id, account_id, grant_key, source, priority, amount, remaining, expires_at, granted_at, expired";

/// Every lot of an account, in spending order.
pub async fn lots(db: &Database, account_id: AccountId) -> Result<Vec<LotRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {LOT_COLUMNS} FROM credit_lots WHERE account_id = $1 \
         ORDER BY priority, CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END, expires_at, granted_at"
    ))
    .bind(account_id.to_string())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(lot)
    .collect()
}

/// What the balance card of `/me/credits` and `/api/v1/credits` shows: credits held by
/// open generations, and the lots with credits left at an instant, in spending order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BalanceCard {
    /// Credits held by open generations.
    pub held: u64,
    /// Unexpired lots with credits left, in spending order.
    pub lots: Vec<LotRow>,
    /// Where the account's credits stream ended when the card was read, when asked for
    /// (and the stream has events).
    pub ledger_end: Option<GlobalPosition>,
}

/// Lots past their expiry with credits left: the scheduler expires them.
pub async fn lots_due(
    db: &Database,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<LotRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {LOT_COLUMNS} FROM credit_lots WHERE expires_at <= $1 AND remaining > 0 ORDER BY expires_at LIMIT $2"
    ))
    .bind(now.unix_micros())
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(lot)
    .collect()
}

/// Open holds past their deadline: (account, generation id). The scheduler releases them.
pub async fn holds_due(
    db: &Database,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<(AccountId, String)>, sqlx::Error> {
    sqlx::query("SELECT account_id, generation_id FROM credit_holds WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2")
        .bind(now.unix_micros())
        .bind(limit)
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| {
            Ok((
                AccountId(uuid_of(&row.try_get::<String, _>("account_id")?)?),
                row.try_get("generation_id")?,
            ))
        })
        .collect()
}

/// An open hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    /// The generation.
    pub generation_id: String,
    /// What for.
    pub feature: String,
    /// Credits held.
    pub amount: u64,
    /// Deadline.
    pub expires_at: Timestamp,
}

/// The open holds of an account.
pub async fn holds(db: &Database, account_id: AccountId) -> Result<Vec<HoldRow>, sqlx::Error> {
    sqlx::query("SELECT generation_id, feature, amount, expires_at FROM credit_holds WHERE account_id = $1 ORDER BY held_at")
        .bind(account_id.to_string())
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(HoldRow {
                generation_id: row.try_get("generation_id")?,
                feature: row.try_get("feature")?,
                amount: row.try_get::<i64, _>("amount")? as u64,
                expires_at: Timestamp::from_unix_micros(row.try_get("expires_at")?),
            })
        })
        .collect()
}

/// One entry of the transaction history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRow {
    /// Where it sits: the cursor of the next page starts after it.
    pub cursor: (u64, u64),
    /// grant, hold, spend, release or expiry.
    pub kind: String,
    /// Credits.
    pub amount: u64,
    /// The feature, for holds, spends and releases.
    pub feature: Option<String>,
    /// The generation, for holds, spends and releases.
    pub generation_id: Option<String>,
    /// The source, for grants.
    pub source: Option<String>,
    /// The lot, for grants and expiries.
    pub lot_id: Option<String>,
    /// The API token that caused it, if any.
    pub api_token_id: Option<String>,
    /// When.
    pub occurred_at: Timestamp,
}

/// A page of the history, newest first, after `cursor` (a previous page's last entry).
pub async fn transactions(
    db: &Database,
    account_id: AccountId,
    cursor: Option<(u64, u64)>,
    limit: i64,
) -> Result<Vec<TransactionRow>, sqlx::Error> {
    // A cursor past SQL's integers (a client's, not one this gave) is the end of them.
    let (position, idx) = cursor.map_or((i64::MAX, i64::MAX), |(p, i)| {
        (store::sql_int(p), store::sql_int(i))
    });
    sqlx::query(
        "SELECT position, idx, kind, amount, feature, generation_id, source, lot_id, api_token_id, occurred_at \
         FROM credit_transactions WHERE account_id = $1 AND (position < $2 OR (position = $2 AND idx < $3)) \
         ORDER BY position DESC, idx DESC LIMIT $4",
    )
    .bind(account_id.to_string())
    .bind(position)
    .bind(idx)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|row| {
        Ok(TransactionRow {
            cursor: (row.try_get::<i64, _>("position")? as u64, row.try_get::<i64, _>("idx")? as u64),
            kind: row.try_get("kind")?,
            amount: row.try_get::<i64, _>("amount")? as u64,
            feature: row.try_get("feature")?,
            generation_id: row.try_get("generation_id")?,
            source: row.try_get("source")?,
            lot_id: row.try_get("lot_id")?,
            api_token_id: row.try_get("api_token_id")?,
            occurred_at: Timestamp::from_unix_micros(row.try_get("occurred_at")?),
        })
    })
    .collect()
}

/// Redemptions of an offer: (accounts, credits granted).
pub async fn offer_redemptions(db: &Database, claim_id: &str) -> Result<(u64, u64), sqlx::Error> {
    let row = sqlx::query("SELECT redeemed, credits_granted FROM offer_claims WHERE claim_id = $1")
        .bind(claim_id)
        .fetch_optional(db.pool())
        .await?;
    row.map_or(Ok((0, 0)), |row| {
        Ok((
            row.try_get::<i64, _>("redeemed")? as u64,
            row.try_get::<i64, _>("credits_granted")? as u64,
        ))
    })
}
