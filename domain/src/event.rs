//! The event catalogue: every event the log holds, and the stream naming scheme.
//!
//! Each event enum declares itself once with `#[derive(Event)]` (see [`Event`]): its stream
//! prefix, and per variant its schema version and personal fields; the type name is the
//! variant's, as serde tags it. The one list, `catalogue!` in the crate root (`lib.rs`,
//! beside the modules' list), turns those enums into [`StreamCategory`] and [`DomainEvent`]
//! with everything the codec needs. Adding an event enum is its declaration and one line in
//! that list.

pub(crate) mod catalogue;

pub use crate::{DomainEvent, StreamCategory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// Derives [`Event`] from the declarations on an event enum; see [`Event`].
pub use domain_macros::Event;

/// The schema version of an event type that does not declare one: `#[event(version = N)]`
/// is only written once a type's stored shape changes (and an upcaster in the codec brings
/// older payloads to it).
pub const DEFAULT_SCHEMA_VERSION: u32 = 1;

/// What the catalogue knows of one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventDeclaration {
    /// The name stored in the log (serde's `type` tag). Never renamed or reused.
    pub event_type: &'static str,
    /// The schema version this code writes.
    pub schema_version: u32,
    /// Top-level fields of the serialised event that hold personal or secret data: the
    /// codec seals them with the data subject's key.
    pub personal_fields: &'static [&'static str],
}

/// The declaration of an enum of the events of one stream category, written with
/// `#[derive(Event)]`:
///
/// - on the enum, `#[event(stream = "...")]`: the stream prefix (lower-case letters and
///   digits); the enum is then listed once in this module's `catalogue!`;
/// - on every variant, its personal fields: `personal(field, ...)` names the top-level
///   fields the codec seals (each must exist in the variant), `no_personal_data` says
///   there are none. A variant that says neither does not compile, so no personal field
///   is stored in plain text by omission;
/// - optionally, `version = N` on a variant: the schema version it is written at
///   (default [`DEFAULT_SCHEMA_VERSION`]); older stored versions are upcast by
///   `commands::codec::upcast`.
///
/// The type name is the variant's name as serde tags it (`#[serde(rename = "...")]` on a
/// variant or a field is honoured); the enum must be `#[serde(tag = "type")]` without
/// renaming rules. The catalogue refuses at compile time a stream prefix or a type name
/// used twice.
///
/// ```
/// use domain::event::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Event)]
/// #[serde(tag = "type")]
/// #[event(stream = "pet")] // streams are named `pet-<id>`
/// enum PetEvent {
///     #[event(personal(owner_name, vet))]
///     PetAdopted { owner_name: String, vet: Option<String>, legs: u8 },
///     #[event(version = 2, no_personal_data)]
///     PetFed { grams: u32 },
/// }
///
/// let adopted = PetEvent::PetAdopted { owner_name: "Ada".into(), vet: None, legs: 4 };
/// assert_eq!(PetEvent::STREAM, "pet");
/// assert_eq!(adopted.event_type(), "PetAdopted");
/// assert_eq!(adopted.personal_fields(), ["owner_name", "vet"]);
/// assert_eq!(adopted.schema_version(), 1);
/// assert_eq!(PetEvent::PetFed { grams: 50 }.schema_version(), 2);
/// ```
///
/// A variant without a declaration does not compile:
///
/// ```compile_fail
/// use domain::event::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Event)]
/// #[serde(tag = "type")]
/// #[event(stream = "pet")]
/// enum PetEvent {
///     #[event(personal(owner_name, vet))]
///     PetAdopted { owner_name: String, vet: Option<String>, legs: u8 },
///     PetFed { grams: u32 }, // error: does not declare its personal fields
/// }
/// ```
///
/// Nor does a personal field the variant does not have:
///
/// ```compile_fail
/// use domain::event::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Event)]
/// #[serde(tag = "type")]
/// #[event(stream = "pet")]
/// enum PetEvent {
///     #[event(personal(owner_name, vet_name))] // error: no field `vet_name`
///     PetAdopted { owner_name: String, vet: Option<String>, legs: u8 },
/// }
/// ```
pub trait Event: Serialize + DeserializeOwned {
    /// The stream-name prefix: streams of these events are named `<STREAM>-<id>`.
    const STREAM: &'static str;
    /// Every event type of the enum, in declaration order.
    const DECLARATIONS: &'static [EventDeclaration];

    /// The declaration of this event's type.
    fn declaration(&self) -> &'static EventDeclaration;

    /// The event's name as stored in the log.
    fn event_type(&self) -> &'static str {
        self.declaration().event_type
    }

    /// Top-level fields holding personal or secret data, sealed with the subject's key.
    fn personal_fields(&self) -> &'static [&'static str] {
        self.declaration().personal_fields
    }

    /// The schema version this code writes.
    fn schema_version(&self) -> u32 {
        self.declaration().schema_version
    }
}

impl StreamCategory {
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

    /// The declaration of the event type `event_type` in streams of this category.
    pub fn declaration_of(self, event_type: &str) -> Option<&'static EventDeclaration> {
        self.declarations()
            .iter()
            .find(|declaration| declaration.event_type == event_type)
    }
}

