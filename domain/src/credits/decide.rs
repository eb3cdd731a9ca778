//! The decisions of the credit ledger and what it holds now: which lots a hold takes
//! credits from, what a settlement or release gives back, and how each event changes the
//! ledger.

use super::{
    Allocation, Closed, CreditLedger, CreditsCommand, CreditsError, CreditsEvent, Hold, Lot,
    ReleaseReason,
};
use crate::{Aggregate, Timestamp};

impl CreditLedger {
    /// Usable lots in spending order.
    fn spending_order(&self, now: Timestamp) -> Vec<&Lot> {
        let mut lots: Vec<&Lot> = self
            .lots
            .values()
            .filter(|l| l.usable(now) && l.remaining > 0)
            .collect();
        lots.sort_by_key(|l| (l.priority, l.expires_at.is_none(), l.expires_at, l.seq));
        lots
    }
}

impl CreditLedger {
    /// Credits that can be held or spent at `now`.
    pub fn available(&self, now: Timestamp) -> u64 {
        self.lots
            .values()
            .filter(|l| l.usable(now))
            .map(|l| l.remaining)
            .sum()
    }

    /// Credits in lots without an expiry event, whatever the time (what the read model
    /// records as the balance).
    pub fn balance(&self) -> u64 {
        self.lots
            .values()
            .filter(|l| !l.expired)
            .map(|l| l.remaining)
            .sum()
    }

    /// Credits held by open holds.
    pub fn held(&self) -> u64 {
        self.holds.values().map(|h| h.amount).sum()
    }

    /// Holds open at `now`: not settled, released, nor past their deadline (the scheduler
    /// releases those).
    pub fn open_holds(&self, now: Timestamp) -> usize {
        self.holds.values().filter(|h| h.expires_at > now).count()
    }
}

fn take(from: &[Allocation], mut amount: u64) -> (Vec<Allocation>, Vec<Allocation>) {
    let (mut taken, mut rest) = (Vec::new(), Vec::new());
    for a in from {
        let used = a.amount.min(amount);
        amount -= used;
        if used > 0 {
            taken.push(Allocation {
                lot_id: a.lot_id,
                amount: used,
            });
        }
        if a.amount > used {
            rest.push(Allocation {
                lot_id: a.lot_id,
                amount: a.amount - used,
            });
        }
    }
    (taken, rest)
}

impl Aggregate for CreditLedger {
    type Event = CreditsEvent;
    type Command = CreditsCommand;
    type Error = CreditsError;

    // A ledger holds amounts, lot ids, grant keys and generation ids: nothing personal,
    // so its snapshot needs no sealing. Version 1: the derived serde shape of
    // `CreditLedger`; bump it whenever that shape or `evolve` changes meaning.
    const SNAPSHOT_VERSION: Option<u32> = Some(1);

