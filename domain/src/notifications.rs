//! Notification preferences of an account (`preferences-<account id>`). Each toggle that
//! changes is an event of its own, so the consent history (who opted in to marketing, and
//! when) replays exactly.

use crate::event::Event;
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An e-mail the account may turn on or off. Security notices are not optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Toggle {
    /// A generation completed through the public API.
    GenerationComplete,
    /// The balance dropped below the alert threshold.
    CreditsLow,
    /// An invoice was paid (the receipt, with the PDF).
    BillingReceipts,
    /// The newsletter.
    Newsletter,
    /// Marketing e-mails.
    Marketing,
    /// A generation completed: also to the linked Telegram chat.
    TelegramGenerationComplete,
    /// The balance dropped below the alert threshold: also to the linked Telegram chat.
    TelegramCreditsLow,
}

impl Toggle {
    /// Every toggle, in display order.
    pub const ALL: [Toggle; 7] = [
        Self::GenerationComplete,
        Self::CreditsLow,
        Self::BillingReceipts,
        Self::Newsletter,
        Self::Marketing,
        Self::TelegramGenerationComplete,
        Self::TelegramCreditsLow,
    ];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GenerationComplete => "generation_complete",
            Self::CreditsLow => "credits_low",
            Self::BillingReceipts => "billing_receipts",
            Self::Newsletter => "newsletter",
            Self::Marketing => "marketing",
            Self::TelegramGenerationComplete => "telegram_generation_complete",
            Self::TelegramCreditsLow => "telegram_credits_low",
        }
    }

    /// The toggle named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Its value until the account changes it: service e-mails on, promotions and
    /// Telegram messages off.
    pub fn default_enabled(self) -> bool {
        !matches!(
            self,
            Self::Newsletter
                | Self::Marketing
                | Self::TelegramGenerationComplete
                | Self::TelegramCreditsLow
        )
    }
}

/// What happened to the preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "preferences")]
pub enum PreferencesEvent {
    /// One toggle changed.
    #[event(no_personal_data)]
    NotificationPreferenceChanged {
        /// Which.
        toggle: Toggle,
        /// Its new value.
        enabled: bool,
        /// How: `settings` or `unsubscribe_link`.
        via: String,
        /// When.
        at: Timestamp,
    },
}

/// Change some toggles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPreferences {
    /// New values.
    pub toggles: BTreeMap<Toggle, bool>,
    /// `settings` or `unsubscribe_link`.
    pub via: String,
    /// Now.
    pub at: Timestamp,
}

/// The current toggles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationPreferences {
    changed: BTreeMap<Toggle, bool>,
}

impl NotificationPreferences {
    /// Whether `toggle` is on.
    pub fn enabled(&self, toggle: Toggle) -> bool {
        self.changed
            .get(&toggle)
            .copied()
            .unwrap_or_else(|| toggle.default_enabled())
    }
}

impl Aggregate for NotificationPreferences {
    type Event = PreferencesEvent;
    type Command = SetPreferences;
    type Error = std::convert::Infallible;

    fn decide(&self, c: &SetPreferences) -> Result<Vec<PreferencesEvent>, Self::Error> {
        Ok(c.toggles
            .iter()
            .filter(|(toggle, enabled)| self.enabled(**toggle) != **enabled)
            .map(
                |(toggle, enabled)| PreferencesEvent::NotificationPreferenceChanged {
                    toggle: *toggle,
                    enabled: *enabled,
                    via: c.via.clone(),
                    at: c.at,
                },
            )
            .collect())
    }

    fn evolve(&mut self, event: &PreferencesEvent) {
        let PreferencesEvent::NotificationPreferenceChanged {
            toggle, enabled, ..
        } = event;
        self.changed.insert(*toggle, *enabled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn set(pairs: &[(Toggle, bool)]) -> SetPreferences {
        SetPreferences {
            toggles: pairs.iter().copied().collect(),
            via: "settings".into(),
            at: Timestamp::from_unix_micros(0),
        }
    }

    #[test]
    fn service_mail_is_on_and_promotions_off_until_changed() {
        let state = NotificationPreferences::default();
        assert!(state.enabled(Toggle::GenerationComplete));
        assert!(state.enabled(Toggle::CreditsLow));
        assert!(state.enabled(Toggle::BillingReceipts));
        assert!(!state.enabled(Toggle::Newsletter));
        assert!(!state.enabled(Toggle::Marketing));
    }

    #[test]
    fn only_changes_are_recorded_one_event_per_toggle() {
        let state = given::<NotificationPreferences>([])
            .when(set(&[
                (Toggle::Marketing, true),
                (Toggle::CreditsLow, true),
            ]))
            .then([PreferencesEvent::NotificationPreferenceChanged {
                toggle: Toggle::Marketing,
                enabled: true,
                via: "settings".into(),
                at: Timestamp::from_unix_micros(0),
            }]);
        assert!(state.enabled(Toggle::Marketing));
        given::<NotificationPreferences>([PreferencesEvent::NotificationPreferenceChanged {
            toggle: Toggle::Marketing,
            enabled: true,
            via: "settings".into(),
            at: Timestamp::from_unix_micros(0),
        }])
        .when(set(&[(Toggle::Marketing, true)]))
        .then([]);
    }
}
