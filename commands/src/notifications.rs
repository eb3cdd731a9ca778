//! Notification preferences, and the signed one-click unsubscribe links of promotional
//! e-mails (RFC 8058), which change a preference without a session.

use crate::clock::Clock;
use crate::error::CommandError;
use crate::executor::{CommandContext, Executor};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::notifications::{NotificationPreferences, PreferencesEvent, SetPreferences, Toggle};
use domain::{AccountId, Aggregate, DomainEvent, StreamCategory, Timestamp};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::sync::Arc;
use store::EventDecoder;
use store::GlobalPosition;
use uuid::Uuid;

/// Signs and verifies the tokens of one-click unsubscribe links (HMAC-SHA256 with a key
/// derived from the master key): `account.toggle.signature`.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    key: [u8; 32],
}

impl UnsubscribeLinks {
    /// Links signed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn signature(&self, payload: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// The token of a one-click unsubscribe link.
    pub fn token(&self, account: AccountId, toggle: Toggle) -> String {
        let payload = format!("{}.{}", account.0.simple(), toggle.as_str());
        format!("{payload}.{}", self.signature(&payload))
    }

    /// What a link's token unsubscribes, if this service signed it for a promotion.
    pub fn verify(&self, token: &str) -> Option<(AccountId, Toggle)> {
        let (payload, signature) = token.rsplit_once('.')?;
        let expected = self.signature(payload);
        // Constant-time comparison: the signature is a secret until it matches.
        let same = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return None;
        }
        let (account, toggle) = payload.split_once('.')?;
        let toggle = Toggle::parse(toggle).filter(|t| !t.default_enabled())?;
        Some((AccountId(Uuid::parse_str(account).ok()?), toggle))
    }
}

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

    /// Every change of `account`'s preferences, oldest first: its consent history.
    pub async fn history(&self, account: AccountId) -> Result<Vec<PreferenceChange>, CommandError> {
        let stream = StreamCategory::Preferences.stream(account);
        let mut changes = Vec::new();
        for recorded in self.exec.log().read_stream_to_end(&stream).await? {
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
        Ok(changes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_links_are_signed_and_only_for_promotions() {
        let links = UnsubscribeLinks::new([1; 32]);
        let account = AccountId(Uuid::new_v4());
        let token = links.token(account, Toggle::Marketing);
        assert_eq!(links.verify(&token), Some((account, Toggle::Marketing)));
        let forged = token.replace("marketing", "newsletter");
        assert_eq!(links.verify(&forged), None);
        assert_eq!(UnsubscribeLinks::new([2; 32]).verify(&token), None);
        assert_eq!(links.verify("garbage"), None);
        let service = links.token(account, Toggle::CreditsLow);
        assert_eq!(
            links.verify(&service),
            None,
            "service mail is not unsubscribed by link"
        );
    }
}
