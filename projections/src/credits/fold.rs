//! Applying a batch of ledger and offer events in a few set-based statements: the lots,
//! holds and balances the batch touches are read with one statement each, the events are
//! folded over them in memory in log order, and what changed is written back with one
//! multi-row statement per table. A batch costs the same whatever the accounts' history,
//! where one round trip per event (and a balance summed over every lot of the account)
//! made rebuilds slow down as histories grew.
//!
//! The rows are exactly those the event-at-a-time folding wrote: a balance is the sum of
//! the account's unexpired lots' remaining credits and `held` the sum of its open holds;
//! here both are kept up to date by the change each event makes to those sums.

use super::Entry;
use crate::batch::{Value, delete_keys, insert_rows, select_keys};
use crate::schema::Tables;
use domain::credits::{Allocation, CreditsEvent};
use domain::offer::OfferEvent;
use domain::{DomainEvent, StreamCategory, Timestamp};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;
use store::DecodedEvent;
use uuid::Uuid;

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

impl Fold {
    /// Reads the rows the batch's events refer to.
    async fn load(
        conn: &mut AnyConnection,
        tables: &Tables,
        ledger: &[(&str, i64, &CreditsEvent)],
    ) -> Result<Self, sqlx::Error> {
        let mut fold = Self::default();
        let mut lot_keys: Vec<Uuid> = ledger.iter().flat_map(|(_, _, e)| lot_ids(e)).collect();
        lot_keys.sort_unstable();
        lot_keys.dedup();
        let keys: Vec<Vec<Value>> = lot_keys
            .iter()
            .map(|id| vec![Value::Text(id.to_string())])
            .collect();
        let lots = tables.get("credit_lots");
        let select = format!(
            "SELECT lot_id, account_id, grant_key, source, priority, amount, remaining, \
             expires_at, granted_at, expired FROM {lots} WHERE"
        );
        for row in select_keys(conn, &select, &["lot_id"], &keys).await? {
            let id: String = row.try_get("lot_id")?;
            let id = Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(e.into()))?;
            fold.lots.insert(
                id,
                Lot {
                    account: row.try_get("account_id")?,
                    grant_key: row.try_get("grant_key")?,
                    source: row.try_get("source")?,
                    priority: row.try_get("priority")?,
                    amount: row.try_get("amount")?,
                    remaining: row.try_get("remaining")?,
                    expires_at: row.try_get("expires_at")?,
                    granted_at: row.try_get("granted_at")?,
                    expired: row.try_get::<i64, _>("expired")? != 0,
                    dirty: false,
                },
            );
        }

        // Holds: two `IN` lists (accounts, generations) answered from the primary key; the
        // few pairs they match that the batch did not ask for are left out here.
        let mut hold_keys: Vec<(&str, &str)> = ledger
            .iter()
            .filter_map(|(account, _, e)| Some((*account, generation(e)?)))
            .collect();
        hold_keys.sort_unstable();
        hold_keys.dedup();
        let wanted: std::collections::HashSet<(&str, &str)> = hold_keys.iter().copied().collect();
        let mut hold_accounts: Vec<&str> = hold_keys.iter().map(|(a, _)| *a).collect();
        hold_accounts.dedup();
        let mut generations: Vec<&str> = hold_keys.iter().map(|(_, g)| *g).collect();
        generations.sort_unstable();
        generations.dedup();
        if !hold_keys.is_empty() {
            let holds = tables.get("credit_holds");
            let list = |from: usize, n: usize| {
                (from..from + n)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let sql = format!(
                "SELECT account_id, generation_id, feature, amount, held_at, expires_at \
                 FROM {holds} WHERE account_id IN ({}) AND generation_id IN ({})",
                list(1, hold_accounts.len()),
                list(hold_accounts.len() + 1, generations.len())
            );
            // Not kept prepared: its shape changes with the batch (see `batch`).
            let mut query = sqlx::query(&sql).persistent(false);
            for value in hold_accounts.iter().chain(&generations) {
                query = query.bind(*value);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let key: (String, String) =
                    (row.try_get("account_id")?, row.try_get("generation_id")?);
                if !wanted.contains(&(key.0.as_str(), key.1.as_str())) {
                    continue;
                }
                let hold = Hold {
                    feature: row.try_get("feature")?,
                    amount: row.try_get("amount")?,
                    held_at: row.try_get("held_at")?,
                    expires_at: row.try_get("expires_at")?,
                };
                fold.holds.entry(key).or_default().row = Some(hold);
            }
        }

        // The accounts of the events, and those owning the lots they touch.
        let mut accounts: Vec<String> = ledger.iter().map(|(a, _, _)| (*a).to_owned()).collect();
        accounts.extend(fold.lots.values().map(|lot| lot.account.clone()));
        accounts.sort_unstable();
        accounts.dedup();
        let keys: Vec<Vec<Value>> = accounts
            .iter()
            .map(|a| vec![Value::Text(a.clone())])
            .collect();
        let select = format!(
            "SELECT account_id, balance, held, updated_at FROM {} WHERE",
            tables.get("credit_balances")
        );
        for row in select_keys(conn, &select, &["account_id"], &keys).await? {
            fold.balances.insert(
                row.try_get("account_id")?,
                Balance {
                    balance: row.try_get("balance")?,
                    held: row.try_get("held")?,
                    updated_at: row.try_get("updated_at")?,
                    changed: false,
                },
            );
        }
        Ok(fold)
    }

