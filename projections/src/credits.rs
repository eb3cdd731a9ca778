//! Credit read models: `credit_lots`, `credit_holds`, `credit_balances` (the balance card),
//! `credit_transactions` (the history) and `offer_claims` (redemptions per offer).

use crate::Follower;
use crate::runner::Projector;
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::credits::{Allocation, CreditsEvent};
use domain::offer::OfferEvent;
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent, GlobalPosition};
use uuid::Uuid;

/// Folds ledger and offer events into the credit tables.
#[derive(Debug, Clone, Copy)]
pub struct CreditsProjector;

const TABLES: &[Table] = &[
    Table {
        name: "credit_lots",
        ddl: &[
            "CREATE TABLE {t} (
                lot_id     TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                grant_key  TEXT NOT NULL,
                source     TEXT NOT NULL,
                priority   BIGINT NOT NULL,
                amount     BIGINT NOT NULL,
                remaining  BIGINT NOT NULL,
                expires_at BIGINT,
                granted_at BIGINT NOT NULL,
                expired    BIGINT NOT NULL
            )",
            "CREATE INDEX {t}_by_account ON {t} (account_id)",
            "CREATE INDEX {t}_by_expiry ON {t} (expires_at)",
        ],
    },
    Table {
        name: "credit_holds",
        ddl: &[
            "CREATE TABLE {t} (
                account_id    TEXT NOT NULL,
                generation_id TEXT NOT NULL,
                feature       TEXT NOT NULL,
                amount        BIGINT NOT NULL,
                held_at       BIGINT NOT NULL,
                expires_at    BIGINT NOT NULL,
                PRIMARY KEY (account_id, generation_id)
            )",
            "CREATE INDEX {t}_by_expiry ON {t} (expires_at)",
        ],
    },
    Table {
        name: "credit_balances",
        ddl: &["CREATE TABLE {t} (
            account_id TEXT PRIMARY KEY,
            balance    BIGINT NOT NULL,
            held       BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )"],
    },
    Table {
        name: "credit_transactions",
        ddl: &["CREATE TABLE {t} (
            account_id    TEXT NOT NULL,
            position      BIGINT NOT NULL,
            idx           BIGINT NOT NULL,
            kind          TEXT NOT NULL,
            amount        BIGINT NOT NULL,
            feature       TEXT,
            generation_id TEXT,
            source        TEXT,
            lot_id        TEXT,
            api_token_id  TEXT,
            occurred_at   BIGINT NOT NULL,
            PRIMARY KEY (account_id, position, idx)
        )"],
    },
    Table {
        name: "offer_claims",
        ddl: &["CREATE TABLE {t} (
            claim_id        TEXT PRIMARY KEY,
            redeemed        BIGINT NOT NULL,
            credits_granted BIGINT NOT NULL
        )"],
    },
];

/// One line of the transaction history.
#[derive(Clone, Copy)]
struct Entry<'a> {
    kind: &'static str,
    amount: u64,
    feature: Option<&'static str>,
    generation_id: Option<&'a str>,
    source: Option<&'static str>,
    lot_id: Option<Uuid>,
    api_token_id: Option<Uuid>,
    at: Timestamp,
}

fn total(allocations: &[Allocation]) -> u64 {
    allocations.iter().map(|a| a.amount).sum()
}

