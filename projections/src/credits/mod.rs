//! Credit read models: `credit_lots`, `credit_holds`, `credit_balances` (the balance card),
//! `credit_transactions` (the history) and `offer_claims` (redemptions per offer).

mod cards;
mod fold;
mod queries;

pub use cards::*;
pub use queries::*;

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::credits::Allocation;
use domain::{StreamCategory, Timestamp};
use sqlx::AnyConnection;
use store::DecodedEvent;
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

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Credits, StreamCategory::Offer]
    }

    /// Every row belongs to one ledger (lots, holds, balances and history by account) or
    /// to one offer (its claim counts).
    fn streams_independent(&self) -> bool {
        true
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        Ok(fold::apply_batch(conn, tables, std::slice::from_ref(event)).await?)
    }

    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        Ok(fold::apply_batch(conn, tables, events).await?)
    }
}