    fn balance(&mut self, account: &str) -> &mut Balance {
        self.balances.entry(account.to_owned()).or_default()
    }

    /// Moves `delta` credits into (or out of) each allocation's lot; the balance of the
    /// lot's account follows unless the lot expired.
    fn adjust_lots(&mut self, allocations: &[Allocation], sign: i64) {
        for a in allocations {
            let Some(lot) = self.lots.get_mut(&a.lot_id) else {
                continue;
            };
            let delta = sign * a.amount as i64;
            lot.remaining += delta;
            lot.dirty = true;
            if !lot.expired {
                let account = lot.account.clone();
                self.balance(&account).balance += delta;
            }
        }
    }

    fn add_hold(&mut self, account: &str, generation: &str, hold: Hold) {
        let slot = self
            .holds
            .entry((account.to_owned(), generation.to_owned()))
            .or_default();
        // An existing hold is kept as it is (`ON CONFLICT DO NOTHING` in the table).
        if slot.row.is_none() {
            let amount = hold.amount;
            slot.row = Some(hold);
            slot.inserted = true;
            self.balance(account).held += amount;
        }
    }

    fn remove_hold(&mut self, account: &str, generation: &str) {
        let key = (account.to_owned(), generation.to_owned());
        let Some(slot) = self.holds.get_mut(&key) else {
            return;
        };
        if let Some(hold) = slot.row.take() {
            if !slot.inserted {
                slot.deleted_stored = true;
            }
            slot.inserted = false;
            self.balance(account).held -= hold.amount;
        }
    }

    fn apply(&mut self, account: &str, position: i64, event: &CreditsEvent) {
        let entries = self.fold_event(account, event);
        let balance = self.balance(account);
        balance.updated_at = entries.first().map_or(0, |e| e.at.unix_micros());
        balance.changed = true;
        for (idx, e) in entries.iter().enumerate() {
            self.transactions.push(vec![
                Value::Text(account.to_owned()),
                Value::Int(position),
                Value::Int(idx as i64),
                Value::Text(e.kind.into()),
                Value::Int(e.amount as i64),
                Value::OptText(e.feature.map(str::to_owned)),
                Value::OptText(e.generation_id.map(str::to_owned)),
                Value::OptText(e.source.map(str::to_owned)),
                Value::OptText(e.lot_id.map(|id| id.to_string())),
                Value::OptText(e.api_token_id.map(|id| id.to_string())),
                Value::Int(e.at.unix_micros()),
            ]);
        }
    }

