//! The subscription of an account (`subscription-<account id>`): plan changes with
//! proration, cancellation at the end of the paid period, resumption, and renewal.
//!
//! Prices and allowances come in the commands ([`PlanTerms`], resolved from the catalog),
//! so the rules stay pure. Invoices and allowance credits are not decided here: the billing
//! worker reacts to these events and issues them, once per event.

use crate::event::Event;
use crate::money::{Money, prorate};
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};

/// What a plan costs and grants, as the catalog says when the command is decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTerms {
    /// The plan.
    pub plan_id: String,
    /// Price per period.
    pub price: Money,
    /// Allowance per period.
    pub credits: u64,
    /// Period length in seconds.
    pub period_secs: u64,
    /// Higher is an upgrade.
    pub rank: u32,
}

impl PlanTerms {
    fn period(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.period_secs)
    }
}

/// What happened to a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "subscription")]
pub enum SubscriptionEvent {
    /// A first (or new, after an end) period started: charge it and grant its allowance.
    #[event(no_personal_data)]
    SubscriptionStarted {
        /// The plan.
        terms: PlanTerms,
        /// Period start.
        period_start: Timestamp,
        /// Period end.
        period_end: Timestamp,
    },
    /// An upgrade applied at once: charge and grant the prorated differences.
    #[event(no_personal_data)]
    PlanUpgraded {
        /// The plan before.
        from_plan: String,
        /// The plan now.
        terms: PlanTerms,
        /// When.
        at: Timestamp,
        /// The current period's end (unchanged).
        period_end: Timestamp,
        /// The prorated price difference for the rest of the period.
        prorated_charge: Money,
        /// The prorated allowance difference for the rest of the period.
        prorated_credits: u64,
    },
    /// A downgrade (or lateral change) takes effect at the end of the period.
    #[event(no_personal_data)]
    PlanChangeScheduled {
        /// The plan from then on.
        plan_id: String,
        /// When it applies.
        effective_at: Timestamp,
    },
    /// A scheduled change was called off.
    #[event(no_personal_data)]
    PlanChangeCancelled {
        /// When.
        at: Timestamp,
    },
    /// The subscription ends at the end of the paid period.
    #[event(no_personal_data)]
    CancellationScheduled {
        /// When it ends.
        effective_at: Timestamp,
        /// When it was asked.
        at: Timestamp,
    },
    /// A scheduled cancellation was undone.
    #[event(no_personal_data)]
    SubscriptionResumed {
        /// When.
        at: Timestamp,
    },
    /// A new period began: charge it and grant its allowance.
    #[event(no_personal_data)]
    SubscriptionRenewed {
        /// The plan for the new period.
        terms: PlanTerms,
        /// Period start.
        period_start: Timestamp,
        /// Period end.
        period_end: Timestamp,
    },
    /// The subscription ended.
    #[event(no_personal_data)]
    SubscriptionEnded {
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionCommand {
    /// Subscribe to, upgrade to, or schedule a change to `terms`.
    ChangePlan {
        /// The plan wanted.
        terms: PlanTerms,
        /// Now.
        at: Timestamp,
    },
    /// End at the end of the paid period.
    Cancel {
        /// Now.
        at: Timestamp,
    },
    /// Undo a scheduled cancellation.
    Resume {
        /// Now.
        at: Timestamp,
    },
    /// End now, whatever the period (the account is being deleted).
    EndNow {
        /// Now.
        at: Timestamp,
    },
    /// At the end of a period: renew with `next` (the scheduled plan, or the current one),
    /// or end if cancelled. Nothing happens before the period ends.
    Renew {
        /// Terms of the plan for the next period.
        next: PlanTerms,
        /// Now.
        at: Timestamp,
    },
}

/// Why a subscription command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// Cancelling or resuming without an active subscription.
    #[error("there is no active subscription")]
    NotSubscribed,
    /// Resuming after the period ended.
    #[error("the subscription already ended")]
    AlreadyEnded,
    /// A plan priced in another currency.
    #[error("the plan is priced in another currency")]
    CurrencyMismatch,
}

/// The state of a subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The current plan, while active.
    pub terms: Option<PlanTerms>,
    /// Current period start.
    pub period_start: Option<Timestamp>,
    /// Current period end.
    pub period_end: Option<Timestamp>,
    /// Ends at the period end.
    pub cancel_at_period_end: bool,
    /// Plan from the next period on.
    pub scheduled_plan: Option<String>,
}

impl Subscription {
    /// Whether a plan is active.
    pub fn is_active(&self) -> bool {
        self.terms.is_some()
    }

    /// The plan the next period will have, if any.
    pub fn next_plan(&self) -> Option<&str> {
        self.scheduled_plan
            .as_deref()
            .or(self.terms.as_ref().map(|t| t.plan_id.as_str()))
    }
}

impl Aggregate for Subscription {
    type Event = SubscriptionEvent;
    type Command = SubscriptionCommand;
    type Error = SubscriptionError;

