//! E-mail reservations: the uniqueness of an address is the revision check on its
//! `email-<keyed hash>` stream, never a read-then-write race on a table.

use crate::event::Event;
use crate::{AccountId, Aggregate, Timestamp};
use serde::{Deserialize, Serialize};

/// What happened to a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "email")]
pub enum ReservationEvent {
    /// The address now belongs to `account_id`.
    #[event(no_personal_data)]
    EmailReserved {
        /// The holder.
        account_id: AccountId,
        /// When.
        at: Timestamp,
    },
    /// The address is free again.
    #[event(no_personal_data)]
    EmailReleased {
        /// The former holder.
        account_id: AccountId,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReservationCommand {
    /// Claim the address for `account_id`.
    Reserve {
        /// The claimant.
        account_id: AccountId,
        /// The current holder never finished registering (its account stream does not
        /// exist), so the address may be taken over.
        holder_abandoned: bool,
        /// Now.
        at: Timestamp,
    },
    /// Give the address up.
    Release {
        /// Only the holder may release.
        account_id: AccountId,
        /// Now.
        at: Timestamp,
    },
}

/// Why a reservation command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReservationError {
    /// Another account holds the address.
    #[error("the e-mail address is already registered")]
    EmailTaken,
}

/// Who holds an address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmailReservation {
    /// The holder, if any.
    pub holder: Option<AccountId>,
    /// When the holder reserved it.
    pub reserved_at: Option<Timestamp>,
}

impl Aggregate for EmailReservation {
    type Event = ReservationEvent;
    type Command = ReservationCommand;
    type Error = ReservationError;

    fn decide(
        &self,
        command: &ReservationCommand,
    ) -> Result<Vec<ReservationEvent>, ReservationError> {
        match command {
            ReservationCommand::Reserve {
                account_id,
                holder_abandoned,
                at,
            } => match self.holder {
                Some(holder) if holder == *account_id => Ok(vec![]),
                Some(holder) if *holder_abandoned => Ok(vec![
                    ReservationEvent::EmailReleased {
                        account_id: holder,
                        at: *at,
                    },
                    ReservationEvent::EmailReserved {
                        account_id: *account_id,
                        at: *at,
                    },
                ]),
                Some(_) => Err(ReservationError::EmailTaken),
                None => Ok(vec![ReservationEvent::EmailReserved {
                    account_id: *account_id,
                    at: *at,
                }]),
            },
            ReservationCommand::Release { account_id, at } => match self.holder {
                Some(holder) if holder == *account_id => {
                    Ok(vec![ReservationEvent::EmailReleased {
                        account_id: *account_id,
                        at: *at,
                    }])
                }
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(&mut self, event: &ReservationEvent) {
        match event {
            ReservationEvent::EmailReserved { account_id, at } => {
                self.holder = Some(*account_id);
                self.reserved_at = Some(*at);
            }
            ReservationEvent::EmailReleased { .. } => {
                self.holder = None;
                self.reserved_at = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use uuid::Uuid;

    fn ids() -> (AccountId, AccountId) {
        (AccountId(Uuid::from_u128(1)), AccountId(Uuid::from_u128(2)))
    }
    const AT: fn() -> Timestamp = || Timestamp::from_unix_micros(1_000);

    #[test]
    fn a_free_address_is_reserved() {
        let (a, _) = ids();
        given::<EmailReservation>([])
            .when(ReservationCommand::Reserve {
                account_id: a,
                holder_abandoned: false,
                at: AT(),
            })
            .then([ReservationEvent::EmailReserved {
                account_id: a,
                at: AT(),
            }]);
    }

    #[test]
    fn a_held_address_is_refused_to_another_account() {
        let (a, b) = ids();
        given::<EmailReservation>([ReservationEvent::EmailReserved {
            account_id: a,
            at: AT(),
        }])
        .when(ReservationCommand::Reserve {
            account_id: b,
            holder_abandoned: false,
            at: AT(),
        })
        .then_error(ReservationError::EmailTaken);
    }

    #[test]
    fn reserving_again_for_the_holder_changes_nothing() {
        let (a, _) = ids();
        given::<EmailReservation>([ReservationEvent::EmailReserved {
            account_id: a,
            at: AT(),
        }])
        .when(ReservationCommand::Reserve {
            account_id: a,
            holder_abandoned: false,
            at: AT(),
        })
        .then([]);
    }

    #[test]
    fn an_abandoned_reservation_is_taken_over() {
        let (a, b) = ids();
        let state = given::<EmailReservation>([ReservationEvent::EmailReserved {
            account_id: a,
            at: AT(),
        }])
        .when(ReservationCommand::Reserve {
            account_id: b,
            holder_abandoned: true,
            at: AT(),
        })
        .then([
            ReservationEvent::EmailReleased {
                account_id: a,
                at: AT(),
            },
            ReservationEvent::EmailReserved {
                account_id: b,
                at: AT(),
            },
        ]);
        assert_eq!(state.holder, Some(b));
    }

    #[test]
    fn a_released_address_can_be_reserved_again() {
        let (a, b) = ids();
        given::<EmailReservation>([
            ReservationEvent::EmailReserved {
                account_id: a,
                at: AT(),
            },
            ReservationEvent::EmailReleased {
                account_id: a,
                at: AT(),
            },
        ])
        .when(ReservationCommand::Reserve {
            account_id: b,
            holder_abandoned: false,
            at: AT(),
        })
        .then([ReservationEvent::EmailReserved {
            account_id: b,
            at: AT(),
        }]);
    }

    #[test]
    fn only_the_holder_releases() {
        let (a, b) = ids();
        given::<EmailReservation>([ReservationEvent::EmailReserved {
            account_id: a,
            at: AT(),
        }])
        .when(ReservationCommand::Release {
            account_id: b,
            at: AT(),
        })
        .then([]);
    }
}
