//! Account erasure: after `AccountDeleted`, ends the subscription, frees the e-mail
//! address, deletes the avatar and the responses kept for replay, and destroys the
//! account's data key — after which the personal data in its events is unreadable for
//! good, while the log itself stays append-only and intact. Every step is idempotent.

use async_trait::async_trait;
use commands::accounts::Accounts;
use commands::billing::Billing;
use commands::idempotency::IdempotencyStore;
use commands::{Clock, CommandContext, Executor};
use domain::account::AccountEvent;
use domain::{AccountId, DomainEvent, StreamCategory};
use projections::Reactor;
use std::sync::Arc;
use store::{Actor, BlobStore, DecodedEvent};
use uuid::Uuid;

/// Erases deleted accounts.
pub struct ErasureReactor {
    accounts: Accounts,
    billing: Billing,
    exec: Executor,
    idempotency: IdempotencyStore,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
}

impl ErasureReactor {
    /// Acts through these services.
    pub fn new(
        accounts: Accounts,
        billing: Billing,
        exec: Executor,
        idempotency: IdempotencyStore,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            accounts,
            billing,
            exec,
            idempotency,
            blobs,
            clock,
        }
    }
}

#[async_trait]
impl Reactor for ErasureReactor {
    fn name(&self) -> &'static str {
        "account-erasure"
    }

    async fn react(
        &self,
        event: &DecodedEvent,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let Some(DomainEvent::Account(AccountEvent::AccountDeleted {
            reservation_stream,
            avatar_blob_key,
            ..
        })) = event.event()
        else {
            return Ok(false);
        };
        let Some(account_id) = StreamCategory::Account
            .id_in(&event.envelope.stream)
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(AccountId)
        else {
            return Ok(false);
        };
        let ctx = CommandContext {
            correlation_id: event.envelope.metadata.correlation_id,
            causation_id: Some(event.envelope.event_id),
            actor: Actor::System {
                component: "account-erasure".into(),
            },
            idempotency_key: None,
        };
        self.billing.end_now(&ctx, account_id).await?;
        self.accounts
            .release_email(&ctx, reservation_stream, account_id)
            .await?;
        if let Some(key) = avatar_blob_key {
            self.blobs.delete(key).await?;
        }
        self.idempotency.purge_account(account_id).await?;
        self.exec
            .codec()
            .keys()
            .destroy(account_id.0, self.clock.now())
            .await?;
        self.exec
            .forget(&StreamCategory::Account.stream(account_id));
        tracing::info!(%account_id, "account erased");
        Ok(true)
    }
}
