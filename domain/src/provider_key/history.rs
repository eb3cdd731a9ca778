//! A key's history, line by line: what each event says of it.

use super::{KeyStatus, Provider, ProviderKeyEvent};
use crate::{AccountId, Timestamp};
use uuid::Uuid;

/// One line of a key's history: what an event says of it. The history is a read model
/// (it grows with every resolve), never part of the owner's folded state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The provider.
    pub provider: Provider,
    /// `set`, `verified`, `invalid`, `removed` or `resolved`.
    pub action: &'static str,
    /// The version concerned.
    pub version: Option<u32>,
    /// The status after it, for `set` and verifications.
    pub status: Option<KeyStatus>,
    /// Who: the account that acted, or for `resolved` the account served.
    pub account_id: Option<AccountId>,
    /// For `resolved`: the service token that read it.
    pub service_token: Option<Uuid>,
    /// When.
    pub at: Timestamp,
}

impl HistoryEntry {
    /// Every action an entry may name.
    pub const ACTIONS: [&'static str; 5] = ["set", "verified", "invalid", "resolved", "removed"];

    /// The line `event` adds to its key's history.
    pub fn of(event: &ProviderKeyEvent) -> Self {
        use ProviderKeyEvent as E;
        let entry = |provider: Provider, action: &'static str, at: Timestamp| Self {
            provider,
            action,
            version: None,
            status: None,
            account_id: None,
            service_token: None,
            at,
        };
        match event {
            E::ProviderKeySet {
                provider,
                version,
                status,
                by,
                at,
                ..
            } => Self {
                version: Some(*version),
                status: Some(*status),
                account_id: Some(*by),
                ..entry(*provider, "set", *at)
            },
            E::ProviderKeyVerified {
                provider,
                version,
                status,
                by,
                at,
                ..
            } => {
                let action = if *status == KeyStatus::Invalid {
                    "invalid"
                } else {
                    "verified"
                };
                Self {
                    version: Some(*version),
                    status: Some(*status),
                    account_id: *by,
                    ..entry(*provider, action, *at)
                }
            }
            E::ProviderKeyRemoved { provider, by, at } => Self {
                account_id: Some(*by),
                ..entry(*provider, "removed", *at)
            },
            E::ProviderKeyResolved {
                provider,
                version,
                account_id,
                service_token,
                at,
                ..
            } => Self {
                version: Some(*version),
                account_id: Some(*account_id),
                service_token: Some(*service_token),
                ..entry(*provider, "resolved", *at)
            },
        }
    }
}