    fn decide(
        &self,
        command: &SubscriptionCommand,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        use SubscriptionCommand as C;
        use SubscriptionEvent as E;
        match command {
            C::ChangePlan { terms, at } => {
                let (Some(current), Some(start), Some(end)) =
                    (&self.terms, self.period_start, self.period_end)
                else {
                    return Ok(vec![E::SubscriptionStarted {
                        terms: terms.clone(),
                        period_start: *at,
                        period_end: at.plus(terms.period()),
                    }]);
                };
                if terms.price.currency != current.price.currency {
                    return Err(SubscriptionError::CurrencyMismatch);
                }
                if terms.plan_id == current.plan_id {
                    let mut events = Vec::new();
                    if self.scheduled_plan.is_some() {
                        events.push(E::PlanChangeCancelled { at: *at });
                    }
                    if self.cancel_at_period_end {
                        events.push(E::SubscriptionResumed { at: *at });
                    }
                    return Ok(events);
                }
                if terms.rank > current.rank {
                    let remaining = end.since(*at);
                    let period = end.since(start);
                    let price_difference = (terms.price.amount - current.price.amount).max(0);
                    let credit_difference = terms.credits.saturating_sub(current.credits) as i64;
                    return Ok(vec![E::PlanUpgraded {
                        from_plan: current.plan_id.clone(),
                        terms: terms.clone(),
                        at: *at,
                        period_end: end,
                        prorated_charge: Money::new(
                            prorate(price_difference, remaining, period),
                            &terms.price.currency,
                        ),
                        prorated_credits: prorate(credit_difference, remaining, period) as u64,
                    }]);
                }
                if self.scheduled_plan.as_deref() == Some(terms.plan_id.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![E::PlanChangeScheduled {
                    plan_id: terms.plan_id.clone(),
                    effective_at: end,
                }])
            }
            C::Cancel { at } => {
                let end = self
                    .period_end
                    .filter(|_| self.is_active())
                    .ok_or(SubscriptionError::NotSubscribed)?;
                if self.cancel_at_period_end {
                    return Ok(vec![]);
                }
                Ok(vec![E::CancellationScheduled {
                    effective_at: end,
                    at: *at,
                }])
            }
            C::Resume { at } => {
                let end = self
                    .period_end
                    .filter(|_| self.is_active())
                    .ok_or(SubscriptionError::NotSubscribed)?;
                if !self.cancel_at_period_end {
                    return Ok(vec![]);
                }
                if *at >= end {
                    return Err(SubscriptionError::AlreadyEnded);
                }
                Ok(vec![E::SubscriptionResumed { at: *at }])
            }
            C::EndNow { at } => Ok(if self.is_active() {
                vec![E::SubscriptionEnded { at: *at }]
            } else {
                vec![]
            }),
            C::Renew { next, at } => {
                let Some(end) = self.period_end.filter(|_| self.is_active()) else {
                    return Ok(vec![]);
                };
                if *at < end {
                    return Ok(vec![]);
                }
                if self.cancel_at_period_end {
                    return Ok(vec![E::SubscriptionEnded { at: end }]);
                }
                Ok(vec![E::SubscriptionRenewed {
                    terms: next.clone(),
                    period_start: end,
                    period_end: end.plus(next.period()),
                }])
            }
        }
    }

