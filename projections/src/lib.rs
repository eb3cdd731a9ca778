//! Read models.
//!
//! A [`Projector`] folds events into SQL tables it owns; the [`runner::ProjectionRunner`]
//! feeds it the log in batches and advances its checkpoint in the same transaction, waits
//! for new events, rebuilds it from position 0 into fresh tables that are then swapped in,
//! and lets commands wait until a projection has caught up with what they wrote
//! (read-your-writes). The query functions the API reads live next to each projector.
//!
//! This file is the registry: every read model's module, every follower's name
//! ([`Follower`], the key of its checkpoint) and the list of projectors ([`all`]).

pub mod access_tokens;
pub mod accounts;
pub mod billing;
pub mod checkpoints;
pub mod credits;
pub mod operator_tokens;
pub mod rebuild;
pub mod reconciliation;
pub mod runner;
pub mod schema;
pub mod sessions;
pub mod visibility;

pub use rebuild::RebuildReport;
pub use runner::{ProjectionError, ProjectionRunner, Projector, Reactor};
pub use schema::{Table, Tables};
pub use visibility::Visibility;

use std::fmt;
use std::sync::Arc;
use vault::FieldSealer;

/// Every projector of the service, in the order they are listed to operators; those
/// holding personal data seal it with `sealer`.
pub fn all(sealer: &FieldSealer) -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(accounts::AccountsProjector::new(sealer.clone())),
        Arc::new(sessions::SessionsProjector::new(sealer.clone())),
        Arc::new(credits::CreditsProjector),
        Arc::new(billing::BillingProjector),
        Arc::new(operator_tokens::OperatorTokensProjector),
        Arc::new(access_tokens::AccessTokensProjector),
        Arc::new(access_tokens::TokenUsageProjector::new(sealer.clone())),
    ]
}

/// A subscriber of the log that keeps a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Follower {
    /// Read model: profiles, 2FA state ([`crate::accounts`]).
    Accounts,
    /// Read model: live sessions and their token hashes ([`crate::sessions`]).
    Sessions,
    /// Read model: balances, lots, holds and the ledger ([`crate::credits`]).
    Credits,
    /// Read model: subscriptions, purchases and invoices ([`crate::billing`]).
    Billing,
    /// Read model: operator tokens ([`crate::operator_tokens`]).
    OperatorTokens,
    /// Read model: API and CLI token hashes and summaries ([`crate::access_tokens`]).
    AccessTokens,
    /// Read model: per-token usage counts ([`crate::access_tokens`]).
    TokenUsage,
    /// Reactor: erases a deleted account (in `workers`).
    AccountErasure,
    /// Reactor: invoices, charges and credits that billing events cause (in `workers`).
    BillingProcess,
    /// The e-mail notifier (in `workers`).
    Notifier,
    /// Not a follower but a mark: events up to this position were in the log before the
    /// notifier first ran, and send nothing.
    NotifierSilentUntil,
}

impl Follower {
    /// Every name.
    pub const ALL: [Follower; 11] = [
        Self::Accounts,
        Self::Sessions,
        Self::Credits,
        Self::Billing,
        Self::OperatorTokens,
        Self::AccessTokens,
        Self::TokenUsage,
        Self::AccountErasure,
        Self::BillingProcess,
        Self::Notifier,
        Self::NotifierSilentUntil,
    ];

    /// The stored key: never changed, or the follower starts over from position 0.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Sessions => "sessions",
            Self::Credits => "credits",
            Self::Billing => "billing",
            Self::OperatorTokens => "admin_tokens",
            Self::AccessTokens => "access_tokens",
            Self::TokenUsage => "token_usage",
            Self::AccountErasure => "account-erasure",
            Self::BillingProcess => "billing-process",
            Self::Notifier => "notifier",
            Self::NotifierSilentUntil => "notifier.silent-until",
        }
    }

    /// The follower stored under `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }
}

impl fmt::Display for Follower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_are_unique_and_read_back() {
        let keys: HashSet<_> = Follower::ALL.iter().map(|f| f.key()).collect();
        assert_eq!(keys.len(), Follower::ALL.len());
        for follower in Follower::ALL {
            assert_eq!(Follower::from_key(follower.key()), Some(follower));
        }
        assert_eq!(Follower::from_key("nothing"), None);
    }
}
