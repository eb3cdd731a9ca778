//! Command handlers.
//!
//! A command loads its aggregate's stream, decides with the pure domain, and appends the
//! resulting events with the expected revision, retrying on a concurrent change
//! ([`executor`]). Around that: personal data sealed with per-account keys ([`codec`], with the keys of
//! the `vault` crate), password hashing ([`passwords`]), bearer tokens ([`tokens`]), sign-in
//! throttling ([`throttle`]), idempotency keys ([`idempotency`]) and session activity
//! ([`activity`]).

pub mod access_tokens;
pub mod accounts;
pub mod activity;
pub mod avatar;
pub mod billing;
pub mod clock;
pub mod codec;
pub mod credits;
pub mod editor_preferences;
pub mod error;
pub mod executor;
pub mod idempotency;
pub mod metrics;
pub mod notifications;
pub mod operator_tokens;
pub mod passwords;
pub mod payments;
pub mod provider_keys;
pub mod rate_limit;
pub mod telegram;
pub mod throttle;
pub mod tokens;
pub mod totp;
pub mod usage;
pub mod workspaces;

pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::EventCodec;
pub use error::CommandError;
pub use executor::{CommandContext, Executor};
pub use store::{DecodedEvent, EventEnvelope, Payload};
