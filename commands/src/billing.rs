//! Billing commands: credit-pack purchases, claims, plan changes, renewals, invoices and
//! their payment. What a subscription or a paid purchase must cause (an invoice, a charge,
//! allowance credits) is done by [`Billing::on_subscription_event`] and
//! [`Billing::on_purchase_completed`], which the billing worker calls for each such event;
//! every step there is idempotent, so a replayed event changes nothing.

use crate::clock::Clock;
use crate::credits::{Credits, Grant};
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executor};
use crate::payments::{CheckoutRequest, PaymentProvider, WebhookEvent};
use domain::campaign::{Campaign, Redeem};
use domain::catalog::{Catalog, Plan};
use domain::credits::SourceKind;
use domain::invoice::{
    InvoiceLine, InvoicePayment, InvoiceReason, InvoiceSeries, IssueInvoice, PayInvoice,
};
use domain::money::Money;
use domain::purchase::{Purchase, PurchaseCommand};
use domain::subscription::{PlanTerms, Subscription, SubscriptionCommand, SubscriptionEvent};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;

/// A started purchase.
#[derive(Debug, Clone)]
pub struct StartedPurchase {
    /// Our id.
    pub purchase_id: Uuid,
    /// Where to pay.
    pub checkout_url: String,
    /// Where it was committed.
    pub position: GlobalPosition,
}

/// The billing command handlers.
#[derive(Clone)]
pub struct Billing {
    exec: Executor,
    credits: Credits,
    catalog: Arc<Catalog>,
    provider: Arc<dyn PaymentProvider>,
    clock: Arc<dyn Clock>,
}

fn not_found(code: &'static str, what: &str) -> CommandError {
    CommandError::rejected(Rejection::NotFound, code, format!("no such {what}"))
}

/// The subscription stream of an account.
pub fn subscription_stream(account_id: AccountId) -> String {
    StreamCategory::Subscription.stream(account_id)
}

