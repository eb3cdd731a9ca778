//! The union of every event the log holds, and the stream naming scheme.

use crate::access_token::{AccessTokenEvent, UsageEvent};
use crate::account::AccountEvent;
use crate::activity::ActivityEvent;
use crate::admin::AdminTokenEvent;
use crate::campaign::CampaignEvent;
use crate::credits::CreditsEvent;
use crate::invoice::{InvoiceEvent, InvoiceSeriesEvent};
use crate::notifications::PreferencesEvent;
use crate::purchase::PurchaseEvent;
use crate::reservation::ReservationEvent;
use crate::subscription::SubscriptionEvent;
use serde::Serialize;
use std::fmt;

/// The kind of aggregate a stream belongs to; a stream is named `<category>-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamCategory {
    /// `account-<uuid>`: registration, password, sessions.
    Account,
    /// `email-<keyed hash of the address>`: uniqueness reservations.
    Email,
    /// `activity-<account uuid>`: session last-active times.
    Activity,
    /// `credits-<account uuid>`: the credit ledger.
    Credits,
    /// `subscription-<account uuid>`: the plan.
    Subscription,
    /// `invoices-<year>`: invoice numbers, without gaps.
    InvoiceSeries,
    /// `invoice-<uuid>`: an invoice's payment.
    Invoice,
    /// `purchase-<uuid>`: a credit-pack purchase.
    Purchase,
    /// `campaign-<offer id>`: claims of an offer.
    Campaign,
    /// `admintoken-<uuid>`: an operator credential.
    AdminToken,
    /// `accesstoken-<uuid>`: an API or CLI token of an account.
    AccessToken,
    /// `usage-<account uuid>`: request counts of the account's tokens.
    Usage,
    /// `preferences-<account uuid>`: notification preferences.
    Preferences,
}

impl StreamCategory {
    /// Every category, for decoding by prefix.
    pub const ALL: [StreamCategory; 13] = [
        Self::Account,
        Self::Email,
        Self::Activity,
        Self::Credits,
        Self::Subscription,
        Self::InvoiceSeries,
        Self::Invoice,
        Self::Purchase,
        Self::Campaign,
        Self::AdminToken,
        Self::AccessToken,
        Self::Usage,
        Self::Preferences,
    ];

    /// The stream-name prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Email => "email",
            Self::Activity => "activity",
            Self::Credits => "credits",
            Self::Subscription => "subscription",
            Self::InvoiceSeries => "invoices",
            Self::Invoice => "invoice",
            Self::Purchase => "purchase",
            Self::Campaign => "campaign",
            Self::AdminToken => "admintoken",
            Self::AccessToken => "accesstoken",
            Self::Usage => "usage",
            Self::Preferences => "preferences",
        }
    }

    /// The stream of one instance.
    pub fn stream(self, id: impl fmt::Display) -> String {
        format!("{}-{}", self.prefix(), id)
    }

    /// The id part of `stream` if it belongs to this category.
    pub fn id_in(self, stream: &str) -> Option<&str> {
        stream.strip_prefix(self.prefix())?.strip_prefix('-')
    }

    /// The category of a stream name.
    pub fn of_stream(stream: &str) -> Option<Self> {
        let (prefix, _) = stream.split_once('-')?;
        Self::ALL.into_iter().find(|c| c.prefix() == prefix)
    }
}

/// Any event of the domain. Serialises as the inner event, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum DomainEvent {
    /// Of an account stream.
    Account(AccountEvent),
    /// Of an e-mail reservation stream.
    Reservation(ReservationEvent),
    /// Of a session activity stream.
    Activity(ActivityEvent),
    /// Of a credit ledger.
    Credits(CreditsEvent),
    /// Of a subscription.
    Subscription(SubscriptionEvent),
    /// Of a yearly invoice series.
    InvoiceSeries(InvoiceSeriesEvent),
    /// Of an invoice.
    Invoice(InvoiceEvent),
    /// Of a purchase.
    Purchase(PurchaseEvent),
    /// Of a campaign.
    Campaign(CampaignEvent),
    /// Of an operator token.
    AdminToken(AdminTokenEvent),
    /// Of an API or CLI token.
    AccessToken(AccessTokenEvent),
    /// Of token usage counts.
    Usage(UsageEvent),
    /// Of notification preferences.
    Preferences(PreferencesEvent),
}

/// Calls `$body` with the inner event of every variant bound to `$e`.
macro_rules! each_variant {
    ($value:expr, $e:ident => $body:expr) => {
        match $value {
            DomainEvent::Account($e) => $body,
            DomainEvent::Reservation($e) => $body,
            DomainEvent::Activity($e) => $body,
            DomainEvent::Credits($e) => $body,
            DomainEvent::Subscription($e) => $body,
            DomainEvent::InvoiceSeries($e) => $body,
            DomainEvent::Invoice($e) => $body,
            DomainEvent::Purchase($e) => $body,
            DomainEvent::Campaign($e) => $body,
            DomainEvent::AdminToken($e) => $body,
            DomainEvent::AccessToken($e) => $body,
            DomainEvent::Usage($e) => $body,
            DomainEvent::Preferences($e) => $body,
        }
    };
}

