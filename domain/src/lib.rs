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
pub mod credits;
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
pub mod purchase;
pub mod reservation;
pub mod session;
pub mod subscription;
pub mod testing;
pub mod time;

pub use event::{DomainEvent, StreamCategory};
pub use ids::{AccountId, SessionId};
pub use time::Timestamp;

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
