//! Claims of offers (the signup bonus and promotions): one per account, within the
//! offer's dates and budget.

use super::{Billing, not_found};
use crate::credits::Grant;
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::offer::{Offer, Redeem};
use domain::{AccountId, Aggregate, StreamCategory};
use std::time::Duration;
use store::GlobalPosition;

impl Billing {
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
            .execute::<Offer, _>(
                &StreamCategory::Offer.stream(&offer.id),
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