impl Billing {
    /// Handlers over `exec`, selling what `catalog` lists through `provider`.
    pub fn new(
        exec: Executor,
        credits: Credits,
        catalog: Arc<Catalog>,
        provider: Arc<dyn PaymentProvider>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            exec,
            credits,
            catalog,
            provider,
            clock,
        }
    }

    /// What is for sale.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The payment provider.
    pub fn provider(&self) -> &Arc<dyn PaymentProvider> {
        &self.provider
    }

    /// The terms of a plan as the catalog says now.
    pub fn terms(&self, plan: &Plan) -> PlanTerms {
        PlanTerms {
            plan_id: plan.id.clone(),
            price: self.catalog.money(plan.price),
            credits: plan.credits_per_period,
            period_secs: plan.period().as_secs(),
            rank: plan.rank,
        }
    }

    /// Opens a checkout for a credit pack. Credits come only when the provider confirms.
    #[tracing::instrument(skip_all, fields(%account_id, pack_id))]
    pub async fn start_purchase(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        pack_id: &str,
        base_url: &str,
    ) -> Result<StartedPurchase, CommandError> {
        let pack = self.catalog.pack(pack_id).ok_or_else(|| {
            CommandError::rejected(
                Rejection::Invalid,
                "unknown_pack",
                format!("no credit pack {pack_id:?}"),
            )
        })?;
        let purchase_id = Uuid::new_v4();
        let price = self.catalog.money(pack.price);
        let checkout = self
            .provider
            .create_checkout(&CheckoutRequest {
                purchase_id,
                account_id,
                description: pack.name.clone(),
                amount: price.clone(),
                base_url: base_url.to_owned(),
            })
            .await
            .map_err(|e| CommandError::PaymentProvider(e.to_string()))?;
        let at = self.clock.now();
        let command = PurchaseCommand::Start {
            account_id,
            pack_id: pack.id.clone(),
            credits: pack.credits,
            price,
            checkout_session_id: checkout.session_id.clone(),
            at,
        };
        let executed = self
            .exec
            .execute::<Purchase, _>(
                &StreamCategory::Purchase.stream(purchase_id),
                ctx,
                None,
                at,
                |p| Ok(p.decide(&command)?),
            )
            .await?;
        Ok(StartedPurchase {
            purchase_id,
            checkout_url: checkout.url,
            position: executed.position.unwrap_or_default(),
        })
    }

    /// A purchase, as its events describe it.
    pub async fn purchase(&self, purchase_id: Uuid) -> Result<Purchase, CommandError> {
        Ok(self
            .exec
            .load::<Purchase>(&StreamCategory::Purchase.stream(purchase_id))
            .await?
            .state)
    }

    /// Records a provider's confirmation that a checkout was paid (once per purchase,
    /// however often it is delivered).
    #[tracing::instrument(skip_all, fields(event_id = %event.id))]
    pub async fn confirm_checkout(
        &self,
        ctx: &CommandContext,
        event: &WebhookEvent,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let session = &event.data.object;
        let purchase_id = Uuid::parse_str(&session.client_reference_id)
            .map_err(|_| not_found("purchase_not_found", "purchase"))?;
        let at = self.clock.now();
        let command = PurchaseCommand::Complete {
            provider_event_id: event.id.clone(),
            checkout_session_id: session.id.clone(),
            paid: Money::new(session.amount_total, &session.currency),
            at,
        };
        let executed = self
            .exec
            .execute::<Purchase, _>(
                &StreamCategory::Purchase.stream(purchase_id),
                ctx,
                None,
                at,
                |p| Ok(p.decide(&command)?),
            )
            .await?;
        Ok(executed.position)
    }

    /// Grants a paid purchase's credits and issues its (paid) receipt.
    pub async fn on_purchase_completed(
        &self,
        ctx: &CommandContext,
        purchase_id: Uuid,
        provider_event_id: &str,
        at: Timestamp,
    ) -> Result<(), CommandError> {
        let purchase = self.purchase(purchase_id).await?;
        let (Some(account_id), Some(price), Some(pack_id)) =
            (purchase.account_id, purchase.price, purchase.pack_id)
        else {
            return Err(CommandError::Internal(format!(
                "purchase {purchase_id} completed but never started"
            )));
        };
        let key = format!("purchase:{purchase_id}");
        let grant = Grant {
            grant_key: key.clone(),
            amount: purchase.credits,
            source: SourceKind::Purchase,
            expires_at: None,
        };
        self.credits.grant(ctx, account_id, grant, at).await?;
        let description = self
            .catalog
            .pack(&pack_id)
            .map_or(pack_id.clone(), |p| p.name.clone());
        let invoice_id = self
            .issue_invoice(
                ctx,
                account_id,
                key,
                InvoiceReason::Purchase,
                &price.currency,
                vec![InvoiceLine::new(description, 1, price.amount)],
                at,
            )
            .await?;
        self.pay_invoice(ctx, invoice_id, price, provider_event_id, at)
            .await?;
        Ok(())
    }

    /// Issues an invoice once per `key` in the series of `at`'s year; returns its id.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_invoice(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        key: String,
        reason: InvoiceReason,
        currency: &str,
        lines: Vec<InvoiceLine>,
        at: Timestamp,
    ) -> Result<Uuid, CommandError> {
        let year = at.datetime().year();
        let command = IssueInvoice {
            invoice_id: Uuid::new_v4(),
            key: key.clone(),
            account_id,
            reason,
            currency: currency.to_owned(),
            lines,
            year,
            at,
        };
        let executed = self
            .exec
            .execute::<InvoiceSeries, _>(
                &StreamCategory::InvoiceSeries.stream(year),
                ctx,
                None,
                at,
                |series| Ok(series.decide(&command)?),
            )
            .await?;
        executed
            .state
            .keys
            .get(&key)
            .map(|(id, _)| *id)
            .ok_or_else(|| CommandError::Internal(format!("invoice {key} missing after issue")))
    }

    async fn pay_invoice(
        &self,
        ctx: &CommandContext,
        invoice_id: Uuid,
        amount: Money,
        reference: &str,
        at: Timestamp,
    ) -> Result<(), CommandError> {
        let command = PayInvoice {
            amount,
            provider_reference: reference.to_owned(),
            at,
        };
        self.exec
            .execute::<InvoicePayment, _>(
                &StreamCategory::Invoice.stream(invoice_id),
                ctx,
                None,
                at,
                |p| Ok(p.decide(&command)?),
            )
            .await?;
        Ok(())
    }

    /// Issues an invoice and charges it to the account, unless already paid.
    #[allow(clippy::too_many_arguments)]
    async fn bill(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        key: String,
        reason: InvoiceReason,
        amount: &Money,
        description: String,
        at: Timestamp,
    ) -> Result<(), CommandError> {
        let lines = vec![InvoiceLine::new(description, 1, amount.amount)];
        let invoice_id = self
            .issue_invoice(ctx, account_id, key, reason, &amount.currency, lines, at)
            .await?;
        let stream = StreamCategory::Invoice.stream(invoice_id);
        if self.exec.load::<InvoicePayment>(&stream).await?.state.paid {
            return Ok(());
        }
        // Providers take the invoice id as the charge's idempotency key.
        match self.provider.charge(account_id, invoice_id, amount).await {
            Ok(crate::payments::ChargeOutcome::Paid { reference }) => {
                self.pay_invoice(ctx, invoice_id, amount.clone(), &reference, at)
                    .await
            }
            Ok(crate::payments::ChargeOutcome::Pending) => Ok(()),
            Err(error) => {
                // Dunning is the provider's job; the invoice stays open.
                tracing::warn!(%invoice_id, %error, "charge failed; invoice left open");
                Ok(())
            }
        }
    }

    fn plan_name(&self, plan_id: &str) -> String {
        self.catalog
            .plan(plan_id)
            .map_or_else(|| plan_id.to_owned(), |p| p.name.clone())
    }

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
                    date(*period_start),
                    date(*period_end)
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
                        date(*period_end)
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

    /// Subscribes, upgrades (at once, prorated) or schedules a downgrade.
    #[tracing::instrument(skip_all, fields(%account_id, plan_id))]
    pub async fn change_plan(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        plan_id: &str,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let plan = self.catalog.plan(plan_id).ok_or_else(|| {
            CommandError::rejected(
                Rejection::Invalid,
                "unknown_plan",
                format!("no plan {plan_id:?}"),
            )
        })?;
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
            let (Some(current), Some(end)) = (&subscription.terms, subscription.period_end) else {
                return Ok(last);
            };
            if now < end {
                return Ok(last);
            }
            // The next period is at the catalog's current terms of the next plan; a plan
            // that left the catalog keeps its old terms.
            let next = subscription
                .next_plan()
                .and_then(|id| self.catalog.plan(id))
                .map_or_else(|| current.clone(), |plan| self.terms(plan));
            match self
                .run_subscription(
                    ctx,
                    account_id,
                    SubscriptionCommand::Renew { next, at: now },
                    now,
                )
                .await?
            {
                Some(position) => last = Some(position),
                None => return Ok(last),
            }
        }
    }

    /// Claims an offer of the catalog for the account (once; idempotent).
    #[tracing::instrument(skip_all, fields(%account_id, claim_id))]
    pub async fn claim(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        claim_id: &str,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let offer = self
            .catalog
            .claim(claim_id)
            .ok_or_else(|| not_found("claim_not_found", "claim"))?;
        let at = self.clock.now();
        let redeem = Redeem {
            account_id,
            credits: offer.credits,
            ends_at: offer.ends_at,
            budget_credits: offer.budget_credits,
            at,
        };
        self.exec
            .execute::<Campaign, _>(
                &StreamCategory::Campaign.stream(&offer.id),
                ctx,
                None,
                at,
                |c| Ok(c.decide(&redeem)?),
            )
            .await?;
        let grant = Grant {
            grant_key: format!("claim:{}", offer.id),
            amount: offer.credits,
            source: offer.kind.source(),
            expires_at: offer
                .lot_expires_after_days
                .map(|days| at.plus(Duration::from_secs(u64::from(days) * 86_400))),
        };
        self.credits.grant(ctx, account_id, grant, at).await
    }
}

fn date(at: Timestamp) -> String {
    let d = at.datetime().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}
