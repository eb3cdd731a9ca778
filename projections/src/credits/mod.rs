//! Credit read models: `credit_lots`, `credit_holds`, `credit_balances` (the balance card),
//! `credit_transactions` (the history) and `offer_claims` (redemptions per offer).

mod queries;

pub use queries::*;

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::credits::{Allocation, CreditsEvent};
use domain::offer::OfferEvent;
use domain::{DomainEvent, StreamCategory, Timestamp};
use sqlx::AnyConnection;
use store::{DecodedEvent, GlobalPosition};
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
    ) -> Result<(), ProjectionError> {
        let stream = &decoded.envelope.stream;
        match decoded.event() {
            Some(DomainEvent::Credits(event)) => {
                let Some(account) = StreamCategory::Credits.id_in(stream) else {
                    return Ok(());
                };
                Ok(apply_credits(conn, tables, account, decoded.envelope.position, event).await?)
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
