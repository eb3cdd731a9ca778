//! The checkouts an account has open (`checkouts-<account id>`): credit-pack purchases
//! started at the payment provider and not completed yet. Each purchase is a stream of
//! its own (`purchase-<id>`); this one exists so that a new purchase is decided against a
//! count of the pending ones that no concurrent purchase can slip past (two purchases race
//! on this stream's expected revision). A checkout the buyer abandons stops counting when
//! it would have expired at the provider ([`CHECKOUT_LIFETIME`]).

use crate::event::Event;
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// How long a checkout counts as pending unless completed first: as long as a provider's
/// checkout page stays payable (Stripe's default).
pub const CHECKOUT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What happened to an account's checkouts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "checkouts")]
pub enum CheckoutEvent {
    /// A purchase was started: pending until completed or `expires_at`.
    #[event(no_personal_data)]
    CheckoutOpened {
        /// The purchase (`purchase-<id>`).
        purchase_id: Uuid,
        /// It stops counting then.
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// The purchase was completed (or never reached the provider): it no longer counts.
    #[event(no_personal_data)]
    CheckoutClosed {
        /// The purchase.
        purchase_id: Uuid,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of an account's checkouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutCommand {
    /// Count a new purchase, if fewer than `max_pending` are pending.
    Open {
        /// The purchase.
        purchase_id: Uuid,
        /// Pending purchases the account may have at most.
        max_pending: u32,
        /// Now.
        at: Timestamp,
    },
    /// Stop counting a purchase (completed, or abandoned before reaching the provider).
    Close {
        /// The purchase.
        purchase_id: Uuid,
        /// Now.
        at: Timestamp,
    },
}

/// Why a checkout command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    /// As many purchases are pending as the account may have.
    #[error(
        "{max} purchases are waiting for payment, the most at once; complete one or try again later"
    )]
    TooManyPending {
        /// The limit.
        max: u32,
    },
}

/// The pending checkouts of an account: purchase → when it stops counting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkouts {
    /// Opened and not closed (some may have expired).
    pub open: BTreeMap<Uuid, Timestamp>,
}

impl Checkouts {
    /// Purchases pending at `now`.
    pub fn pending(&self, now: Timestamp) -> usize {
        self.open.values().filter(|until| **until > now).count()
    }
}

impl Aggregate for Checkouts {
    type Event = CheckoutEvent;
    type Command = CheckoutCommand;
    type Error = CheckoutError;

    fn decide(&self, command: &CheckoutCommand) -> Result<Vec<CheckoutEvent>, CheckoutError> {
        match command {
            CheckoutCommand::Open {
                purchase_id,
                max_pending,
                at,
            } => {
                if self.open.contains_key(purchase_id) {
                    return Ok(vec![]);
                }
                if self.pending(*at) >= *max_pending as usize {
                    return Err(CheckoutError::TooManyPending { max: *max_pending });
                }
                Ok(vec![CheckoutEvent::CheckoutOpened {
                    purchase_id: *purchase_id,
                    expires_at: at.plus(CHECKOUT_LIFETIME),
                    at: *at,
                }])
            }
            CheckoutCommand::Close { purchase_id, at } => {
                Ok(if self.open.contains_key(purchase_id) {
                    vec![CheckoutEvent::CheckoutClosed {
                        purchase_id: *purchase_id,
                        at: *at,
                    }]
                } else {
                    vec![]
                })
            }
        }
    }

    fn evolve(&mut self, event: &CheckoutEvent) {
        match event {
            CheckoutEvent::CheckoutOpened {
                purchase_id,
                expires_at,
                at,
            } => {
                // Expired checkouts count no more: forget them, so the state stays small.
                self.open.retain(|_, until| *until > *at);
                self.open.insert(*purchase_id, *expires_at);
            }
            CheckoutEvent::CheckoutClosed { purchase_id, .. } => {
                self.open.remove(purchase_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
    }
    fn purchase(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }
    fn open(n: u128, when: i64) -> CheckoutCommand {
        CheckoutCommand::Open {
            purchase_id: purchase(n),
            max_pending: 2,
            at: at(when),
        }
    }
    fn opened(n: u128, when: i64) -> CheckoutEvent {
        CheckoutEvent::CheckoutOpened {
            purchase_id: purchase(n),
            expires_at: at(when).plus(CHECKOUT_LIFETIME),
            at: at(when),
        }
    }
    fn closed(n: u128, when: i64) -> CheckoutEvent {
        CheckoutEvent::CheckoutClosed {
            purchase_id: purchase(n),
            at: at(when),
        }
    }

    #[test]
    fn pending_purchases_are_capped() {
        given::<Checkouts>([opened(1, 0), opened(2, 1)])
            .when(open(3, 2))
            .then_error(CheckoutError::TooManyPending { max: 2 });
        // Opening the same purchase again (a retry) is nothing new.
        given::<Checkouts>([opened(1, 0), opened(2, 1)])
            .when(open(2, 2))
            .then([]);
    }

    #[test]
    fn completed_and_abandoned_purchases_stop_counting() {
        given::<Checkouts>([opened(1, 0), opened(2, 1), closed(1, 5)])
            .when(open(3, 6))
            .then([opened(3, 6)]);
        let day = CHECKOUT_LIFETIME.as_secs() as i64;
        let state = given::<Checkouts>([opened(1, 0), opened(2, 1)])
            .when(open(3, day))
            .then([opened(3, day)]);
        assert_eq!(
            state.open.keys().copied().collect::<Vec<_>>(),
            [purchase(2), purchase(3)],
            "the expired checkout is forgotten"
        );
    }

    #[test]
    fn closing_is_idempotent() {
        given::<Checkouts>([opened(1, 0)])
            .when(CheckoutCommand::Close {
                purchase_id: purchase(1),
                at: at(3),
            })
            .then([closed(1, 3)]);
        given::<Checkouts>([opened(1, 0), closed(1, 3)])
            .when(CheckoutCommand::Close {
                purchase_id: purchase(1),
                at: at(4),
            })
            .then([]);
    }
}
