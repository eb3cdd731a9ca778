//! Account erasure: after `AccountDeleted`, ends the subscription, frees the e-mail
//! address, deletes the avatar, the responses kept for replay and (embedded) the mail
//! written for it, and destroys the account's data key — after which the personal data in
//! its events and read models is unreadable for good, while the log itself stays
//! append-only and intact. After `WorkspaceDeleted` it destroys the workspace's key and
//! its invitations' again (the deleting request may have stopped before it did) and
//! deletes (embedded) the invitations mailed for the workspace. After an invitation is
//! accepted or declined it destroys the invitation's own key, which sealed the invitee's
//! address in its events: the address then lives on only in the invitee's account, and
//! goes with it. Keys destroyed are then recorded (`KeysShredded`), for every node's key
//! eviction. Every step is idempotent.

use crate::mail::transport::FolderMailTransport;
use async_trait::async_trait;
use commands::access_tokens::AccessTokens;
use commands::accounts::Accounts;
use commands::billing::Billing;
use commands::idempotency::IdempotencyStore;
use commands::workspaces::Workspaces;
use commands::{Clock, CommandContext, CommandError, Executor};
use domain::account::AccountEvent;
use domain::workspace::WorkspaceEvent;
use domain::{AccountId, DomainEvent, StreamCategory, WorkspaceId};
use projections::{Follower, Reactor, checkpoints};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::{Actor, BlobStore, Database, DecodedEvent, GlobalPosition};
use uuid::Uuid;

/// Erases deleted accounts.
pub struct ErasureReactor {
    db: Database,
    accounts: Accounts,
    tokens: AccessTokens,
    billing: Billing,
    exec: Executor,
    idempotency: IdempotencyStore,
    blobs: Arc<dyn BlobStore>,
    mail_folder: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    workspaces: Option<Workspaces>,
}

impl ErasureReactor {
    /// Acts through these services.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Database,
        accounts: Accounts,
        tokens: AccessTokens,
        billing: Billing,
        exec: Executor,
        idempotency: IdempotencyStore,
        blobs: Arc<dyn BlobStore>,
        mail_folder: Option<PathBuf>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            db,
            accounts,
            tokens,
            billing,
            exec,
            idempotency,
            blobs,
            mail_folder,
            clock,
            workspaces: None,
        }
    }

    /// Also takes the deleted account out of its workspaces (see
    /// [`Workspaces::forget_account`]).
    pub fn with_workspaces(mut self, workspaces: Workspaces) -> Self {
        self.workspaces = Some(workspaces);
        self
    }
}

impl ErasureReactor {
    /// Waits until `read_model` has seen the deletion at `deleted_at`, so what it lists of
    /// the account is complete.
    async fn caught_up(
        &self,
        read_model: Follower,
        deleted_at: GlobalPosition,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut waited = Duration::ZERO;
        loop {
            let seen = checkpoints::stored(&self.db, read_model).await?;
            if seen.is_some_and(|p| p >= deleted_at) {
                return Ok(());
            }
            if waited >= Duration::from_secs(5) {
                return Err(format!(
                    "the {} read model has not caught up with the deletion yet",
                    read_model.key()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            waited += Duration::from_millis(50);
        }
    }

    /// The account leaves every workspace it belonged to; a workspace it was the last
    /// owner of gets a successor, one it was alone in is deleted.
    async fn leave_workspaces(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        deleted_at: GlobalPosition,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(workspaces) = &self.workspaces else {
            return Ok(());
        };
        self.caught_up(Follower::Workspaces, deleted_at).await?;
        for workspace in projections::workspaces::ids_of_member(&self.db, account_id).await? {
            workspaces
                .forget_account(ctx, workspace, account_id)
                .await?;
        }
        Ok(())
    }

    /// The embedded default's mail folder keeps the invitations mailed for a workspace under
    /// its id (they hold the invitees' addresses): deleted with the workspace.
    async fn erase_workspace_mail(
        &self,
        workspace: WorkspaceId,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(folder) = &self.mail_folder {
            FolderMailTransport::erase_folder_of(folder, workspace.0).await?;
            tracing::info!(%workspace, "mail of a deleted workspace erased");
        }
        Ok(())
    }

    /// Revokes every API and CLI token of the account. (They are refused already: the
    /// token read model drops their hashes on `AccountDeleted`; this records it in each
    /// token's stream.) The list comes from the read model, once it has seen the deletion.
    async fn revoke_tokens(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        deleted_at: GlobalPosition,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.caught_up(Follower::AccessTokens, deleted_at).await?;
        for token_id in projections::access_tokens::ids_of_account(&self.db, account_id).await? {
            match self.tokens.revoke(ctx, account_id, token_id).await {
                Ok(_)
                | Err(CommandError::Rejected {
                    code: "token_not_found",
                    ..
                }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }
}

/// The context of what the reactor does about `event`: caused by it, in its correlation.
fn reaction(event: &DecodedEvent) -> CommandContext {
    CommandContext {
        correlation_id: event.envelope.metadata.correlation_id,
        causation_id: Some(event.envelope.event_id),
        actor: Actor::System {
            component: Follower::AccountErasure.key().into(),
        },
        idempotency_key: None,
    }
}

#[async_trait]
impl Reactor for ErasureReactor {
    fn name(&self) -> Follower {
        Follower::AccountErasure
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Account, StreamCategory::Workspace]
    }

    async fn react(
        &self,
        event: &DecodedEvent,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        let workspace = StreamCategory::Workspace
            .id_in(&event.envelope.stream)
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(WorkspaceId);
        match (event.event(), workspace) {
            (Some(DomainEvent::Workspace(WorkspaceEvent::WorkspaceDeleted { .. })), Some(id)) => {
                if let Some(workspaces) = &self.workspaces {
                    workspaces.shred_deleted(&reaction(event), id).await?;
                }
                self.erase_workspace_mail(id).await?;
                return Ok(true);
            }
            (
                Some(DomainEvent::Workspace(
                    WorkspaceEvent::InvitationAccepted { invitation_id, .. }
                    | WorkspaceEvent::InvitationDeclined { invitation_id, .. },
                )),
                Some(id),
            ) => {
                let keys = self.exec.codec().keys();
                keys.destroy(*invitation_id, self.clock.now()).await?;
                if let Some(workspaces) = &self.workspaces {
                    let shredded = vec![*invitation_id];
                    workspaces
                        .record_shredded(&reaction(event), id, shredded)
                        .await?;
                }
                return Ok(true);
            }
            _ => {}
        }
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
        let ctx = reaction(event);
        self.billing.end_now(&ctx, account_id).await?;
        self.accounts
            .release_email(&ctx, reservation_stream, account_id)
            .await?;
        if let Some(key) = avatar_blob_key {
            self.blobs.delete(key).await?;
        }
        self.revoke_tokens(&ctx, account_id, event.envelope.position)
            .await?;
        self.leave_workspaces(&ctx, account_id, event.envelope.position)
            .await?;
        self.idempotency.purge_account(account_id).await?;
        self.exec
            .codec()
            .keys()
            .destroy(account_id.0, self.clock.now())
            .await?;
        self.exec
            .forget(&StreamCategory::Account.stream(account_id));
        self.exec
            .forget(&StreamCategory::ProviderKeys.stream(account_id.0));
        // The embedded default's mail folder held the account's messages.
        if let Some(folder) = &self.mail_folder {
            FolderMailTransport::erase(folder, account_id).await?;
        }
        // Last: every node that follows the log forgets the key it may have cached.
        self.accounts.record_erasure(&ctx, account_id).await?;
        tracing::info!(%account_id, "account erased");
        Ok(true)
    }
}
