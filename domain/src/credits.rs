//! The credit ledger of an account (`credits-<account id>`): lots of credits granted, and
//! holds placed by generations, settled or released.
//!
//! A lot is an amount from one source (signup bonus, promotion, purchase, plan allowance)
//! with a priority and an optional expiry. Credits are taken from lots by priority, then
//! soonest expiry, then oldest; expired lots stop counting. A generation first holds an
//! estimate (taken from lots then), then settles the actual amount (the rest goes back to
//! the lots it came from) or is released in full. Every step is idempotent by generation
//! id, and the balance can never go below zero: a hold that does not fit is refused.

use crate::event::Event;
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Where a lot of credits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// The signup bonus claim.
    SignupBonus,
    /// A promotional offer claimed.
    Promotion,
    /// A credit pack bought.
    Purchase,
    /// A subscription period's allowance.
    PlanAllowance,
}

impl SourceKind {
    /// Lower is spent first: credits that expire soonest by nature go first, paid-for
    /// credits that never expire last.
    pub fn priority(self) -> i32 {
        match self {
            Self::Promotion => 10,
            Self::SignupBonus => 20,
            Self::PlanAllowance => 30,
            Self::Purchase => 40,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignupBonus => "signup_bonus",
            Self::Promotion => "promotion",
            Self::Purchase => "purchase",
            Self::PlanAllowance => "plan_allowance",
        }
    }
}

/// What a hold is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// The editor.
    Editor,
    /// AI generation.
    Generation,
    /// Rendering.
    Rendering,
    /// The public API.
    Api,
}

impl Feature {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Editor => "editor",
            Self::Generation => "generation",
            Self::Rendering => "rendering",
            Self::Api => "api",
        }
    }
}

/// Why a hold was released without being settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The generation failed.
    Failed,
    /// Nobody settled it before its deadline.
    TimedOut,
}

/// Credits taken from (or returned to) one lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    /// The lot.
    pub lot_id: Uuid,
    /// How many credits.
    pub amount: u64,
}

