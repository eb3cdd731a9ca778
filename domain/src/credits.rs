//! The credit ledger of an account (`credits-<account id>`): lots of credits granted, and
//! holds placed by generations, settled or released.
//!
//! A lot is an amount from one source (signup bonus, promotion, purchase, plan allowance)
//! with a priority and an optional expiry. Credits are taken from lots by priority, then
//! soonest expiry, then oldest; expired lots stop counting. A generation first holds an
//! estimate (taken from lots then), then settles the actual amount (the rest goes back to
//! the lots it came from) or is released in full. Every step is idempotent by generation
//! id, and the balance can never go below zero: a hold that does not fit is refused.

mod decide;

use crate::Timestamp;
use crate::event::Event;
use imbl::{HashMap, OrdMap};
use serde::{Deserialize, Serialize};
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
        /// Open holds the ledger may have at most (a new hold beyond is refused).
        max_open_holds: u32,
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
    /// A new hold while as many holds as allowed are open.
    #[error("{max} generations hold credits already, the most at once; complete or fail one first")]
    TooManyOpenHolds {
        /// The limit.
        max: u32,
    },
}

/// One lot as the ledger tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
///
/// The maps are persistent (structure-sharing): the ledger keeps every generation it ever
/// closed, so a plain clone would cost as much as the account's history, and the executor
/// copies the state of every command it decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLedger {
    /// Every lot, by id.
    pub lots: OrdMap<Uuid, Lot>,
    /// Grant keys already used, with their lot.
    pub grants: HashMap<String, Uuid>,
    /// Open holds by generation id.
    pub holds: OrdMap<String, Hold>,
    /// Closed generations.
    pub closed: HashMap<String, Closed>,
}

#[cfg(test)]
mod tests;
