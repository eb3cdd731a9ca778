//! The pure core of the account backend: events, aggregates and policies.
//!
//! Every aggregate is a pair of functions: `decide(state, command) -> events or error`
//! and `evolve(state, event) -> state`. Nothing here performs I/O, reads a clock or
//! draws random numbers: time, ids and hashes arrive inside commands, so every rule can
//! be tested as given(events) / when(command) / then(events or error) (see [`testing`]).

// `#[derive(Event)]` names `::domain::event`, here as in the crates that use it.
extern crate self as domain;

pub mod access_token;
pub mod account;
pub mod activity;
pub mod catalog;
pub mod checkout;
pub mod credits;
pub mod editor_preferences;
pub mod email;
pub mod event;
pub mod ids;
pub mod invoice;
pub mod money;
pub mod notifications;
pub mod offer;
pub mod operator;
pub mod password;
pub mod profile;
pub mod provider_key;
pub mod purchase;
pub mod reservation;
pub mod session;
pub mod settings;
pub mod subscription;
pub mod telegram;
pub mod testing;
pub mod time;
pub mod workspace;

pub use ids::{AccountId, SessionId, WorkspaceId};
pub use time::Timestamp;

// The event catalogue: one line per event enum (declared with `#[derive(Event)]`, see
// `event::Event`), beside the list of modules above. It generates `StreamCategory` and
// `DomainEvent`; a stream prefix or an event type name used twice fails the build.
event::catalogue::catalogue! {
    /// `account-<uuid>`: registration, password, sessions.
    Account => Account(account::AccountEvent),
    /// `email-<keyed hash of the address>`: uniqueness reservations.
    Email => Reservation(reservation::ReservationEvent),
    /// `activity-<account uuid>`: session last-active times.
    Activity => Activity(activity::ActivityEvent),
    /// `signins-<account uuid>`: refused sign-ins, for the security log.
    SignIns => SignIn(activity::SignInEvent),
    /// `credits-<account uuid>`: the credit ledger.
    Credits => Credits(credits::CreditsEvent),
    /// `subscription-<account uuid>`: the plan.
    Subscription => Subscription(subscription::SubscriptionEvent),
    /// `invoices-<year>`: invoice numbers, without gaps.
    InvoiceSeries => InvoiceSeries(invoice::InvoiceSeriesEvent),
    /// `invoice-<uuid>`: an invoice's payment.
    Invoice => Invoice(invoice::InvoiceEvent),
    /// `purchase-<uuid>`: a credit-pack purchase.
    Purchase => Purchase(purchase::PurchaseEvent),
    /// `checkouts-<account uuid>`: the account's purchases waiting for payment.
    Checkouts => Checkouts(checkout::CheckoutEvent),
    /// `campaign-<offer id>`: claims of an offer.
    Offer => Offer(offer::OfferEvent),
    /// `admintoken-<uuid>`: an operator credential.
    OperatorToken => OperatorToken(operator::OperatorTokenEvent),
    /// `accesstoken-<uuid>`: an API or CLI token of an account.
    AccessToken => AccessToken(access_token::AccessTokenEvent),
    /// `usage-<account uuid>`: request counts of the account's tokens.
    Usage => Usage(access_token::UsageEvent),
    /// `preferences-<account uuid>`: notification preferences.
    Preferences => Preferences(notifications::PreferencesEvent),
    /// `workspace-<uuid>`: a workspace, its members, invitations and settings.
    Workspace => Workspace(workspace::WorkspaceEvent),
    /// `editorprefs-<account uuid>`: editor preferences.
    EditorPreferences => EditorPreferences(editor_preferences::EditorPreferencesEvent),
    /// `providerkeys-<owner uuid>`: an account's or a workspace's provider keys.
    ProviderKeys => ProviderKey(provider_key::ProviderKeyEvent),
    /// `telegram-<account uuid>`: the account's Telegram link and its tokens.
    Telegram => Telegram(telegram::TelegramEvent),
    /// `telegramuser-<keyed hash of the Telegram user id>`: the account it is linked to.
    TelegramUser => TelegramUser(telegram::TelegramUserEvent),
}

/// An event-sourced aggregate: its state is the fold of its events.
pub trait Aggregate: Default + Clone {
    /// What happened; appended to the aggregate's stream.
    type Event;
    /// What a caller asks for.
    type Command;
    /// Why a command was refused.
    type Error;

    /// Decides which events a command causes, without changing the state.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one event to the state.
    fn evolve(&mut self, event: &Self::Event);

    /// The version of this aggregate's snapshot shape, if its folded state is saved as a
    /// snapshot at all ([`Aggregate::to_snapshot`]). A snapshot of another version is
    /// discarded and the stream folded from its first event. Only aggregates whose state
    /// holds no personal data in the clear opt in: a snapshot is not sealed per account.
    const SNAPSHOT_VERSION: Option<u32> = None;

    /// The state as a snapshot (`None`: this aggregate is not snapshotted).
    fn to_snapshot(&self) -> Option<serde_json::Value> {
        None
    }

    /// The state a snapshot of [`Aggregate::SNAPSHOT_VERSION`] holds (`None`: unreadable).
    fn from_snapshot(_snapshot: serde_json::Value) -> Option<Self> {
        None
    }

    /// Folds a history into a state.
    fn from_events<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for event in events {
            state.evolve(event);
        }
        state
    }
}