/// What happened to a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "credits")]
pub enum CreditsEvent {
    /// A lot of credits arrived.
    #[event(no_personal_data)]
    CreditsGranted {
        /// The new lot.
        lot_id: Uuid,
        /// What makes this grant unique (e.g. `purchase:<id>`): granted once.
        grant_key: String,
        /// Credits.
        amount: u64,
        /// Where from.
        source: SourceKind,
        /// Lower is spent first.
        priority: i32,
        /// When the lot stops counting.
        expires_at: Option<Timestamp>,
        /// When.
        granted_at: Timestamp,
    },
    /// A generation reserved an estimate.
    #[event(no_personal_data)]
    CreditsHeld {
        /// The client's generation id.
        generation_id: String,
        /// What for.
        feature: Feature,
        /// Credits reserved.
        amount: u64,
        /// Taken from these lots.
        allocations: Vec<Allocation>,
        /// When.
        held_at: Timestamp,
        /// Released by the scheduler if not settled by then.
        hold_expires_at: Timestamp,
        /// The API token that placed it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_token_id: Option<Uuid>,
    },
    /// A generation completed: the actual amount spent, the rest returned.
    #[event(no_personal_data)]
    CreditsSpent {
        /// The generation.
        generation_id: String,
        /// What for.
        feature: Feature,
        /// Credits spent.
        amount: u64,
        /// Spent from these lots.
        spent: Vec<Allocation>,
        /// Returned to these lots.
        released: Vec<Allocation>,
        /// When.
        at: Timestamp,
        /// The API token that settled it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_token_id: Option<Uuid>,
    },
    /// A hold was released in full.
    #[event(no_personal_data)]
    HoldReleased {
        /// The generation.
        generation_id: String,
        /// What for.
        feature: Feature,
        /// Why.
        reason: ReleaseReason,
        /// Returned to these lots.
        released: Vec<Allocation>,
        /// When.
        at: Timestamp,
        /// The API token that released it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_token_id: Option<Uuid>,
    },
    /// What was left of a lot expired.
    #[event(no_personal_data)]
    CreditsExpired {
        /// The lot.
        lot_id: Uuid,
        /// Credits that stopped counting.
        amount: u64,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of a ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditsCommand {
    /// Add a lot, once per `grant_key`.
    Grant {
        /// Id for the new lot.
        lot_id: Uuid,
        /// Unique per grant.
        grant_key: String,
        /// Credits (> 0).
        amount: u64,
        /// Where from.
        source: SourceKind,
        /// When the lot stops counting.
        expires_at: Option<Timestamp>,
        /// Now.
        at: Timestamp,
    },
    /// Reserve an estimate for a generation.
    Hold {
        /// The client's id.
        generation_id: String,
        /// What for.
        feature: Feature,
        /// Credits (> 0).
        amount: u64,
        /// Deadline for settling.
        hold_expires_at: Timestamp,
        /// The API token acting, if any.
        api_token_id: Option<Uuid>,
        /// Now.
        at: Timestamp,
    },
    /// Spend the actual amount of a hold and return the rest.
    Settle {
        /// The generation.
        generation_id: String,
        /// Credits actually used (at most the hold).
        amount: u64,
        /// The API token acting, if any.
        api_token_id: Option<Uuid>,
        /// Now.
        at: Timestamp,
    },
    /// Return a hold in full.
    Release {
        /// The generation.
        generation_id: String,
        /// Failed, or timed out.
        reason: ReleaseReason,
        /// The API token acting, if any.
        api_token_id: Option<Uuid>,
        /// Now.
        at: Timestamp,
    },
    /// Expire what is left of a lot past its expiry.
    Expire {
        /// The lot.
        lot_id: Uuid,
        /// Now.
        at: Timestamp,
    },
}

/// Why a ledger command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditsError {
    /// Zero credits.
    #[error("the amount must be positive")]
    InvalidAmount,
    /// A lot that would be expired when granted.
    #[error("the expiry must be in the future")]
    InvalidExpiry,
    /// Not enough credits available for the hold.
    #[error("{requested} credits requested, {available} available")]
    InsufficientCredits {
        /// Credits available now.
        available: u64,
        /// Credits asked for.
        requested: u64,
    },
    /// The generation id was used for a different request.
    #[error("this generation id was already used for a different request")]
    GenerationConflict,
    /// Settling or failing a generation that holds nothing.
    #[error("no hold for this generation")]
    UnknownGeneration,
    /// Settling a hold past its deadline.
    #[error("the hold expired and its credits are being released")]
    HoldExpired,
    /// Settling more than was held.
    #[error("{amount} credits is more than the {held} held")]
    ExceedsHold {
        /// Asked for.
        amount: u64,
        /// Held.
        held: u64,
    },
    /// Settling a released hold, or failing a settled one.
    #[error("the generation was already {0}")]
    AlreadyClosed(&'static str),
    /// Expiring a lot that does not exist or is not due.
    #[error("nothing to expire")]
    NothingToExpire,
}

/// One lot as the ledger tracks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    /// Its id.
    pub lot_id: Uuid,
    /// Where from.
    pub source: SourceKind,
    /// Lower is spent first.
    pub priority: i32,
    /// Credits granted.
    pub amount: u64,
    /// Credits neither spent, held nor expired.
    pub remaining: u64,
    /// When it stops counting.
    pub expires_at: Option<Timestamp>,
    /// When it arrived.
    pub granted_at: Timestamp,
    /// Arrival order.
    pub seq: u64,
    /// An expiry event was recorded.
    pub expired: bool,
}

impl Lot {
    /// Whether it counts at `now`.
    pub fn usable(&self, now: Timestamp) -> bool {
        !self.expired && self.expires_at.is_none_or(|at| at > now)
    }
}

/// An open hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// What for.
    pub feature: Feature,
    /// Credits held.
    pub amount: u64,
    /// From these lots.
    pub allocations: Vec<Allocation>,
    /// Deadline.
    pub expires_at: Timestamp,
}

/// How a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Settled for this many credits, out of `held`.
    Settled {
        /// Credits held.
        held: u64,
        /// Credits spent.
        spent: u64,
    },
    /// Released.
    Released {
        /// Credits held.
        held: u64,
    },
}

/// An account's credits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreditLedger {
    /// Every lot, by id.
    pub lots: BTreeMap<Uuid, Lot>,
    /// Grant keys already used, with their lot.
    pub grants: HashMap<String, Uuid>,
    /// Open holds by generation id.
    pub holds: BTreeMap<String, Hold>,
    /// Closed generations.
    pub closed: HashMap<String, Closed>,
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
                if let Some(closed) = self.closed.get(generation_id) {
                    let held = match closed {
                        Closed::Settled { held, .. } | Closed::Released { held } => *held,
                    };
                    return if held == *amount {
                        Ok(vec![])
                    } else {
                        Err(CreditsError::GenerationConflict)
                    };
                }
                if *amount == 0 {
                    return Err(CreditsError::InvalidAmount);
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

#[cfg(test)]
mod tests;