    fn evolve(&mut self, event: &SubscriptionEvent) {
        use SubscriptionEvent as E;
        match event {
            E::SubscriptionStarted {
                terms,
                period_start,
                period_end,
            }
            | E::SubscriptionRenewed {
                terms,
                period_start,
                period_end,
            } => {
                self.terms = Some(terms.clone());
                self.period_start = Some(*period_start);
                self.period_end = Some(*period_end);
                self.cancel_at_period_end = false;
                self.scheduled_plan = None;
            }
            E::PlanUpgraded { terms, .. } => {
                self.terms = Some(terms.clone());
                self.scheduled_plan = None;
                self.cancel_at_period_end = false;
            }
            E::PlanChangeScheduled { plan_id, .. } => self.scheduled_plan = Some(plan_id.clone()),
            E::PlanChangeCancelled { .. } => self.scheduled_plan = None,
            E::CancellationScheduled { .. } => self.cancel_at_period_end = true,
            E::SubscriptionResumed { .. } => self.cancel_at_period_end = false,
            E::SubscriptionEnded { .. } => *self = Self::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    const DAY: i64 = 86_400;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
    }
    fn plan(id: &str, price: i64, credits: u64, rank: u32) -> PlanTerms {
        PlanTerms {
            plan_id: id.into(),
            price: Money::new(price, "EUR"),
            credits,
            period_secs: 30 * DAY as u64,
            rank,
        }
    }
    fn starter() -> PlanTerms {
        plan("starter", 900, 500, 1)
    }
    fn creator() -> PlanTerms {
        plan("creator", 2900, 2000, 2)
    }
    fn started() -> SubscriptionEvent {
        SubscriptionEvent::SubscriptionStarted {
            terms: starter(),
            period_start: at(0),
            period_end: at(30 * DAY),
        }
    }

    #[test]
    fn subscribing_starts_a_period() {
        given::<Subscription>([])
            .when(SubscriptionCommand::ChangePlan {
                terms: starter(),
                at: at(0),
            })
            .then([started()]);
    }

    #[test]
    fn an_upgrade_applies_at_once_with_prorated_differences() {
        let state = given::<Subscription>([started()])
            .when(SubscriptionCommand::ChangePlan {
                terms: creator(),
                at: at(20 * DAY),
            })
            .then([SubscriptionEvent::PlanUpgraded {
                from_plan: "starter".into(),
                terms: creator(),
                at: at(20 * DAY),
                period_end: at(30 * DAY),
                // (2900 - 900) × 10/30 and (2000 - 500) × 10/30
                prorated_charge: Money::new(667, "EUR"),
                prorated_credits: 500,
            }]);
        assert_eq!(state.terms.unwrap().plan_id, "creator");
        assert_eq!(state.period_end, Some(at(30 * DAY)));
    }

    #[test]
    fn a_downgrade_waits_for_the_end_of_the_period() {
        let upgraded = SubscriptionEvent::SubscriptionStarted {
            terms: creator(),
            period_start: at(0),
            period_end: at(30 * DAY),
        };
        let state = given::<Subscription>([upgraded.clone()])
            .when(SubscriptionCommand::ChangePlan {
                terms: starter(),
                at: at(DAY),
            })
            .then([SubscriptionEvent::PlanChangeScheduled {
                plan_id: "starter".into(),
                effective_at: at(30 * DAY),
            }]);
        assert_eq!(state.next_plan(), Some("starter"));
        given::<Subscription>([
            upgraded,
            SubscriptionEvent::PlanChangeScheduled {
                plan_id: "starter".into(),
                effective_at: at(30 * DAY),
            },
        ])
        .when(SubscriptionCommand::Renew {
            next: starter(),
            at: at(30 * DAY),
        })
        .then([SubscriptionEvent::SubscriptionRenewed {
            terms: starter(),
            period_start: at(30 * DAY),
            period_end: at(60 * DAY),
        }]);
    }

    #[test]
    fn a_cancel_keeps_access_until_the_period_ends_and_resume_undoes_it() {
        let cancelled = SubscriptionEvent::CancellationScheduled {
            effective_at: at(30 * DAY),
            at: at(DAY),
        };
        given::<Subscription>([started()])
            .when(SubscriptionCommand::Cancel { at: at(DAY) })
            .then([cancelled.clone()]);
        let state = given::<Subscription>([started(), cancelled.clone()])
            .when(SubscriptionCommand::Resume { at: at(2 * DAY) })
            .then([SubscriptionEvent::SubscriptionResumed { at: at(2 * DAY) }]);
        assert!(!state.cancel_at_period_end);
        given::<Subscription>([started(), cancelled.clone()])
            .when(SubscriptionCommand::Renew {
                next: starter(),
                at: at(29 * DAY),
            })
            .then([]);
        let state = given::<Subscription>([started(), cancelled.clone()])
            .when(SubscriptionCommand::Renew {
                next: starter(),
                at: at(31 * DAY),
            })
            .then([SubscriptionEvent::SubscriptionEnded { at: at(30 * DAY) }]);
        assert!(!state.is_active());
        given::<Subscription>([started(), cancelled])
            .when(SubscriptionCommand::Resume { at: at(30 * DAY) })
            .then_error(SubscriptionError::AlreadyEnded);
    }

    #[test]
    fn renewal_is_due_only_at_the_end_of_the_period() {
        given::<Subscription>([started()])
            .when(SubscriptionCommand::Renew {
                next: starter(),
                at: at(30 * DAY - 1),
            })
            .then([]);
        given::<Subscription>([])
            .when(SubscriptionCommand::Renew {
                next: starter(),
                at: at(0),
            })
            .then([]);
    }

    #[test]
    fn choosing_the_current_plan_calls_off_scheduled_changes() {
        given::<Subscription>([
            started(),
            SubscriptionEvent::CancellationScheduled {
                effective_at: at(30 * DAY),
                at: at(DAY),
            },
        ])
        .when(SubscriptionCommand::ChangePlan {
            terms: starter(),
            at: at(2 * DAY),
        })
        .then([SubscriptionEvent::SubscriptionResumed { at: at(2 * DAY) }]);
    }

    #[test]
    fn ending_now_stops_renewals() {
        let state = given::<Subscription>([started()])
            .when(SubscriptionCommand::EndNow { at: at(DAY) })
            .then([SubscriptionEvent::SubscriptionEnded { at: at(DAY) }]);
        assert_eq!(
            state.decide(&SubscriptionCommand::Renew {
                next: starter(),
                at: at(31 * DAY)
            }),
            Ok(vec![])
        );
        given::<Subscription>([])
            .when(SubscriptionCommand::EndNow { at: at(0) })
            .then([]);
    }

    #[test]
    fn cancelling_without_a_subscription_is_refused() {
        given::<Subscription>([])
            .when(SubscriptionCommand::Cancel { at: at(0) })
            .then_error(SubscriptionError::NotSubscribed);
    }
}