    /// Changes the lots, holds and balances as `event` does; returns its history lines.
    fn fold_event<'e>(&mut self, account: &str, event: &'e CreditsEvent) -> Vec<Entry<'e>> {
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
                // A lot id already present is kept as it is (`ON CONFLICT DO NOTHING`).
                if !self.lots.contains_key(lot_id) {
                    self.lots.insert(
                        *lot_id,
                        Lot {
                            account: account.to_owned(),
                            grant_key: grant_key.clone(),
                            source: source.as_str().to_owned(),
                            priority: i64::from(*priority),
                            amount: *amount as i64,
                            remaining: *amount as i64,
                            expires_at: expires_at.map(Timestamp::unix_micros),
                            granted_at: granted_at.unix_micros(),
                            expired: false,
                            dirty: true,
                        },
                    );
                    self.balance(account).balance += *amount as i64;
                }
                vec![Entry {
                    kind: "grant",
                    amount: *amount,
                    feature: None,
                    generation_id: None,
                    source: Some(source.as_str()),
                    lot_id: Some(*lot_id),
                    api_token_id: None,
                    at: *granted_at,
                }]
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
                self.adjust_lots(allocations, -1);
                let hold = Hold {
                    feature: feature.as_str().to_owned(),
                    amount: *amount as i64,
                    held_at: held_at.unix_micros(),
                    expires_at: hold_expires_at.unix_micros(),
                };
                self.add_hold(account, generation_id, hold);
                vec![Entry {
                    kind: "hold",
                    amount: *amount,
                    feature: Some(feature.as_str()),
                    generation_id: Some(generation_id),
                    source: None,
                    lot_id: None,
                    api_token_id: *api_token_id,
                    at: *held_at,
                }]
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
                self.adjust_lots(released, 1);
                self.remove_hold(account, generation_id);
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
                let returned = super::total(released);
                let mut entries = vec![spend];
                if returned > 0 {
                    entries.push(Entry {
                        kind: "release",
                        amount: returned,
                        ..spend
                    });
                }
                entries
            }
            CreditsEvent::HoldReleased {
                generation_id,
                feature,
                released,
                at,
                api_token_id,
                ..
            } => {
                self.adjust_lots(released, 1);
                self.remove_hold(account, generation_id);
                vec![Entry {
                    kind: "release",
                    amount: super::total(released),
                    feature: Some(feature.as_str()),
                    generation_id: Some(generation_id),
                    source: None,
                    lot_id: None,
                    api_token_id: *api_token_id,
                    at: *at,
                }]
            }
            CreditsEvent::CreditsExpired { lot_id, amount, at } => {
                if let Some(lot) = self.lots.get_mut(lot_id) {
                    // The lot stops counting: the balance loses all it had left.
                    let (was_live, left) = (!lot.expired, lot.remaining);
                    lot.remaining -= *amount as i64;
                    lot.expired = true;
                    lot.dirty = true;
                    if was_live {
                        let account = lot.account.clone();
                        self.balance(&account).balance -= left;
                    }
                }
                vec![Entry {
                    kind: "expiry",
                    amount: *amount,
                    feature: None,
                    generation_id: None,
                    source: None,
                    lot_id: Some(*lot_id),
                    api_token_id: None,
                    at: *at,
                }]
            }
        }
    }

    /// Writes what changed: one statement per table (per chunk of rows).
    async fn write(self, conn: &mut AnyConnection, tables: &Tables) -> Result<(), sqlx::Error> {
        let lots: Vec<Vec<Value>> = self
            .lots
            .iter()
            .filter(|(_, lot)| lot.dirty)
            .map(|(id, lot)| {
                vec![
                    Value::Text(id.to_string()),
                    Value::Text(lot.account.clone()),
                    Value::Text(lot.grant_key.clone()),
                    Value::Text(lot.source.clone()),
                    Value::Int(lot.priority),
                    Value::Int(lot.amount),
                    Value::Int(lot.remaining),
                    Value::OptInt(lot.expires_at),
                    Value::Int(lot.granted_at),
                    Value::Int(i64::from(lot.expired)),
                ]
            })
            .collect();
        let t = tables.get("credit_lots");
        insert_rows(
            conn,
            &format!(
                "INSERT INTO {t} (lot_id, account_id, grant_key, source, priority, amount, \
                 remaining, expires_at, granted_at, expired)"
            ),
            "ON CONFLICT (lot_id) DO UPDATE SET remaining = excluded.remaining, \
             expired = excluded.expired",
            10,
            &lots,
        )
        .await?;

        let holds = tables.get("credit_holds");
        let (mut deleted, mut inserted) = (Vec::new(), Vec::new());
        for ((account, generation), slot) in self.holds {
            if slot.deleted_stored {
                deleted.push(vec![
                    Value::Text(account.clone()),
                    Value::Text(generation.clone()),
                ]);
            }
            if let (true, Some(hold)) = (slot.inserted, slot.row) {
                inserted.push(vec![
                    Value::Text(account),
                    Value::Text(generation),
                    Value::Text(hold.feature),
                    Value::Int(hold.amount),
                    Value::Int(hold.held_at),
                    Value::Int(hold.expires_at),
                ]);
            }
        }
        delete_keys(conn, holds, &["account_id", "generation_id"], &deleted).await?;
        insert_rows(
            conn,
            &format!(
                "INSERT INTO {holds} (account_id, generation_id, feature, amount, held_at, expires_at)"
            ),
            "ON CONFLICT (account_id, generation_id) DO NOTHING",
            6,
            &inserted,
        )
        .await?;

        insert_rows(
            conn,
            &format!(
                "INSERT INTO {} (account_id, position, idx, kind, amount, feature, generation_id, \
                 source, lot_id, api_token_id, occurred_at)",
                tables.get("credit_transactions")
            ),
            "ON CONFLICT (account_id, position, idx) DO NOTHING",
            11,
            &self.transactions,
        )
        .await?;

        let balances: Vec<Vec<Value>> = self
            .balances
            .into_iter()
            .filter(|(_, b)| b.changed)
            .map(|(account, b)| {
                vec![
                    Value::Text(account),
                    Value::Int(b.balance),
                    Value::Int(b.held),
                    Value::Int(b.updated_at),
                ]
            })
            .collect();
        insert_rows(
            conn,
            &format!(
                "INSERT INTO {} (account_id, balance, held, updated_at)",
                tables.get("credit_balances")
            ),
            "ON CONFLICT (account_id) DO UPDATE SET balance = excluded.balance, \
             held = excluded.held, updated_at = excluded.updated_at",
            4,
            &balances,
        )
        .await?;
        Ok(())
    }
}