impl DomainEvent {
    /// The event's name as stored in the log. Names are never renamed or reused.
    pub fn event_type(&self) -> &'static str {
        each_variant!(self, e => e.event_type())
    }

    /// The category of stream this event belongs in.
    pub fn category(&self) -> StreamCategory {
        match self {
            Self::Account(_) => StreamCategory::Account,
            Self::Reservation(_) => StreamCategory::Email,
            Self::Activity(_) => StreamCategory::Activity,
            Self::Credits(_) => StreamCategory::Credits,
            Self::Subscription(_) => StreamCategory::Subscription,
            Self::InvoiceSeries(_) => StreamCategory::InvoiceSeries,
            Self::Invoice(_) => StreamCategory::Invoice,
            Self::Purchase(_) => StreamCategory::Purchase,
            Self::Campaign(_) => StreamCategory::Campaign,
            Self::AdminToken(_) => StreamCategory::AdminToken,
            Self::AccessToken(_) => StreamCategory::AccessToken,
            Self::Usage(_) => StreamCategory::Usage,
            Self::Preferences(_) => StreamCategory::Preferences,
        }
    }

    /// Top-level fields of the serialised event that hold personal or secret data.
    pub fn personal_fields(&self) -> &'static [&'static str] {
        match self {
            Self::Account(e) => e.personal_fields(),
            Self::Usage(e) => e.personal_fields(),
            _ => &[],
        }
    }

    /// Reads an event of a stream of `category` (tagged by `type`).
    pub fn deserialize_in<'de, D: serde::Deserializer<'de>>(
        category: StreamCategory,
        deserializer: D,
    ) -> Result<Self, D::Error> {
        use serde::Deserialize;
        Ok(match category {
            StreamCategory::Account => Self::Account(AccountEvent::deserialize(deserializer)?),
            StreamCategory::Email => {
                Self::Reservation(ReservationEvent::deserialize(deserializer)?)
            }
            StreamCategory::Activity => Self::Activity(ActivityEvent::deserialize(deserializer)?),
            StreamCategory::Credits => Self::Credits(CreditsEvent::deserialize(deserializer)?),
            StreamCategory::Subscription => {
                Self::Subscription(SubscriptionEvent::deserialize(deserializer)?)
            }
            StreamCategory::InvoiceSeries => {
                Self::InvoiceSeries(InvoiceSeriesEvent::deserialize(deserializer)?)
            }
            StreamCategory::Invoice => Self::Invoice(InvoiceEvent::deserialize(deserializer)?),
            StreamCategory::Purchase => Self::Purchase(PurchaseEvent::deserialize(deserializer)?),
            StreamCategory::Campaign => Self::Campaign(CampaignEvent::deserialize(deserializer)?),
            StreamCategory::AdminToken => {
                Self::AdminToken(AdminTokenEvent::deserialize(deserializer)?)
            }
            StreamCategory::AccessToken => {
                Self::AccessToken(AccessTokenEvent::deserialize(deserializer)?)
            }
            StreamCategory::Usage => Self::Usage(UsageEvent::deserialize(deserializer)?),
            StreamCategory::Preferences => {
                Self::Preferences(PreferencesEvent::deserialize(deserializer)?)
            }
        })
    }

    /// The schema version this code writes. Older versions are upcast when read.
    pub fn schema_version(&self) -> u32 {
        CURRENT_SCHEMA_VERSION
    }
}

/// Every event type is at version 1 so far.
pub const CURRENT_SCHEMA_VERSION: u32 = 1;

macro_rules! member {
    ($variant:ident, $event:ty) => {
        impl From<$event> for DomainEvent {
            fn from(e: $event) -> Self {
                Self::$variant(e)
            }
        }

        impl TryFrom<DomainEvent> for $event {
            type Error = DomainEvent;
            fn try_from(e: DomainEvent) -> Result<Self, DomainEvent> {
                match e {
                    DomainEvent::$variant(e) => Ok(e),
                    other => Err(other),
                }
            }
        }
    };
}

member!(Account, AccountEvent);
member!(Reservation, ReservationEvent);
member!(Activity, ActivityEvent);
member!(Credits, CreditsEvent);
member!(Subscription, SubscriptionEvent);
member!(InvoiceSeries, InvoiceSeriesEvent);
member!(Invoice, InvoiceEvent);
member!(Purchase, PurchaseEvent);
member!(Campaign, CampaignEvent);
member!(AdminToken, AdminTokenEvent);
member!(AccessToken, AccessTokenEvent);
member!(Usage, UsageEvent);
member!(Preferences, PreferencesEvent);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_by_category() {
        assert_eq!(StreamCategory::Account.stream("42"), "account-42");
        assert_eq!(
            StreamCategory::of_stream("email-ab12"),
            Some(StreamCategory::Email)
        );
        assert_eq!(
            StreamCategory::of_stream("activity-x"),
            Some(StreamCategory::Activity)
        );
        assert_eq!(StreamCategory::of_stream("unknown-x"), None);
        assert_eq!(StreamCategory::of_stream("account"), None);
        assert_eq!(StreamCategory::Account.id_in("account-42"), Some("42"));
        assert_eq!(StreamCategory::Account.id_in("activity-42"), None);
        assert_eq!(
            StreamCategory::of_stream("invoices-2026"),
            Some(StreamCategory::InvoiceSeries)
        );
        assert_eq!(
            StreamCategory::of_stream("invoice-x"),
            Some(StreamCategory::Invoice)
        );
    }
}
