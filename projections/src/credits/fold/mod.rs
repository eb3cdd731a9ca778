//! Applying a batch of ledger and offer events in a few set-based statements: the lots,
//! holds and balances the batch touches are read with one statement each ([`load`]), the
//! events are folded over them in memory in log order ([`evolve`]), and what changed is
//! written back with one multi-row statement per table ([`write`]). A batch costs the same whatever the accounts' history,
//! where one round trip per event (and a balance summed over every lot of the account)
//! made rebuilds slow down as histories grew.
//!
//! The rows are exactly those the event-at-a-time folding wrote: a balance is the sum of
//! the account's unexpired lots' remaining credits and `held` the sum of its open holds;
//! here both are kept up to date by the change each event makes to those sums.

use crate::batch::{Value, insert_rows};
use crate::schema::Tables;
use domain::credits::{Allocation, CreditsEvent};
use domain::offer::OfferEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::AnyConnection;
use std::collections::HashMap;
use store::DecodedEvent;
use uuid::Uuid;

mod evolve;
mod load;
mod write;

struct Lot {
    account: String,
    grant_key: String,
    source: String,
    priority: i64,
    amount: i64,
    remaining: i64,
    expires_at: Option<i64>,
    granted_at: i64,
    expired: bool,
    dirty: bool,
}

struct Hold {
    feature: String,
    amount: i64,
    held_at: i64,
    expires_at: i64,
}

/// A hold's key as the batch sees it: the row it has now, and what the table must be told.
#[derive(Default)]
struct HoldSlot {
    row: Option<Hold>,
    /// The row now present was added by this batch (to insert).
    inserted: bool,
    /// The row the table holds was removed by this batch (to delete).
    deleted_stored: bool,
}

#[derive(Default)]
struct Balance {
    balance: i64,
    held: i64,
    updated_at: i64,
    changed: bool,
}

#[derive(Default)]
struct Fold {
    lots: HashMap<Uuid, Lot>,
    holds: HashMap<(String, String), HoldSlot>,
    balances: HashMap<String, Balance>,
    transactions: Vec<Vec<Value>>,
}

fn lot_ids(event: &CreditsEvent) -> Vec<Uuid> {
    let ids = |allocations: &[Allocation]| -> Vec<Uuid> {
        allocations.iter().map(|a| a.lot_id).collect()
    };
    match event {
        CreditsEvent::CreditsGranted { lot_id, .. }
        | CreditsEvent::CreditsExpired { lot_id, .. } => {
            vec![*lot_id]
        }
        CreditsEvent::CreditsHeld { allocations, .. } => ids(allocations),
        CreditsEvent::CreditsSpent { released, .. }
        | CreditsEvent::HoldReleased { released, .. } => ids(released),
    }
}

fn generation(event: &CreditsEvent) -> Option<&str> {
    match event {
        CreditsEvent::CreditsHeld { generation_id, .. }
        | CreditsEvent::CreditsSpent { generation_id, .. }
        | CreditsEvent::HoldReleased { generation_id, .. } => Some(generation_id),
        CreditsEvent::CreditsGranted { .. } | CreditsEvent::CreditsExpired { .. } => None,
    }
}

/// Applies `events` (in log order) to the credit tables inside `conn`'s transaction.
pub(super) async fn apply_batch(
    conn: &mut AnyConnection,
    tables: &Tables,
    events: &[DecodedEvent],
) -> Result<(), sqlx::Error> {
    let mut ledger = Vec::new();
    let mut claims: HashMap<&str, (i64, i64)> = HashMap::new();
    for decoded in events {
        let stream = decoded.envelope.stream.as_str();
        match decoded.event() {
            Some(DomainEvent::Credits(event)) => {
                if let Some(account) = StreamCategory::Credits.id_in(stream) {
                    ledger.push((account, decoded.envelope.position.0 as i64, event));
                }
            }
            Some(DomainEvent::Offer(OfferEvent::ClaimRedeemed { credits, .. })) => {
                if let Some(claim) = StreamCategory::Offer.id_in(stream) {
                    let counts = claims.entry(claim).or_default();
                    counts.0 += 1;
                    counts.1 += *credits as i64;
                }
            }
            _ => {}
        }
    }
    if !ledger.is_empty() {
        let mut fold = Fold::load(conn, tables, &ledger).await?;
        for (account, position, event) in &ledger {
            fold.apply(account, *position, event);
        }
        fold.write(conn, tables).await?;
    }
    if !claims.is_empty() {
        let t = tables.get("offer_claims");
        let rows: Vec<Vec<Value>> = claims
            .into_iter()
            .map(|(claim, (redeemed, credits))| {
                vec![
                    Value::Text(claim.to_owned()),
                    Value::Int(redeemed),
                    Value::Int(credits),
                ]
            })
            .collect();
        insert_rows(
            conn,
            &format!("INSERT INTO {t} (claim_id, redeemed, credits_granted)"),
            &format!(
                "ON CONFLICT (claim_id) DO UPDATE SET redeemed = {t}.redeemed + excluded.redeemed, \
                 credits_granted = {t}.credits_granted + excluded.credits_granted"
            ),
            3,
            &rows,
        )
        .await?;
    }
    Ok(())
}
