//! The balance card of `/me/credits` and `/api/v1/credits` in one indexed query.
//!
//! It read the balance row and then every lot of the account: two round trips per
//! request, and lots that no longer count (spent, expired) carried to the process only to
//! be filtered out. This reads the held credits and the lots that still count together
//! (the balance row by its key, the lots by their account index). It belongs with the
//! credit read model's queries (`projections::credits`) and reads the same tables; it is
//! here while that crate is being reworked for set-based projection.

use domain::{AccountId, Timestamp};
use projections::credits::LotRow;
use sqlx::Row;
use store::Database;
use uuid::Uuid;

/// What the card shows: credits held by open generations, and the lots with credits
/// left at `now`, in spending order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BalanceCard {
    /// Credits held by open generations.
    pub held: u64,
    /// Unexpired lots with credits left, in spending order.
    pub lots: Vec<LotRow>,
}

// One row per counting lot, or one row of NULL lot columns when none counts; the balance
// row joined to each (absent for an account that never had credits).
const CARD: &str = "SELECT b.held, l.lot_id, l.grant_key, l.source, l.priority, l.amount, \
     l.remaining, l.expires_at, l.granted_at \
     FROM (SELECT $1 AS account_id) a \
     LEFT JOIN credit_balances b ON b.account_id = a.account_id \
     LEFT JOIN credit_lots l ON l.account_id = a.account_id AND l.expired = 0 \
       AND l.remaining > 0 AND (l.expires_at IS NULL OR l.expires_at > $2) \
     ORDER BY l.priority, CASE WHEN l.expires_at IS NULL THEN 1 ELSE 0 END, l.expires_at, \
       l.granted_at";

/// The card of `account` at `now`.
pub async fn balance_card(
    db: &Database,
    account: AccountId,
    now: Timestamp,
) -> Result<BalanceCard, sqlx::Error> {
    let rows = sqlx::query(CARD)
        .bind(account.to_string())
        .bind(now.unix_micros())
        .fetch_all(db.pool())
        .await?;
    let mut card = BalanceCard::default();
    for row in &rows {
        card.held = row.try_get::<Option<i64>, _>("held")?.unwrap_or(0) as u64;
        let Some(lot_id) = row.try_get::<Option<String>, _>("lot_id")? else {
            continue;
        };
        card.lots.push(LotRow {
            lot_id: Uuid::parse_str(&lot_id).map_err(|e| sqlx::Error::Decode(e.into()))?,
            account_id: account,
            source: row.try_get("source")?,
            grant_key: row.try_get("grant_key")?,
            priority: row.try_get("priority")?,
            amount: row.try_get::<i64, _>("amount")? as u64,
            remaining: row.try_get::<i64, _>("remaining")? as u64,
            expires_at: row
                .try_get::<Option<i64>, _>("expires_at")?
                .map(Timestamp::from_unix_micros),
            granted_at: Timestamp::from_unix_micros(row.try_get("granted_at")?),
            expired: false,
        });
    }
    Ok(card)
}
