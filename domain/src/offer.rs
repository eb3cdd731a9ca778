//! Claimable offers: the signup bonus and promotions of the catalog. One claim per account;
//! an offer stops at its end date and at its credit budget. Their streams are named
//! `campaign-<offer id>`, a stored name from before "campaign" came to mean newsletters.

use crate::event::Event;
use crate::{AccountId, Aggregate, Timestamp};
use imbl::HashSet;
use serde::{Deserialize, Serialize};

/// What happened to an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "campaign")]
pub enum OfferEvent {
    /// An account claimed the offer.
    #[event(no_personal_data)]
    ClaimRedeemed {
        /// Who.
        account_id: AccountId,
        /// Credits it grants.
        credits: u64,
        /// When.
        at: Timestamp,
    },
}

/// Claim the offer for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeem {
    /// Who.
    pub account_id: AccountId,
    /// Credits it grants.
    pub credits: u64,
    /// The offer's end, if any.
    pub ends_at: Option<Timestamp>,
    /// Its budget in credits, if any.
    pub budget_credits: Option<u64>,
    /// Now.
    pub at: Timestamp,
}

/// Why a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// Past its end.
    #[error("this offer has ended")]
    Ended,
    /// Its budget is spent.
    #[error("this offer has run out")]
    BudgetExhausted,
}

/// Who claimed, and how much was granted. The set is persistent (structure-sharing): a
/// popular offer is a hot stream, and the executor copies its state for every claim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Accounts that claimed.
    pub redeemed: HashSet<AccountId>,
    /// Credits granted so far.
    pub credits_granted: u64,
}

impl Aggregate for Offer {
    type Event = OfferEvent;
    type Command = Redeem;
    type Error = OfferError;

    fn decide(&self, c: &Redeem) -> Result<Vec<OfferEvent>, OfferError> {
        if self.redeemed.contains(&c.account_id) {
            return Ok(vec![]);
        }
        if c.ends_at.is_some_and(|end| c.at >= end) {
            return Err(OfferError::Ended);
        }
        if c.budget_credits
            .is_some_and(|budget| self.credits_granted + c.credits > budget)
        {
            return Err(OfferError::BudgetExhausted);
        }
        Ok(vec![OfferEvent::ClaimRedeemed {
            account_id: c.account_id,
            credits: c.credits,
            at: c.at,
        }])
    }

    fn evolve(&mut self, event: &OfferEvent) {
        let OfferEvent::ClaimRedeemed {
            account_id,
            credits,
            ..
        } = event;
        if self.redeemed.insert(*account_id).is_none() {
            self.credits_granted += credits;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use uuid::Uuid;

    fn redeem(n: u128, at: i64) -> Redeem {
        Redeem {
            account_id: AccountId(Uuid::from_u128(n)),
            credits: 100,
            ends_at: Some(Timestamp::from_unix_micros(1_000)),
            budget_credits: Some(200),
            at: Timestamp::from_unix_micros(at),
        }
    }
    fn redeemed(n: u128) -> OfferEvent {
        OfferEvent::ClaimRedeemed {
            account_id: AccountId(Uuid::from_u128(n)),
            credits: 100,
            at: Timestamp::from_unix_micros(0),
        }
    }

    #[test]
    fn one_claim_per_account() {
        given::<Offer>([]).when(redeem(1, 0)).then([redeemed(1)]);
        given::<Offer>([redeemed(1)]).when(redeem(1, 5)).then([]);
    }

    #[test]
    fn claims_stop_at_the_end_and_at_the_budget() {
        given::<Offer>([])
            .when(redeem(1, 1_000))
            .then_error(OfferError::Ended);
        given::<Offer>([redeemed(1), redeemed(2)])
            .when(redeem(3, 0))
            .then_error(OfferError::BudgetExhausted);
        // Those who claimed still get an idempotent answer.
        given::<Offer>([redeemed(1), redeemed(2)])
            .when(redeem(2, 2_000))
            .then([]);
    }
}