    fn to_snapshot(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    fn from_snapshot(snapshot: serde_json::Value) -> Option<Self> {
        serde_json::from_value(snapshot).ok()
    }

    fn decide(&self, command: &CreditsCommand) -> Result<Vec<CreditsEvent>, CreditsError> {
        use CreditsCommand as C;
        match command {
            C::Grant {
                lot_id,
                grant_key,
                amount,
                source,
                expires_at,
                at,
            } => {
                if self.grants.contains_key(grant_key) {
                    return Ok(vec![]);
                }
                if *amount == 0 {
                    return Err(CreditsError::InvalidAmount);
                }
                if expires_at.is_some_and(|e| e <= *at) {
                    return Err(CreditsError::InvalidExpiry);
                }
                Ok(vec![CreditsEvent::CreditsGranted {
                    lot_id: *lot_id,
                    grant_key: grant_key.clone(),
                    amount: *amount,
                    source: *source,
                    priority: source.priority(),
                    expires_at: *expires_at,
                    granted_at: *at,
                }])
            }
            C::Hold {
                generation_id,
                feature,
                amount,
                hold_expires_at,
                max_open_holds,
                api_token_id,
                at,
            } => {
                if let Some(hold) = self.holds.get(generation_id) {
                    return if hold.amount == *amount && hold.feature == *feature {
                        Ok(vec![])
                    } else {
                        Err(CreditsError::GenerationConflict)
                    };
                }
                // A closed generation holds nothing: a hold again is refused, not answered
                // as held (work started on it would be paid by nothing).
                if let Some(closed) = self.closed.get(generation_id) {
                    let (held, how) = match closed {
                        Closed::Settled { held, .. } => (*held, "completed"),
                        Closed::Released { held } => (*held, "released"),
                    };
                    return Err(if held == *amount {
                        CreditsError::AlreadyClosed(how)
                    } else {
                        CreditsError::GenerationConflict
                    });
                }
                if *amount == 0 {
                    return Err(CreditsError::InvalidAmount);
                }
                if self.open_holds(*at) >= *max_open_holds as usize {
                    return Err(CreditsError::TooManyOpenHolds {
                        max: *max_open_holds,
                    });
                }
                let mut allocations = Vec::new();
                let mut missing = *amount;
                for lot in self.spending_order(*at) {
                    if missing == 0 {
                        break;
                    }
                    let used = lot.remaining.min(missing);
                    allocations.push(Allocation {
                        lot_id: lot.lot_id,
                        amount: used,
                    });
                    missing -= used;
                }
                if missing > 0 {
                    return Err(CreditsError::InsufficientCredits {
                        available: self.available(*at),
                        requested: *amount,
                    });
                }
                Ok(vec![CreditsEvent::CreditsHeld {
                    generation_id: generation_id.clone(),
                    feature: *feature,
                    amount: *amount,
                    allocations,
                    held_at: *at,
                    hold_expires_at: *hold_expires_at,
                    api_token_id: *api_token_id,
                }])
            }
            C::Settle {
                generation_id,
                amount,
                api_token_id,
                at,
            } => {
                match self.closed.get(generation_id) {
                    Some(Closed::Settled { spent, .. }) if spent == amount => return Ok(vec![]),
                    Some(Closed::Settled { .. }) => return Err(CreditsError::GenerationConflict),
                    Some(Closed::Released { .. }) => {
                        return Err(CreditsError::AlreadyClosed("released"));
                    }
                    None => {}
                }
                let hold = self
                    .holds
                    .get(generation_id)
                    .ok_or(CreditsError::UnknownGeneration)?;
                if *at >= hold.expires_at {
                    return Err(CreditsError::HoldExpired);
                }
                if *amount > hold.amount {
                    return Err(CreditsError::ExceedsHold {
                        amount: *amount,
                        held: hold.amount,
                    });
                }
                let (spent, released) = take(&hold.allocations, *amount);
                Ok(vec![CreditsEvent::CreditsSpent {
                    generation_id: generation_id.clone(),
                    feature: hold.feature,
                    amount: *amount,
                    spent,
                    released,
                    at: *at,
                    api_token_id: *api_token_id,
                }])
            }
            C::Release {
                generation_id,
                reason,
                api_token_id,
                at,
            } => {
                match (self.closed.get(generation_id), reason) {
                    (Some(Closed::Released { .. }), _)
                    | (Some(Closed::Settled { .. }), ReleaseReason::TimedOut) => {
                        return Ok(vec![]);
                    }
                    (Some(Closed::Settled { .. }), ReleaseReason::Failed) => {
                        return Err(CreditsError::AlreadyClosed("completed"));
                    }
                    (None, _) => {}
                }
                let hold = self
                    .holds
                    .get(generation_id)
                    .ok_or(CreditsError::UnknownGeneration)?;
                if *reason == ReleaseReason::TimedOut && *at < hold.expires_at {
                    return Ok(vec![]);
                }
                Ok(vec![CreditsEvent::HoldReleased {
                    generation_id: generation_id.clone(),
                    feature: hold.feature,
                    reason: *reason,
                    released: hold.allocations.clone(),
                    at: *at,
                    api_token_id: *api_token_id,
                }])
            }
            C::Expire { lot_id, at } => {
                let lot = self.lots.get(lot_id).ok_or(CreditsError::NothingToExpire)?;
                let due = lot.expires_at.is_some_and(|e| e <= *at);
                if !due || lot.remaining == 0 {
                    return Ok(vec![]);
                }
                Ok(vec![CreditsEvent::CreditsExpired {
                    lot_id: *lot_id,
                    amount: lot.remaining,
                    at: *at,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &CreditsEvent) {
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
                let seq = self.lots.len() as u64;
                self.grants.insert(grant_key.clone(), *lot_id);
                self.lots.insert(
                    *lot_id,
                    Lot {
                        lot_id: *lot_id,
                        source: *source,
                        priority: *priority,
                        amount: *amount,
                        remaining: *amount,
                        expires_at: *expires_at,
                        granted_at: *granted_at,
                        seq,
                        expired: false,
                    },
                );
            }
            CreditsEvent::CreditsHeld {
                generation_id,
                feature,
                amount,
                allocations,
                hold_expires_at,
                ..
            } => {
                for a in allocations {
                    if let Some(lot) = self.lots.get_mut(&a.lot_id) {
                        lot.remaining = lot.remaining.saturating_sub(a.amount);
                    }
                }
                self.holds.insert(
                    generation_id.clone(),
                    Hold {
                        feature: *feature,
                        amount: *amount,
                        allocations: allocations.clone(),
                        expires_at: *hold_expires_at,
                    },
                );
            }
            CreditsEvent::CreditsSpent {
                generation_id,
                amount,
                released,
                ..
            } => {
                self.return_to_lots(released);
                let held = self
                    .holds
                    .remove(generation_id)
                    .map_or(*amount, |h| h.amount);
                self.closed.insert(
                    generation_id.clone(),
                    Closed::Settled {
                        held,
                        spent: *amount,
                    },
                );
            }
            CreditsEvent::HoldReleased {
                generation_id,
                released,
                ..
            } => {
                self.return_to_lots(released);
                let held = self.holds.remove(generation_id).map_or(0, |h| h.amount);
                self.closed
                    .insert(generation_id.clone(), Closed::Released { held });
            }
            CreditsEvent::CreditsExpired { lot_id, amount, .. } => {
                if let Some(lot) = self.lots.get_mut(lot_id) {
                    lot.remaining = lot.remaining.saturating_sub(*amount);
                    lot.expired = true;
                }
            }
        }
    }
}

impl CreditLedger {
    fn return_to_lots(&mut self, allocations: &[Allocation]) {
        for a in allocations {
            if let Some(lot) = self.lots.get_mut(&a.lot_id) {
                lot.remaining += a.amount;
            }
        }
    }
}
