//! Billing commands: credit-pack purchases (`purchases`), claims (`claims`), plan
//! changes and renewals (`subscriptions`), invoices and their payment (`invoices`). What a subscription or a paid purchase must cause (an invoice, a charge,
//! allowance credits) is done by [`Billing::on_subscription_event`] and
//! [`Billing::on_purchase_completed`], which the billing worker calls for each such event;
//! every step there is idempotent, so a replayed event changes nothing.

mod claims;
mod invoices;
mod purchases;
mod subscriptions;

pub use purchases::StartedPurchase;

use crate::clock::Clock;
use crate::credits::Credits;
use crate::error::{CommandError, Rejection};
use crate::executor::Executor;
use crate::payments::PaymentProvider;
use domain::catalog::{Catalog, Plan};
use domain::subscription::PlanTerms;
use domain::{AccountId, StreamCategory};
use std::sync::Arc;

/// Purchases an account may have waiting for payment at once unless configured otherwise.
pub const DEFAULT_MAX_PENDING_PURCHASES: u32 = 10;

/// The billing command handlers.
#[derive(Clone)]
pub struct Billing {
    exec: Executor,
    credits: Credits,
    catalog: Arc<Catalog>,
    provider: Option<Arc<dyn PaymentProvider>>,
    clock: Arc<dyn Clock>,
    max_pending_purchases: u32,
}

fn not_found(code: &'static str, what: &str) -> CommandError {
    CommandError::rejected(Rejection::NotFound, code, format!("no such {what}"))
}

/// The subscription stream of an account.
pub fn subscription_stream(account_id: AccountId) -> String {
    StreamCategory::Subscription.stream(account_id)
}

impl Billing {
    /// Handlers over `exec`, selling what `catalog` lists through `provider`. Without a
    /// provider, purchases, paid plans and the portal are refused
    /// ([`Billing::payment_provider`]).
    pub fn new(
        exec: Executor,
        credits: Credits,
        catalog: Arc<Catalog>,
        provider: Option<Arc<dyn PaymentProvider>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            exec,
            credits,
            catalog,
            provider,
            clock,
            max_pending_purchases: DEFAULT_MAX_PENDING_PURCHASES,
        }
    }

    /// The same handlers, allowing `max` purchases per account waiting for payment.
    pub fn with_max_pending_purchases(mut self, max: u32) -> Self {
        self.max_pending_purchases = max;
        self
    }

    /// What is for sale.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The payment provider, or 503 `payments_unavailable` when none is configured.
    pub fn payment_provider(&self) -> Result<&Arc<dyn PaymentProvider>, CommandError> {
        self.provider.as_ref().ok_or_else(|| {
            CommandError::rejected(
                Rejection::Unavailable,
                "payments_unavailable",
                "no payment provider is configured on this service",
            )
        })
    }

    /// A page of the provider where the account manages its payment methods.
    pub async fn portal_url(
        &self,
        account_id: AccountId,
        base_url: &str,
    ) -> Result<String, CommandError> {
        self.payment_provider()?
            .portal_url(account_id, base_url)
            .await
            .map_err(|e| CommandError::PaymentProvider(e.to_string()))
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
}
