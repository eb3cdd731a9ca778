//! What an account is entitled to: member seats, whether it may use the public API, and
//! which scopes its API tokens may have. Each plan of the catalog says so, and `[free]`
//! for accounts without a plan; the deployment may then narrow API access for everyone
//! ([`ApiPolicy`]: `--api-access`, `--api-scopes`). [`Catalog::entitlements`] applies both.
//!
//! Omitted, an entitlement keeps what the service did before plans had any: API access
//! with every scope. Seats default to 1.

use super::Catalog;
use crate::access_token::Scope;
use serde::{Deserialize, Serialize};

pub(super) fn one_seat() -> u32 {
    1
}

pub(super) fn on() -> bool {
    true
}

/// What an account without a plan is entitled to (the catalog's `[free]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeTier {
    /// Member seats: members plus pending invitations of the workspaces the account owns
    /// (1 when omitted).
    #[serde(default = "one_seat")]
    pub seats: u32,
    /// Whether free accounts may use the public API; on when omitted.
    #[serde(default = "on")]
    pub api_access: bool,
    /// The scopes their API tokens may have; every scope when omitted.
    #[serde(default)]
    pub scopes: Option<Vec<Scope>>,
}

impl Default for FreeTier {
    fn default() -> Self {
        Self {
            seats: one_seat(),
            api_access: true,
            scopes: None,
        }
    }
}

/// What the deployment allows of the public API, whatever the plan says: it can only
/// narrow a plan's entitlements, never widen them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPolicy {
    /// `--api-access off` takes API access from every account.
    pub access: bool,
    /// `--api-scopes`: the only scopes any account is offered (intersected with its
    /// plan's); every scope when `None`.
    pub scopes: Option<Vec<Scope>>,
}

impl Default for ApiPolicy {
    /// Everything the plans offer.
    fn default() -> Self {
        Self {
            access: true,
            scopes: None,
        }
    }
}

/// What an account is entitled to now, the deployment's narrowing applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entitlements {
    /// The plan in force (`None`: a free account).
    pub plan: Option<String>,
    /// Member seats: members plus pending invitations of the workspaces the account owns
    /// may not exceed this.
    pub seats: u32,
    /// Whether the account may create API tokens and use them on `/api/v1`.
    pub api_access: bool,
    /// The scopes its API tokens may have (and use), in [`Scope::ALL`]'s order; empty
    /// without API access.
    pub scopes: Vec<Scope>,
}

impl Entitlements {
    /// Whether an API token of this account may have (and use) `scope`.
    pub fn offers(&self, scope: Scope) -> bool {
        self.api_access && self.scopes.contains(&scope)
    }
}

impl Catalog {
    /// The same catalog with the deployment's narrowing of API access.
    pub fn with_api_policy(mut self, policy: ApiPolicy) -> Self {
        self.api_policy = policy;
        self
    }

    /// What an account on `plan` (`None`: no plan, a free account) is entitled to, the
    /// deployment's [`ApiPolicy`] applied. A plan no longer in the catalog is entitled to
    /// what a free account is (and is still named).
    pub fn entitlements(&self, plan: Option<&str>) -> Entitlements {
        let (seats, api_access, scopes) = match plan.and_then(|id| self.plan(id)) {
            Some(p) => (p.seats, p.api_access, p.scopes.as_deref()),
            None => (
                self.free.seats,
                self.free.api_access,
                self.free.scopes.as_deref(),
            ),
        };
        let policy = &self.api_policy;
        let offered =
            |scope: &Scope, list: Option<&[Scope]>| list.is_none_or(|l| l.contains(scope));
        let scopes: Vec<Scope> = if api_access && policy.access {
            Scope::ALL
                .into_iter()
                .filter(|s| offered(s, scopes) && offered(s, policy.scopes.as_deref()))
                .collect()
        } else {
            Vec::new()
        };
        Entitlements {
            plan: plan.map(str::to_owned),
            seats,
            // Access without a scope to use would be access to nothing.
            api_access: !scopes.is_empty(),
            scopes,
        }
    }
}

/// A plan (or `[free]`) that offers API access offers at least one scope.
pub(super) fn validate(catalog: &Catalog) -> Result<(), String> {
    let tiers = std::iter::once((
        "[free]".to_owned(),
        catalog.free.api_access,
        &catalog.free.scopes,
    ))
    .chain(
        catalog
            .plans
            .iter()
            .map(|p| (format!("plan {}", p.id), p.api_access, &p.scopes)),
    );
    for (name, api_access, scopes) in tiers {
        if api_access && scopes.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!(
                "{name} offers API access with no scope: list at least one, or set api_access = false"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
