//! Credit-pack purchases: a checkout with the payment provider, its confirmation, and the
//! invoice and credits a completed purchase causes.

use super::{Billing, not_found};
use crate::credits::Grant;
use crate::error::{CommandError, Rejection};
use crate::executor::CommandContext;
use crate::payments::{CheckoutRequest, WebhookEvent};
use domain::checkout::{CheckoutCommand, Checkouts};
use domain::credits::SourceKind;
use domain::invoice::{InvoiceLine, InvoiceReason};
use domain::money::Money;
use domain::purchase::{Purchase, PurchaseCommand};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
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

impl Billing {
    /// Opens a checkout for a credit pack, unless the account has as many waiting for
    /// payment as it may (decided on its `checkouts-<account>` stream, which two purchases
    /// race on). Credits come only when the provider confirms.
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
        let provider = self.payment_provider()?;
        let purchase_id = Uuid::new_v4();
        let price = self.catalog.money(pack.price);
        // Counted among the account's pending purchases first: refused when too many are.
        let opened_at = self.clock.now();
        let open = CheckoutCommand::Open {
            purchase_id,
            max_pending: self.max_pending_purchases,
            at: opened_at,
        };
        self.run_checkouts(ctx, account_id, opened_at, &open)
            .await?;
        let checkout = match provider
            .create_checkout(&CheckoutRequest {
                purchase_id,
                account_id,
                description: pack.name.clone(),
                amount: price.clone(),
                base_url: base_url.to_owned(),
            })
            .await
        {
            Ok(checkout) => checkout,
            Err(error) => {
                // Never reached the provider: it does not wait for payment.
                self.close_checkout(ctx, account_id, purchase_id).await?;
                return Err(CommandError::PaymentProvider(error.to_string()));
            }
        };
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

    /// Runs `command` on the account's pending checkouts.
    async fn run_checkouts(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        at: Timestamp,
        command: &CheckoutCommand,
    ) -> Result<(), CommandError> {
        self.exec
            .execute::<Checkouts, _>(
                &StreamCategory::Checkouts.stream(account_id),
                ctx,
                None,
                at,
                |c| Ok(c.decide(command)?),
            )
            .await?;
        Ok(())
    }

    /// Stops counting `purchase_id` as pending (idempotent).
    async fn close_checkout(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        purchase_id: Uuid,
    ) -> Result<(), CommandError> {
        let at = self.clock.now();
        let close = CheckoutCommand::Close { purchase_id, at };
        self.run_checkouts(ctx, account_id, at, &close).await
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
        self.close_checkout(ctx, account_id, purchase_id).await?;
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
}
