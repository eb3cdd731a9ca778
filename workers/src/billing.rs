//! The billing process: reacts to subscription and purchase events with invoices, charges
//! and credits. Each reaction is idempotent (keyed by the event), so redelivery is harmless.

use async_trait::async_trait;
use commands::CommandContext;
use commands::billing::Billing;
use domain::purchase::PurchaseEvent;
use domain::{AccountId, DomainEvent, StreamCategory};
use projections::{Follower, Reactor};
use store::{Actor, DecodedEvent};
use uuid::Uuid;

/// Invoices, charges and grants what billing events cause.
pub struct BillingReactor {
    billing: Billing,
}

impl BillingReactor {
    /// Acts through `billing`.
    pub fn new(billing: Billing) -> Self {
        Self { billing }
    }
}

fn context(event: &DecodedEvent) -> CommandContext {
    CommandContext {
        correlation_id: event.envelope.metadata.correlation_id,
        causation_id: Some(event.envelope.event_id),
        actor: Actor::System {
            component: "billing".into(),
        },
        idempotency_key: None,
    }
}

#[async_trait]
impl Reactor for BillingReactor {
    fn name(&self) -> Follower {
        Follower::BillingProcess
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Subscription, StreamCategory::Purchase]
    }

    async fn react(
        &self,
        event: &DecodedEvent,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let stream = &event.envelope.stream;
        match event.event() {
            Some(DomainEvent::Subscription(subscription)) => {
                let Some(account) = StreamCategory::Subscription
                    .id_in(stream)
                    .and_then(|id| Uuid::parse_str(id).ok())
                else {
                    return Ok(false);
                };
                self.billing
                    .on_subscription_event(
                        &context(event),
                        AccountId(account),
                        event.envelope.event_id,
                        subscription,
                    )
                    .await?;
                Ok(true)
            }
            Some(DomainEvent::Purchase(PurchaseEvent::PurchaseCompleted {
                provider_event_id,
                at,
            })) => {
                let Some(purchase) = StreamCategory::Purchase
                    .id_in(stream)
                    .and_then(|id| Uuid::parse_str(id).ok())
                else {
                    return Ok(false);
                };
                self.billing
                    .on_purchase_completed(&context(event), purchase, provider_event_id, *at)
                    .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
