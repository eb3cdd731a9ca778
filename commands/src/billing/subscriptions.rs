//! Plans: subscribe, upgrade at once (prorated), downgrade at period end, cancel, resume,
//! renewals; and what each subscription event causes (invoices, charges, allowance credits).

use super::{Billing, subscription_stream};
use crate::credits::Grant;
use crate::error::{CommandError, Rejection};
use crate::executor::CommandContext;
use domain::account::Fresh;
use domain::credits::SourceKind;
use domain::invoice::InvoiceReason;
use domain::subscription::{Subscription, SubscriptionCommand, SubscriptionEvent};
use domain::{AccountId, Aggregate, Timestamp};
use store::GlobalPosition;
use uuid::Uuid;

impl Billing {
    /// Invoices and grants what a subscription event causes (idempotent).
    pub async fn on_subscription_event(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        event_id: Uuid,
        event: &SubscriptionEvent,
    ) -> Result<(), CommandError> {
        match event {
            SubscriptionEvent::SubscriptionStarted {
                terms,
                period_start,
                period_end,
            }
            | SubscriptionEvent::SubscriptionRenewed {
                terms,
                period_start,
                period_end,
            } => {
                let reason = if matches!(event, SubscriptionEvent::SubscriptionStarted { .. }) {
                    InvoiceReason::Subscription
                } else {
                    InvoiceReason::Renewal
                };
                let period = format!("{}:{}", account_id, period_start.unix_micros());
                let description = format!(
                    "{} plan, {} to {}",
                    self.plan_name(&terms.plan_id),
                    period_start.human_date(),
                    period_end.human_date()
                );
                self.bill(
                    ctx,
                    account_id,
                    format!("period:{period}"),
                    reason,
                    &terms.price,
                    description,
                    *period_start,
                )
                .await?;
                let grant = Grant {
                    grant_key: format!("allowance:{period}"),
                    amount: terms.credits,
                    source: SourceKind::PlanAllowance,
                    expires_at: Some(*period_end),
                };
                if terms.credits > 0 {
                    self.credits
                        .grant(ctx, account_id, grant, *period_start)
                        .await?;
                }
            }
            SubscriptionEvent::PlanUpgraded {
                from_plan,
                terms,
                at,
                period_end,
                prorated_charge,
                prorated_credits,
            } => {
                if prorated_charge.amount > 0 {
                    let description = format!(
                        "Upgrade from {} to {}, prorated to {}",
                        self.plan_name(from_plan),
                        self.plan_name(&terms.plan_id),
                        period_end.human_date()
                    );
                    self.bill(
                        ctx,
                        account_id,
                        format!("upgrade:{event_id}"),
                        InvoiceReason::Upgrade,
                        prorated_charge,
                        description,
                        *at,
                    )
                    .await?;
                }
                if *prorated_credits > 0 && period_end > at {
                    let grant = Grant {
                        grant_key: format!("upgrade:{event_id}"),
                        amount: *prorated_credits,
                        source: SourceKind::PlanAllowance,
                        expires_at: Some(*period_end),
                    };
                    self.credits.grant(ctx, account_id, grant, *at).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The account's subscription.
    pub async fn subscription(&self, account_id: AccountId) -> Result<Subscription, CommandError> {
        Ok(self
            .exec
            .load::<Subscription>(&subscription_stream(account_id))
            .await?
            .state)
    }

    async fn run_subscription(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        command: SubscriptionCommand,
        at: Timestamp,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let executed = self
            .exec
            .execute::<Subscription, _>(&subscription_stream(account_id), ctx, None, at, |s| {
                Ok(s.decide(&command)?)
            })
            .await?;
        Ok(executed.position)
    }

    /// Subscribes, upgrades (at once, prorated) or schedules a downgrade; the session of
    /// `fresh` must have proved its credentials recently.
    #[tracing::instrument(skip_all, fields(%account_id, plan_id))]
    pub async fn change_plan(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        plan_id: &str,
        fresh: Fresh,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let plan = self.catalog.plan(plan_id).ok_or_else(|| {
            CommandError::rejected(
                Rejection::Invalid,
                "unknown_plan",
                format!("no plan {plan_id:?}"),
            )
        })?;
        // A change that charges the account's payment method needs a recent proof.
        crate::accounts::check_fresh(&self.exec, account_id, &fresh).await?;
        if plan.price > 0 {
            self.payment_provider()?;
        }
        // A period that ended must be renewed or closed before a change applies to it.
        self.renew_due(ctx, account_id).await?;
        let at = self.clock.now();
        self.run_subscription(
            ctx,
            account_id,
            SubscriptionCommand::ChangePlan {
                terms: self.terms(plan),
                at,
            },
            at,
        )
        .await
    }

    /// Cancels at the end of the paid period.
    pub async fn cancel(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        self.renew_due(ctx, account_id).await?;
        let at = self.clock.now();
        self.run_subscription(ctx, account_id, SubscriptionCommand::Cancel { at }, at)
            .await
    }

    /// Ends the subscription now, without a refund (the account is being deleted).
    pub async fn end_now(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        self.run_subscription(ctx, account_id, SubscriptionCommand::EndNow { at }, at)
            .await
    }

    /// Undoes a cancellation before the period ends.
    pub async fn resume(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        self.renew_due(ctx, account_id).await?;
        let at = self.clock.now();
        self.run_subscription(ctx, account_id, SubscriptionCommand::Resume { at }, at)
            .await
    }

    /// Renews (or ends) every period of the subscription that has ended by now.
    pub async fn renew_due(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let mut last = None;
        loop {
            let subscription = self.subscription(account_id).await?;
            let now = self.clock.now();
            let (Some(_), Some(end)) = (&subscription.terms, subscription.period_end) else {
                return Ok(last);
            };
            if now < end {
                return Ok(last);
            }
            // The next period is at the catalog's current terms of the next plan, as the
            // state the renewal is decided against has it (a downgrade scheduled after the
            // load above counts); a plan that left the catalog keeps the terms it was
            // chosen at.
            let position = self
                .exec
                .execute::<Subscription, _>(&subscription_stream(account_id), ctx, None, now, |s| {
                    let listed = |id: &str| self.catalog.plan(id).map(|plan| self.terms(plan));
                    let Some(next) = s.next_terms(listed) else {
                        return Ok(vec![]);
                    };
                    Ok(s.decide(&SubscriptionCommand::Renew { next, at: now })?)
                })
                .await?
                .position;
            match position {
                Some(position) => last = Some(position),
                None => return Ok(last),
            }
        }
    }
}
