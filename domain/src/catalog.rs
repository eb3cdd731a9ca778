//! The catalog of credit packs, subscription plans and claimable offers, the seller named
//! on invoices, and what each plan (and a free account) is entitled to (`entitlements`),
//! loaded from the configuration file shipped with the service (`config/catalog.toml`).

mod entitlements;

pub use entitlements::{ApiPolicy, Entitlements, FreeTier};

use crate::Timestamp;
use crate::access_token::Scope;
use crate::credits::SourceKind;
use crate::invoice::Seller;
use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Everything that can be bought or claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The currency of every price.
    pub currency: String,
    /// One-off credit packs.
    #[serde(default)]
    pub packs: Vec<CreditPack>,
    /// Subscription plans.
    #[serde(default)]
    pub plans: Vec<Plan>,
    /// The signup bonus and promotional campaigns.
    #[serde(default)]
    pub claims: Vec<ClaimOffer>,
    /// Who issues the invoices, and the tax the prices include.
    #[serde(default)]
    pub seller: Option<Seller>,
    /// What an account without a plan is entitled to (`[free]`).
    #[serde(default)]
    pub free: FreeTier,
    /// What the deployment allows of the public API whatever the plan (`--api-access`,
    /// `--api-scopes`); not part of the file, set with [`Catalog::with_api_policy`].
    #[serde(skip)]
    pub api_policy: ApiPolicy,
}

/// A pack of credits bought once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditPack {
    /// Stable id, e.g. `credits-1000`.
    pub id: String,
    /// Shown to people.
    pub name: String,
    /// Credits granted.
    pub credits: u64,
    /// Price in minor units of the catalog currency.
    pub price: i64,
}

/// A subscription plan. An unknown key is refused, so that a mistyped entitlement
/// (`api_acces = false`) cannot pass unnoticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable id, e.g. `creator`.
    pub id: String,
    /// Shown to people.
    pub name: String,
    /// Price per period in minor units.
    pub price: i64,
    /// Allowance credits granted each period (they expire with it).
    pub credits_per_period: u64,
    /// Length of a period.
    pub period_days: u32,
    /// Higher ranks are upgrades.
    pub rank: u32,
    /// Member seats: members plus pending invitations of the workspaces the subscriber
    /// owns (1 when omitted).
    #[serde(default = "entitlements::one_seat")]
    pub seats: u32,
    /// Whether the plan includes the public API (API tokens, `/api/v1`); on when omitted.
    #[serde(default = "entitlements::on")]
    pub api_access: bool,
    /// The scopes API tokens may have on this plan; every scope when omitted.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
}

impl Plan {
    /// The period as a duration.
    pub fn period(&self) -> Duration {
        Duration::from_secs(u64::from(self.period_days) * 86_400)
    }
}

/// Whether an offer is the signup bonus or a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// Every account may claim it once.
    Signup,
    /// A promotional campaign.
    Promotion,
}

impl ClaimKind {
    /// The credit source of lots this offer grants.
    pub fn source(self) -> SourceKind {
        match self {
            Self::Signup => SourceKind::SignupBonus,
            Self::Promotion => SourceKind::Promotion,
        }
    }
}

/// Credits an account may claim once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimOffer {
    /// Stable id, e.g. `signup-bonus`.
    pub id: String,
    /// Shown to people.
    pub name: String,
    /// Signup bonus or campaign.
    pub kind: ClaimKind,
    /// Credits granted.
    pub credits: u64,
    /// The granted lot expires this many days after the claim.
    #[serde(default)]
    pub lot_expires_after_days: Option<u32>,
    /// No claims after this instant.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Most credits the campaign grants across all accounts.
    #[serde(default)]
    pub budget_credits: Option<u64>,
}

impl Catalog {
    /// Checks ids are unique, amounts positive, currencies consistent, and that whatever
    /// offers API access offers a scope.
    pub fn validate(&self) -> Result<(), String> {
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "currency {:?} is not an upper-case ISO 4217 code",
                self.currency
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for id in self
            .packs
            .iter()
            .map(|p| &p.id)
            .chain(self.plans.iter().map(|p| &p.id))
            .chain(self.claims.iter().map(|c| &c.id))
        {
            if id.is_empty() || !ids.insert(id.as_str()) {
                return Err(format!("catalog id {id:?} is empty or used twice"));
            }
        }
        if let Some(p) = self.packs.iter().find(|p| p.credits == 0 || p.price <= 0) {
            return Err(format!("pack {} needs credits and a positive price", p.id));
        }
        if let Some(p) = self
            .plans
            .iter()
            .find(|p| p.price <= 0 || p.period_days == 0)
        {
            return Err(format!("plan {} needs a positive price and period", p.id));
        }
        if let Some(c) = self.claims.iter().find(|c| c.credits == 0) {
            return Err(format!("claim {} grants no credits", c.id));
        }
        // A lot expiring as it is granted is refused by the ledger: every claim would
        // spend the offer's budget and grant nothing.
        if let Some(c) = self
            .claims
            .iter()
            .find(|c| c.lot_expires_after_days == Some(0))
        {
            return Err(format!("claim {}'s lot must last at least a day", c.id));
        }
        entitlements::validate(self)
    }

    /// A pack by id.
    pub fn pack(&self, id: &str) -> Option<&CreditPack> {
        self.packs.iter().find(|p| p.id == id)
    }

    /// A plan by id.
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.id == id)
    }

    /// An offer by id.
    pub fn claim(&self, id: &str) -> Option<&ClaimOffer> {
        self.claims.iter().find(|c| c.id == id)
    }

    /// A price in the catalog currency.
    pub fn money(&self, amount: i64) -> Money {
        Money::new(amount, &self.currency)
    }
}
