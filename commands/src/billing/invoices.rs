//! Invoices: numbered from the yearly series without gaps, then paid (charging the
//! provider for plans; a completed checkout pays a pack's invoice).

use super::Billing;
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::invoice::{
    InvoiceLine, InvoicePayment, InvoiceReason, InvoiceSeries, IssueInvoice, PayInvoice,
};
use domain::money::Money;
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
use uuid::Uuid;

impl Billing {
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
            seller: self.catalog.seller.clone(),
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

    pub(super) async fn pay_invoice(
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
    pub(super) async fn bill(
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
        let Some(provider) = &self.provider else {
            // Nothing to charge with: the invoice stays open, as after a failed charge.
            tracing::warn!(%invoice_id, "no payment provider configured; invoice left open");
            return Ok(());
        };
        // Providers take the invoice id as the charge's idempotency key.
        match provider.charge(account_id, invoice_id, amount).await {
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

    pub(super) fn plan_name(&self, plan_id: &str) -> String {
        self.catalog
            .plan(plan_id)
            .map_or_else(|| plan_id.to_owned(), |p| p.name.clone())
    }
}
