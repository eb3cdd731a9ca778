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
        /// Its terms when chosen: the renewal's if the plan has left the catalog by then
        /// (absent in changes scheduled before they were recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        terms: Option<PlanTerms>,
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

/// How an event changes the plan in force, the one whose entitlements the account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanInForce<'a> {
    /// From now on, this plan.
    Now(&'a str),
    /// No plan any more: the subscription ended (the account is free again).
    Ended,
    /// As before.
    Unchanged,
}

impl SubscriptionEvent {
    /// How this event changes the plan in force. A plan starts, renews into its next plan
    /// (a scheduled downgrade takes effect then) or is upgraded at once; it ends when a
    /// cancelled period runs out or the account goes. Scheduling a change or a
    /// cancellation changes nothing until the scheduler applies the period's end.
    pub fn plan_in_force(&self) -> PlanInForce<'_> {
        match self {
            Self::SubscriptionStarted { terms, .. }
            | Self::SubscriptionRenewed { terms, .. }
            | Self::PlanUpgraded { terms, .. } => PlanInForce::Now(&terms.plan_id),
            Self::SubscriptionEnded { .. } => PlanInForce::Ended,
            Self::PlanChangeScheduled { .. }
            | Self::PlanChangeCancelled { .. }
            | Self::CancellationScheduled { .. }
            | Self::SubscriptionResumed { .. } => PlanInForce::Unchanged,
        }
    }
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
    /// Its terms when it was chosen, if recorded.
    pub scheduled_terms: Option<PlanTerms>,
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

    /// The terms the next period renews at: the catalog's current terms of the next plan
    /// (`listed` looks a plan up), else, for a plan that left the catalog, the terms it
    /// was chosen at (a scheduled change) or has (the current plan).
    pub fn next_terms(&self, listed: impl Fn(&str) -> Option<PlanTerms>) -> Option<PlanTerms> {
        let current = self.terms.as_ref()?;
        let plan = self.next_plan()?;
        // Scheduled terms exist only beside their scheduled plan (set and cleared with it).
        listed(plan)
            .or_else(|| self.scheduled_terms.clone())
            .or_else(|| Some(current.clone()))
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
                // Choosing a plan for the next period calls a cancellation off, as choosing
                // the current plan or a higher one does: the plan chosen is what follows.
                let mut events = Vec::new();
                if self.cancel_at_period_end {
                    events.push(E::SubscriptionResumed { at: *at });
                }
                if self.scheduled_plan.as_deref() != Some(terms.plan_id.as_str()) {
                    events.push(E::PlanChangeScheduled {
                        plan_id: terms.plan_id.clone(),
                        effective_at: end,
                        terms: Some(terms.clone()),
                    });
                }
                Ok(events)
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
                self.scheduled_terms = None;
            }
            E::PlanUpgraded { terms, .. } => {
                self.terms = Some(terms.clone());
                self.scheduled_plan = None;
                self.scheduled_terms = None;
                self.cancel_at_period_end = false;
            }
            E::PlanChangeScheduled { plan_id, terms, .. } => {
                self.scheduled_plan = Some(plan_id.clone());
                self.scheduled_terms = terms.clone().filter(|t| t.plan_id == *plan_id);
            }
            E::PlanChangeCancelled { .. } => {
                self.scheduled_plan = None;
                self.scheduled_terms = None;
            }
            E::CancellationScheduled { .. } => self.cancel_at_period_end = true,
            E::SubscriptionResumed { .. } => self.cancel_at_period_end = false,
            E::SubscriptionEnded { .. } => *self = Self::default(),
        }
    }
}

#[cfg(test)]
mod tests;