impl DomainEvent {
    /// The event's name as stored in the log. Names are never renamed or reused.
    pub fn event_type(&self) -> &'static str {
        self.declaration().event_type
    }

    /// Top-level fields of the serialised event that hold personal or secret data.
    pub fn personal_fields(&self) -> &'static [&'static str] {
        self.declaration().personal_fields
    }

    /// The schema version this code writes. Older versions are upcast when read.
    pub fn schema_version(&self) -> u32 {
        self.declaration().schema_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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

    /// What logs already hold, one event type a line: stream prefix, type name, personal
    /// fields. Stored events must keep decoding and sealing the same way, so none of these
    /// may disappear or change; new categories and types need not be added here.
    const STORED: &str = "
        account AccountRegistered email display_name password_hash
        account PasswordChanged password_hash
        account SessionStarted origin
        account NewDeviceSignedIn device ip location
        account SessionReauthenticated
        account SessionRevoked
        account TotpEnrollmentStarted secret
        account TotpEnabled
        account TotpDisabled
        account RecoveryCodesRegenerated
        account RecoveryCodeUsed
        account ProfileUpdated display_name bio
        account AvatarChanged
        account AvatarRemoved
        account AccountDeleted
        email EmailReserved
        email EmailReleased
        activity SessionsActive
        credits CreditsGranted
        credits CreditsHeld
        credits CreditsSpent
        credits HoldReleased
        credits CreditsExpired
        subscription SubscriptionStarted
        subscription PlanUpgraded
        subscription PlanChangeScheduled
        subscription PlanChangeCancelled
        subscription CancellationScheduled
        subscription SubscriptionResumed
        subscription SubscriptionRenewed
        subscription SubscriptionEnded
        invoices InvoiceIssued
        invoice InvoicePaid
        purchase PurchaseStarted
        purchase PurchaseCompleted
        campaign ClaimRedeemed
        admintoken AdminTokenCreated
        admintoken AdminTokenRevoked
        accesstoken AccessTokenCreated label
        accesstoken AccessTokenRotated
        accesstoken AccessTokenRevoked
        usage TokenUsed last_ip last_user_agent
        preferences NotificationPreferenceChanged
    ";

    #[test]
    fn stored_names_and_personal_fields_stay_as_logs_hold_them() {
        let mut lines = 0;
        for line in STORED.lines().filter(|line| !line.trim().is_empty()) {
            let mut words = line.split_whitespace();
            let (prefix, event_type) = (words.next().unwrap(), words.next().unwrap());
            let personal: Vec<&str> = words.collect();
            let stream = format!("{prefix}-x");
            let category = StreamCategory::of_stream(&stream)
                .unwrap_or_else(|| panic!("no category reads `{stream}`"));
            assert_eq!(category.prefix(), prefix);
            let declaration = category
                .declaration_of(event_type)
                .unwrap_or_else(|| panic!("`{prefix}` streams no longer read {event_type}"));
            assert_eq!(
                declaration.personal_fields, personal,
                "personal fields of {event_type}"
            );
            lines += 1;
        }
        assert_eq!(lines, 43);
    }

    #[test]
    fn every_category_reads_back_its_own_streams_and_has_events() {
        for category in StreamCategory::ALL {
            assert_eq!(
                StreamCategory::of_stream(&category.stream("x")),
                Some(category)
            );
            assert!(!category.declarations().is_empty(), "{category:?}");
        }
    }

    #[test]
    fn the_catalogue_refuses_a_prefix_or_a_type_name_used_twice() {
        let declare = |event_type| EventDeclaration {
            event_type,
            schema_version: 1,
            personal_fields: &[],
        };
        let (a, b, c) = (declare("A"), declare("B"), declare("C"));
        let check = |categories: &[(&str, &[EventDeclaration])]| {
            std::panic::catch_unwind(|| catalogue::check_distinct(categories))
                .map_err(|panic| *panic.downcast::<String>().unwrap())
        };
        assert_eq!(check(&[("x", &[a, b]), ("y", &[c])]), Ok(()));
        assert_eq!(check(&[("x", &[a]), ("x", &[b])]), Err("x".into()));
        assert_eq!(check(&[("x", &[a, b, a])]), Err("A".into()));
        assert_eq!(check(&[("x", &[a, b]), ("y", &[c, b])]), Err("B".into()));
    }

    /// Exercises the derive's corners; not part of the catalogue.
    #[derive(Debug, Serialize, Deserialize, Event)]
    #[serde(tag = "type")]
    #[event(stream = "sample")]
    enum SampleEvent {
        #[event(personal(email, note))]
        Registered {
            #[serde(rename = "mail")]
            email: String,
            note: Option<String>,
            count: u32,
        },
        #[serde(rename = "OldName")]
        #[event(version = 3, no_personal_data)]
        Renamed { count: u32 },
        #[event(no_personal_data)]
        Nothing,
    }

    #[test]
    fn the_derive_follows_serde_names_and_defaults_the_version() {
        let registered = SampleEvent::Registered {
            email: "a@b.c".into(),
            note: None,
            count: 1,
        };
        assert_eq!(SampleEvent::STREAM, "sample");
        assert_eq!(registered.event_type(), "Registered");
        assert_eq!(registered.personal_fields(), ["mail", "note"]);
        assert_eq!(registered.schema_version(), DEFAULT_SCHEMA_VERSION);
        let json = serde_json::to_value(&registered).unwrap();
        for field in registered.personal_fields() {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }

        let renamed = SampleEvent::Renamed { count: 2 };
        assert_eq!(renamed.event_type(), "OldName");
        assert_eq!(serde_json::to_value(&renamed).unwrap()["type"], "OldName");
        assert_eq!(renamed.schema_version(), 3);
        assert!(renamed.personal_fields().is_empty());
        assert_eq!(SampleEvent::Nothing.event_type(), "Nothing");

        let names: Vec<_> = SampleEvent::DECLARATIONS
            .iter()
            .map(|d| d.event_type)
            .collect();
        assert_eq!(names, ["Registered", "OldName", "Nothing"]);
    }
}
