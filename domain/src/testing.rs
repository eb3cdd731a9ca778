//! A given / when / then harness for aggregates, so rules are tested without I/O:
//!
//! ```
//! use domain::testing::given;
//! use domain::reservation::{EmailReservation, ReservationCommand, ReservationEvent};
//! use domain::{AccountId, Timestamp};
//! let (a, b) = (AccountId(uuid::Uuid::from_u128(1)), AccountId(uuid::Uuid::from_u128(2)));
//! let at = Timestamp::from_unix_micros(0);
//! given::<EmailReservation>([ReservationEvent::EmailReserved { account_id: a, at }])
//!     .when(ReservationCommand::Reserve { account_id: b, holder_abandoned: false, at })
//!     .then_error(domain::reservation::ReservationError::EmailTaken);
//! ```

use crate::Aggregate;
use std::fmt::Debug;

/// A state built from a history of events.
pub struct Given<A: Aggregate> {
    state: A,
}

/// Starts a scenario from past events.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let mut state = A::default();
    for event in history {
        state.evolve(&event);
    }
    Given { state }
}

impl<A: Aggregate> Given<A> {
    /// Decides a command against the state.
    pub fn when(self, command: A::Command) -> Then<A> {
        let result = self.state.decide(&command);
        Then {
            state: self.state,
            result,
        }
    }
}

/// The outcome of a decision, to be checked.
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: Debug + PartialEq,
    A::Error: Debug + PartialEq,
{
    /// Asserts the events decided, and returns the state after applying them.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "decided events differ");
                let mut state = self.state;
                for event in &events {
                    state.evolve(event);
                }
                state
            }
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// Asserts that the command was refused with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: A::Error) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(error, expected),
        }
    }
}
