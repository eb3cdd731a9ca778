//! Credit-pack purchases (`purchase-<id>`): started at the payment provider, completed when
//! the provider confirms payment (once, however often it says so).

use crate::event::Event;
use crate::money::Money;
use crate::{AccountId, Aggregate, Timestamp};
use serde::{Deserialize, Serialize};

/// What happened to a purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "purchase")]
pub enum PurchaseEvent {
    /// A checkout was opened at the provider.
    #[event(no_personal_data)]
    PurchaseStarted {
        /// The buyer.
        account_id: AccountId,
        /// The pack.
        pack_id: String,
        /// Credits to grant once paid.
        credits: u64,
        /// The price.
        price: Money,
        /// The provider's checkout session.
        checkout_session_id: String,
        /// When.
        at: Timestamp,
    },
    /// The provider confirmed payment: grant the credits and issue the receipt.
    #[event(no_personal_data)]
    PurchaseCompleted {
        /// The provider's event that confirmed it.
        provider_event_id: String,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of a purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseCommand {
    /// Record the opened checkout.
    Start {
        /// The buyer.
        account_id: AccountId,
        /// The pack.
        pack_id: String,
        /// Its credits.
        credits: u64,
        /// Its price.
        price: Money,
        /// The provider's session.
        checkout_session_id: String,
        /// Now.
        at: Timestamp,
    },
    /// The provider says it was paid.
    Complete {
        /// The provider's event id.
        provider_event_id: String,
        /// The session the payment was for.
        checkout_session_id: String,
        /// What was paid.
        paid: Money,
        /// Now.
        at: Timestamp,
    },
}

/// Why a purchase command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurchaseError {
    /// The purchase id is taken.
    #[error("the purchase already exists")]
    AlreadyStarted,
    /// A payment for a purchase that was never started.
    #[error("no such purchase")]
    Unknown,
    /// The payment does not match the checkout.
    #[error("the payment does not match the purchase")]
    PaymentMismatch,
}

/// A purchase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purchase {
    /// The buyer.
    pub account_id: Option<AccountId>,
    /// The pack.
    pub pack_id: Option<String>,
    /// Credits to grant.
    pub credits: u64,
    /// Price.
    pub price: Option<Money>,
    /// The provider's session.
    pub checkout_session_id: Option<String>,
    /// Paid.
    pub completed: bool,
}

impl Aggregate for Purchase {
    type Event = PurchaseEvent;
    type Command = PurchaseCommand;
    type Error = PurchaseError;

    fn decide(&self, command: &PurchaseCommand) -> Result<Vec<PurchaseEvent>, PurchaseError> {
        match command {
            PurchaseCommand::Start {
                account_id,
                pack_id,
                credits,
                price,
                checkout_session_id,
                at,
            } => {
                if self.account_id.is_some() {
                    return Err(PurchaseError::AlreadyStarted);
                }
                Ok(vec![PurchaseEvent::PurchaseStarted {
                    account_id: *account_id,
                    pack_id: pack_id.clone(),
                    credits: *credits,
                    price: price.clone(),
                    checkout_session_id: checkout_session_id.clone(),
                    at: *at,
                }])
            }
            PurchaseCommand::Complete {
                provider_event_id,
                checkout_session_id,
                paid,
                at,
            } => {
                if self.account_id.is_none() {
                    return Err(PurchaseError::Unknown);
                }
                if self.checkout_session_id.as_deref() != Some(checkout_session_id)
                    || self.price.as_ref() != Some(paid)
                {
                    return Err(PurchaseError::PaymentMismatch);
                }
                if self.completed {
                    return Ok(vec![]);
                }
                Ok(vec![PurchaseEvent::PurchaseCompleted {
                    provider_event_id: provider_event_id.clone(),
                    at: *at,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &PurchaseEvent) {
        match event {
            PurchaseEvent::PurchaseStarted {
                account_id,
                pack_id,
                credits,
                price,
                checkout_session_id,
                ..
            } => {
                self.account_id = Some(*account_id);
                self.pack_id = Some(pack_id.clone());
                self.credits = *credits;
                self.price = Some(price.clone());
                self.checkout_session_id = Some(checkout_session_id.clone());
            }
            PurchaseEvent::PurchaseCompleted { .. } => self.completed = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use uuid::Uuid;

    fn started() -> PurchaseEvent {
        PurchaseEvent::PurchaseStarted {
            account_id: AccountId(Uuid::from_u128(1)),
            pack_id: "credits-1000".into(),
            credits: 1000,
            price: Money::new(900, "EUR"),
            checkout_session_id: "cs_1".into(),
            at: Timestamp::from_unix_micros(0),
        }
    }
    fn complete(event: &str, paid: i64) -> PurchaseCommand {
        PurchaseCommand::Complete {
            provider_event_id: event.into(),
            checkout_session_id: "cs_1".into(),
            paid: Money::new(paid, "EUR"),
            at: Timestamp::from_unix_micros(5),
        }
    }

    #[test]
    fn a_payment_completes_the_purchase_once() {
        let completed = PurchaseEvent::PurchaseCompleted {
            provider_event_id: "evt_1".into(),
            at: Timestamp::from_unix_micros(5),
        };
        given::<Purchase>([started()])
            .when(complete("evt_1", 900))
            .then([completed.clone()]);
        given::<Purchase>([started(), completed.clone()])
            .when(complete("evt_1", 900))
            .then([]);
        given::<Purchase>([started(), completed])
            .when(complete("evt_2", 900))
            .then([]);
    }

    #[test]
    fn a_payment_that_does_not_match_is_refused() {
        given::<Purchase>([started()])
            .when(complete("evt_1", 1))
            .then_error(PurchaseError::PaymentMismatch);
        given::<Purchase>([])
            .when(complete("evt_1", 900))
            .then_error(PurchaseError::Unknown);
    }
}
