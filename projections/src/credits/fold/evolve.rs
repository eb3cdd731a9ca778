//! Folding one ledger event over the rows in memory: the lots, holds and balances it
//! changes, and the transaction entries it adds.

use super::{Balance, Fold, Hold, Lot};
use crate::batch::Value;
use crate::credits::Entry;
use domain::Timestamp;
use domain::credits::{Allocation, CreditsEvent};

impl Fold {
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

    pub(super) fn apply(&mut self, account: &str, position: i64, event: &CreditsEvent) {
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
                let returned = crate::credits::total(released);
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
                    amount: crate::credits::total(released),
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
}
