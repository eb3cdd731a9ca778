//! What reconciliation reads: the credit and billing read models and their checkpoints in
//! one consistent snapshot, so the log can be folded exactly up to those checkpoints.

use crate::Follower;
use crate::checkpoints::all_checkpoints;
use sqlx::Row;
use std::collections::HashMap;
use store::{Backend, Database, GlobalPosition};

/// A balance row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// Available credits.
    pub balance: i64,
    /// Credits on hold.
    pub held: i64,
}

/// A lot row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LotRow {
    /// The owning account.
    pub account_id: String,
    /// Credits left.
    pub remaining: i64,
    /// Whether it expired.
    pub expired: bool,
}

/// An invoice row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    /// Its number.
    pub number: String,
    /// The billed account.
    pub account_id: String,
    /// The stored total.
    pub total: i64,
    /// The sum of its stored lines (`i64::MIN` if they do not parse).
    pub lines_total: i64,
    /// `open` or `paid`.
    pub status: String,
}

/// The credit and billing read models at one instant.
#[derive(Debug, Clone, Default)]
pub struct LedgerSnapshot {
    /// The credits read model's checkpoint.
    pub credits_checkpoint: GlobalPosition,
    /// The billing read model's checkpoint.
    pub billing_checkpoint: GlobalPosition,
    /// Balances by account id.
    pub balances: HashMap<String, BalanceRow>,
    /// Lots by lot id.
    pub lots: HashMap<String, LotRow>,
    /// Invoices by invoice id.
    pub invoices: HashMap<String, InvoiceRow>,
}

/// Reads the snapshot (a repeatable-read transaction on PostgreSQL; SQLite readers see one
/// snapshot per transaction anyway).
#[tracing::instrument(skip_all)]
pub async fn ledger_snapshot(db: &Database) -> Result<LedgerSnapshot, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let mut snapshot = LedgerSnapshot::default();
    for (follower, position) in all_checkpoints(&mut tx).await? {
        match follower {
            Follower::Credits => snapshot.credits_checkpoint = position,
            Follower::Billing => snapshot.billing_checkpoint = position,
            _ => {}
        }
    }
    for row in sqlx::query("SELECT account_id, balance, held FROM credit_balances")
        .fetch_all(&mut *tx)
        .await?
    {
        snapshot.balances.insert(
            row.try_get("account_id")?,
            BalanceRow {
                balance: row.try_get("balance")?,
                held: row.try_get("held")?,
            },
        );
    }
    for row in sqlx::query("SELECT lot_id, account_id, remaining, expired FROM credit_lots")
        .fetch_all(&mut *tx)
        .await?
    {
        snapshot.lots.insert(
            row.try_get("lot_id")?,
            LotRow {
                account_id: row.try_get("account_id")?,
                remaining: row.try_get("remaining")?,
                expired: row.try_get::<i64, _>("expired")? != 0,
            },
        );
    }
    for row in
        sqlx::query("SELECT invoice_id, number, account_id, total, lines, status FROM invoices")
            .fetch_all(&mut *tx)
            .await?
    {
        let lines: String = row.try_get("lines")?;
        let lines_total = serde_json::from_str::<Vec<domain::invoice::InvoiceLine>>(&lines)
            .map_or(i64::MIN, |lines| lines.iter().map(|l| l.amount).sum());
        snapshot.invoices.insert(
            row.try_get("invoice_id")?,
            InvoiceRow {
                number: row.try_get("number")?,
                account_id: row.try_get("account_id")?,
                total: row.try_get("total")?,
                lines_total,
                status: row.try_get("status")?,
            },
        );
    }
    tx.commit().await?;
    Ok(snapshot)
}
