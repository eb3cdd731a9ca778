//! Read models.
//!
//! A [`Projector`] folds events into SQL tables it owns; the [`runner::ProjectionRunner`]
//! feeds it the log in batches and advances its checkpoint in the same transaction, waits
//! for new events, rebuilds it from position 0 into fresh tables that are then swapped in,
//! and lets commands wait until a projection has caught up with what they wrote
//! (read-your-writes). The query functions the API reads live next to each projector.
//!
//! This file is the registry: every read model's module, every follower's name
//! ([`Follower`], the key of its checkpoint) and the list of projectors ([`all`]). The hash
//! chain over the log ([`chain`]) is a follower too, but no read model: it is never rebuilt.

pub mod access_tokens;
pub mod accounts;
pub mod audit_index;
pub mod batch;
pub mod billing;
pub mod chain;
pub mod checkpoints;
pub mod credits;
mod cursor;
pub mod editor_preferences;
pub mod follow;
pub mod operator_tokens;
pub mod page;
pub mod projector;
pub mod provider_keys;
pub mod rebuild;
pub mod reconciliation;
pub mod runner;
pub mod schema;
pub mod sessions;
pub mod telegram;
pub mod visibility;
pub mod workspaces;

pub use page::{After, Page, Paged};
pub use projector::{ProjectionError, Projector, Reactor};
pub use rebuild::RebuildReport;
pub use runner::ProjectionRunner;
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
        Arc::new(access_tokens::AccessTokensProjector::new(sealer.clone())),
        Arc::new(access_tokens::TokenUsageProjector::new(sealer.clone())),
        Arc::new(workspaces::WorkspacesProjector::new(sealer.clone())),
        Arc::new(editor_preferences::EditorPreferencesProjector),
        Arc::new(provider_keys::ProviderKeysProjector),
        Arc::new(telegram::TelegramProjector::new(sealer.clone())),
    ]
}

/// Declares the followers, one line each: the variant and the stored key of its checkpoint.
macro_rules! followers {
    ($($(#[doc = $doc:literal])* $follower:ident => $key:literal,)+) => {
        /// A subscriber of the log that keeps a checkpoint.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Follower {
            $($(#[doc = $doc])* $follower,)+
        }

        impl Follower {
            /// Every name.
            pub const ALL: &[Follower] = &[$(Self::$follower),+];

            /// The stored key: never changed, or the follower starts over from position 0.
            pub const fn key(self) -> &'static str {
                match self {
                    $(Self::$follower => $key,)+
                }
            }
        }
    };
}

followers! {
    /// Read model: profiles, 2FA state ([`crate::accounts`]).
    Accounts => "accounts",
    /// Read model: live sessions and their token hashes ([`crate::sessions`]).
    Sessions => "sessions",
    /// Read model: balances, lots, holds and the ledger ([`crate::credits`]).
    Credits => "credits",
    /// Read model: subscriptions, purchases and invoices ([`crate::billing`]).
    Billing => "billing",
    /// Read model: operator tokens ([`crate::operator_tokens`]); stored under the name
    /// it had before "operator".
    OperatorTokens => "admin_tokens",
    /// Read model: API and CLI token hashes and summaries ([`crate::access_tokens`]).
    AccessTokens => "access_tokens",
    /// Read model: per-token usage counts ([`crate::access_tokens`]).
    TokenUsage => "token_usage",
    /// Read model: workspaces, members and invitations ([`crate::workspaces`]).
    Workspaces => "workspaces",
    /// Read model: editor preferences and their history ([`crate::editor_preferences`]).
    EditorPreferences => "editor_preferences",
    /// Read model: which owner keeps a key of which provider ([`crate::provider_keys`]).
    ProviderKeys => "provider_keys",
    /// Read model: linked Telegram chats and live link tokens ([`crate::telegram`]).
    Telegram => "telegram",
    /// Reactor: erases a deleted account (in `workers`).
    AccountErasure => "account-erasure",
    /// Reactor: invoices, charges and credits that billing events cause (in `workers`).
    BillingProcess => "billing-process",
    /// The e-mail notifier (in `workers`).
    Notifier => "notifier",
    /// Not a follower but a mark: events up to this position were in the log before the
    /// notifier first ran, and send nothing.
    NotifierSilentUntil => "notifier.silent-until",
    /// Tamper evidence: the chainer, which links each event to the one before
    /// ([`crate::chain`]).
    EventChain => "event-chain",
    /// The audit index: which events belong to which account ([`crate::audit_index`]).
    AuditIndex => "audit-index",
}

impl Follower {
    /// The follower stored under `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.key() == key)
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
        for &follower in Follower::ALL {
            assert_eq!(Follower::from_key(follower.key()), Some(follower));
        }
        assert_eq!(Follower::from_key("nothing"), None);
    }
}
