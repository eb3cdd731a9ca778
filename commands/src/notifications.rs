//! Notification preferences, and the signed one-click unsubscribe links of promotional
//! e-mails (RFC 8058), which change a preference without a session.

use crate::clock::Clock;
use crate::error::CommandError;
use crate::executor::{CommandContext, Executor};
use domain::notifications::{NotificationPreferences, PreferencesEvent, SetPreferences, Toggle};
use domain::{AccountId, Aggregate, DomainEvent, StreamCategory, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::EventDecoder;
use store::GlobalPosition;

/// One recorded preference change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreferenceChange {
    /// Which toggle.
    pub toggle: Toggle,
    /// Its new value.
    pub enabled: bool,
    /// How (`settings`, `unsubscribe_link`).
    pub via: String,
    /// When.
    pub at: Timestamp,
}

/// Preference commands.
#[derive(Clone)]
pub struct Notifications {
    exec: Executor,
    clock: Arc<dyn Clock>,
}

impl Notifications {
    /// Handlers over `exec`.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>) -> Self {
        Self { exec, clock }
    }

    /// The current toggles of `account`.
    pub async fn preferences(
        &self,
        account: AccountId,
    ) -> Result<NotificationPreferences, CommandError> {
        Ok(self
            .exec
            .load::<NotificationPreferences>(&StreamCategory::Preferences.stream(account))
            .await?
            .state)
    }

    /// A page of the changes of `account`'s preferences, oldest first (its consent
    /// history): at most `limit` after the first `skip`, and the `skip` of the next page
    /// if there is one.
    pub async fn history(
        &self,
        account: AccountId,
        skip: u64,
        limit: usize,
    ) -> Result<(Vec<PreferenceChange>, Option<u64>), CommandError> {
        let stream = StreamCategory::Preferences.stream(account);
        let mut recorded = self
            .exec
            .log()
            .read_stream(&stream, skip, limit.saturating_add(1))
            .await?;
        let next = (recorded.len() > limit).then(|| skip + limit as u64);
        recorded.truncate(limit);
        let mut changes = Vec::new();
        for recorded in recorded {
            let decoded = self
                .exec
                .codec()
                .decode_event(recorded)
                .await
                .map_err(|e| CommandError::Internal(e.to_string()))?;
            if let Some(DomainEvent::Preferences(
                PreferencesEvent::NotificationPreferenceChanged {
                    toggle,
                    enabled,
                    via,
                    at,
                },
            )) = decoded.event()
            {
                changes.push(PreferenceChange {
                    toggle: *toggle,
                    enabled: *enabled,
                    via: via.clone(),
                    at: *at,
                });
            }
        }
        Ok((changes, next))
    }

    /// Sets `toggles`; one event per toggle that changes. `via` says how (`settings`,
    /// `unsubscribe-link`), for the consent history.
    #[tracing::instrument(skip_all, fields(%account, via))]
    pub async fn set(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        toggles: BTreeMap<Toggle, bool>,
        via: &str,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        let command = SetPreferences {
            toggles,
            via: via.to_owned(),
            at,
        };
        let executed = self
            .exec
            .execute::<NotificationPreferences, _>(
                &StreamCategory::Preferences.stream(account),
                ctx,
                Some(account.0),
                at,
                |p| p.decide(&command).map_err(|never| match never {}),
            )
            .await?;
        Ok(executed.position)
    }
}