async fn adjust_lots(
    conn: &mut AnyConnection,
    lots: &str,
    allocations: &[Allocation],
    sign: i64,
) -> Result<(), sqlx::Error> {
    for a in allocations {
        sqlx::query(&format!(
            "UPDATE {lots} SET remaining = remaining + $2 WHERE lot_id = $1"
        ))
        .bind(a.lot_id.to_string())
        .bind(sign * a.amount as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Projector for CreditsProjector {
    fn name(&self) -> Follower {
        Follower::Credits
    }

    fn version(&self) -> i32 {
        // 2: `claim_campaigns` renamed `offer_claims`.
        2
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), sqlx::Error> {
        let stream = &decoded.envelope.stream;
        match decoded.event() {
            Some(DomainEvent::Credits(event)) => {
                let Some(account) = StreamCategory::Credits.id_in(stream) else {
                    return Ok(());
                };
                apply_credits(conn, tables, account, decoded.envelope.position, event).await
            }
            Some(DomainEvent::Offer(OfferEvent::ClaimRedeemed { credits, .. })) => {
                let Some(claim_id) = StreamCategory::Offer.id_in(stream) else {
                    return Ok(());
                };
                let t = tables.get("offer_claims");
                sqlx::query(&format!(
                    "INSERT INTO {t} (claim_id, redeemed, credits_granted) VALUES ($1, 1, $2) \
                     ON CONFLICT (claim_id) DO UPDATE SET redeemed = {t}.redeemed + 1, \
                     credits_granted = {t}.credits_granted + excluded.credits_granted"
                ))
                .bind(claim_id)
                .bind(*credits as i64)
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

async fn apply_credits(
    conn: &mut AnyConnection,
    tables: &Tables,
    account: &str,
    position: GlobalPosition,
    event: &CreditsEvent,
) -> Result<(), sqlx::Error> {
    let (lots, holds) = (tables.get("credit_lots"), tables.get("credit_holds"));
    let mut entries = Vec::new();
    match event {
        CreditsEvent::CreditsGranted {
            lot_id,
            grant_key,
            amount,
            source,
            priority,
            expires_at,
            granted_at,
        } => {
            sqlx::query(&format!(
                "INSERT INTO {lots} (lot_id, account_id, grant_key, source, priority, amount, remaining, \
                 expires_at, granted_at, expired) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, 0) \
                 ON CONFLICT (lot_id) DO NOTHING"
            ))
            .bind(lot_id.to_string())
            .bind(account)
            .bind(grant_key.as_str())
            .bind(source.as_str())
            .bind(i64::from(*priority))
            .bind(*amount as i64)
            .bind(expires_at.map(Timestamp::unix_micros))
            .bind(granted_at.unix_micros())
            .execute(&mut *conn)
            .await?;
            entries.push(Entry {
                kind: "grant",
                amount: *amount,
                feature: None,
                generation_id: None,
                source: Some(source.as_str()),
                lot_id: Some(*lot_id),
                api_token_id: None,
                at: *granted_at,
            });
        }
        CreditsEvent::CreditsHeld {
            generation_id,
            feature,
            amount,
            allocations,
            held_at,
            hold_expires_at,
            api_token_id,
        } => {
            adjust_lots(conn, lots, allocations, -1).await?;
            sqlx::query(&format!(
                "INSERT INTO {holds} (account_id, generation_id, feature, amount, held_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, generation_id) DO NOTHING"
            ))
            .bind(account)
            .bind(generation_id.as_str())
            .bind(feature.as_str())
            .bind(*amount as i64)
            .bind(held_at.unix_micros())
            .bind(hold_expires_at.unix_micros())
            .execute(&mut *conn)
            .await?;
            entries.push(Entry {
                kind: "hold",
                amount: *amount,
                feature: Some(feature.as_str()),
                generation_id: Some(generation_id),
                source: None,
                lot_id: None,
                api_token_id: *api_token_id,
                at: *held_at,
            });
        }
        CreditsEvent::CreditsSpent {
            generation_id,
            feature,
            amount,
            released,
            at,
            api_token_id,
            ..
        } => {
            adjust_lots(conn, lots, released, 1).await?;
            delete_hold(conn, holds, account, generation_id).await?;
            let spend = Entry {
                kind: "spend",
                amount: *amount,
                feature: Some(feature.as_str()),
                generation_id: Some(generation_id),
                source: None,
                lot_id: None,
                api_token_id: *api_token_id,
                at: *at,
            };
            entries.push(spend);
            let returned = total(released);
            if returned > 0 {
                entries.push(Entry {
                    kind: "release",
                    amount: returned,
                    ..spend
                });
            }
        }
        CreditsEvent::HoldReleased {
            generation_id,
            feature,
            released,
            at,
            api_token_id,
            ..
        } => {
            adjust_lots(conn, lots, released, 1).await?;
            delete_hold(conn, holds, account, generation_id).await?;
            entries.push(Entry {
                kind: "release",
                amount: total(released),
                feature: Some(feature.as_str()),
                generation_id: Some(generation_id),
                source: None,
                lot_id: None,
                api_token_id: *api_token_id,
                at: *at,
            });
        }
        CreditsEvent::CreditsExpired { lot_id, amount, at } => {
            sqlx::query(&format!(
                "UPDATE {lots} SET remaining = remaining - $2, expired = 1 WHERE lot_id = $1"
            ))
            .bind(lot_id.to_string())
            .bind(*amount as i64)
            .execute(&mut *conn)
            .await?;
            entries.push(Entry {
                kind: "expiry",
                amount: *amount,
                feature: None,
                generation_id: None,
                source: None,
                lot_id: Some(*lot_id),
                api_token_id: None,
                at: *at,
            });
        }
    }
    let transactions = tables.get("credit_transactions");
    for (idx, entry) in entries.iter().enumerate() {
        sqlx::query(&format!(
            "INSERT INTO {transactions} (account_id, position, idx, kind, amount, feature, generation_id, \
             source, lot_id, api_token_id, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (account_id, position, idx) DO NOTHING"
        ))
        .bind(account)
        .bind(position.0 as i64)
        .bind(idx as i64)
        .bind(entry.kind)
        .bind(entry.amount as i64)
        .bind(entry.feature)
        .bind(entry.generation_id)
        .bind(entry.source)
        .bind(entry.lot_id.map(|id| id.to_string()))
        .bind(entry.api_token_id.map(|id| id.to_string()))
        .bind(entry.at.unix_micros())
        .execute(&mut *conn)
        .await?;
    }
    // The card's figures, from the lots and holds just updated.
    let balances = tables.get("credit_balances");
    let updated_at = entries.first().map_or(0, |e| e.at.unix_micros());
    sqlx::query(&format!(
        "INSERT INTO {balances} (account_id, balance, held, updated_at) VALUES ($1, \
           (SELECT coalesce(sum(remaining), 0) FROM {lots} WHERE account_id = $1 AND expired = 0), \
           (SELECT coalesce(sum(amount), 0) FROM {holds} WHERE account_id = $1), $2) \
         ON CONFLICT (account_id) DO UPDATE SET balance = excluded.balance, held = excluded.held, \
           updated_at = excluded.updated_at"
    ))
    .bind(account)
    .bind(updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn delete_hold(
    conn: &mut AnyConnection,
    holds: &str,
    account: &str,
    generation_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "DELETE FROM {holds} WHERE account_id = $1 AND generation_id = $2"
    ))
    .bind(account)
    .bind(generation_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The balance card: what the ledger recorded (time-based expiry not applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalanceRow {
    /// Credits in lots without an expiry event, not held.
    pub balance: u64,
    /// Credits held by open generations.
    pub held: u64,
}

/// The balance row of an account (zeros if it never had credits).
pub async fn balance(db: &Database, account_id: AccountId) -> Result<BalanceRow, sqlx::Error> {
    let row = sqlx::query("SELECT balance, held FROM credit_balances WHERE account_id = $1")
        .bind(account_id.to_string())
        .fetch_optional(db.pool())
        .await?;
    row.map_or(Ok(BalanceRow::default()), |row| {
        Ok(BalanceRow {
            balance: row.try_get::<i64, _>("balance")? as u64,
            held: row.try_get::<i64, _>("held")? as u64,
        })
    })
}

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

fn uuid_of(text: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn lot(row: &AnyRow) -> Result<LotRow, sqlx::Error> {
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
    let (position, idx) = cursor.map_or((i64::MAX, i64::MAX), |(p, i)| (p as i64, i as i64));
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
