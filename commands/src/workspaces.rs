//! Workspace commands: creating (with the workspace's own data key), renaming,
//! invitations and their links, members and roles, ownership, the studio configuration,
//! storage settings, and deletion (which destroys the key, and with it the sealed name,
//! invitees' addresses and storage credentials).

use crate::clock::Clock;
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executed, Executor};
use domain::workspace::{
    ExternalStorage, SettingValues, Workspace, WorkspaceCommand, WorkspaceError, WorkspaceEvent,
};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp, WorkspaceId};
use std::sync::Arc;
use store::GlobalPosition;
use uuid::Uuid;
use vault::{DataKeys, InvitationLinks};

mod invitations;

impl From<WorkspaceError> for CommandError {
    fn from(e: WorkspaceError) -> Self {
        use WorkspaceError as E;
        let message = e.to_string();
        let (kind, code) = match e {
            E::NotFound => (Rejection::NotFound, "workspace_not_found"),
            E::Exists => (Rejection::Conflict, "workspace_exists"),
            E::Forbidden(_) => (Rejection::Forbidden, "insufficient_role"),
            E::LastOwner => (Rejection::Conflict, "last_owner"),
            E::SeatsFull(_) => (Rejection::Conflict, "seats_full"),
            E::NoSuchMember => (Rejection::NotFound, "member_not_found"),
            E::NoSuchInvitation => (Rejection::NotFound, "invitation_not_found"),
            // Made-up, used, revoked, replaced: not a live link.
            E::LinkInvalid => (Rejection::NotFound, "invitation_invalid"),
            E::LinkExpired => (Rejection::Gone, "invitation_expired"),
            E::OtherAddress => (Rejection::Forbidden, "invitation_for_another_address"),
            E::AlreadyMember => (Rejection::Conflict, "already_member"),
            E::AlreadyOwner => (Rejection::Conflict, "already_owner"),
            E::RemovingSelf => (Rejection::Conflict, "removing_self"),
            E::InvitationClosed(_) => (Rejection::Conflict, "invitation_closed"),
            // The name it must match is the workspace's current state.
            E::ConfirmMismatch => (Rejection::Conflict, "confirmation_mismatch"),
            E::Invalid { field, message } => return CommandError::Invalid { field, message },
        };
        CommandError::rejected(kind, code, message)
    }
}

/// The stream of a workspace.
pub fn workspace_stream(workspace: WorkspaceId) -> String {
    StreamCategory::Workspace.stream(workspace.0)
}

/// A new invitation's link: its token is shown once (in the answer's e-mail, never in
/// the answer) and derivable again only with the server's key.
#[derive(Debug)]
pub struct InvitationSent {
    /// The invitation (an existing one if the address was pending already).
    pub invitation_id: Uuid,
    /// When its link expires.
    pub expires_at: Timestamp,
    /// Where the change was committed.
    pub position: GlobalPosition,
}

/// Workspace commands.
#[derive(Clone)]
pub struct Workspaces {
    exec: Executor,
    clock: Arc<dyn Clock>,
    keys: Arc<DataKeys>,
    links: InvitationLinks,
}

impl Workspaces {
    /// Handlers over `exec`, sealing with `keys`, signing links with `links`.
    pub fn new(
        exec: Executor,
        clock: Arc<dyn Clock>,
        keys: Arc<DataKeys>,
        links: InvitationLinks,
    ) -> Self {
        Self {
            exec,
            clock,
            keys,
            links,
        }
    }

    /// Runs `command` on the workspace; returns its state after and where it committed.
    pub async fn run(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        command: WorkspaceCommand,
    ) -> Result<(Workspace, Option<GlobalPosition>), CommandError> {
        let executed = self.execute(ctx, workspace, command).await?;
        Ok((executed.state, executed.position))
    }

    #[tracing::instrument(skip_all, fields(%workspace))]
    async fn execute(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        command: WorkspaceCommand,
    ) -> Result<Executed<Workspace>, CommandError> {
        let at = command_time(&command);
        self.exec
            .execute::<Workspace, _>(
                &workspace_stream(workspace),
                ctx,
                Some(workspace.0),
                at,
                |w| Ok(w.decide(&command)?),
            )
            .await
    }

    /// The workspace as its events tell it now.
    pub async fn load(&self, workspace: WorkspaceId) -> Result<Workspace, CommandError> {
        Ok(self
            .exec
            .load::<Workspace>(&workspace_stream(workspace))
            .await?
            .state)
    }

    /// Creates a workspace owned by `owner`, with a data key of its own.
    pub async fn create(
        &self,
        ctx: &CommandContext,
        owner: AccountId,
        name: String,
    ) -> Result<(WorkspaceId, GlobalPosition), CommandError> {
        let at = self.clock.now();
        let command = WorkspaceCommand::Create { owner, name, at };
        // A bad name is refused before a key is made.
        Workspace::default().decide(&command)?;
        let workspace = WorkspaceId(Uuid::new_v4());
        self.keys.create(workspace.0, at).await?;
        let (_, position) = self.run(ctx, workspace, command).await?;
        Ok((workspace, committed(position)?))
    }

    /// Deletes the workspace (its owner confirming its name) and destroys its data key.
    pub async fn delete(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        actor: AccountId,
        confirm: String,
    ) -> Result<GlobalPosition, CommandError> {
        let at = self.clock.now();
        let command = WorkspaceCommand::Delete { actor, confirm, at };
        let (state, position) = self.run(ctx, workspace, command).await?;
        self.shred(workspace, &state).await?;
        committed(position)
    }

    /// A deleted account leaves each workspace it belonged to (see
    /// [`WorkspaceCommand::ForgetAccount`]); a workspace it leaves empty is deleted and
    /// shredded.
    pub async fn forget_account(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        account: AccountId,
    ) -> Result<(), CommandError> {
        let at = self.clock.now();
        let (state, _) = self
            .run(
                ctx,
                workspace,
                WorkspaceCommand::ForgetAccount { account, at },
            )
            .await?;
        if state.deleted {
            self.shred(workspace, &state).await?;
        }
        Ok(())
    }

    /// Destroys the keys of a deleted workspace and its invitations again (whatever of them
    /// the deleting request destroyed already: it may have stopped between its append and
    /// its destruction), then records it with `KeysShredded`, so that every node drops
    /// them from its cache even if it took one again after reading the deletion. The
    /// erasure reactor runs it after each `WorkspaceDeleted`.
    pub async fn shred_deleted(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
    ) -> Result<(), CommandError> {
        let state = self
            .exec
            .load::<Workspace>(&workspace_stream(workspace))
            .await?
            .state;
        let subjects = self.shred(workspace, &state).await?;
        self.record_shredded(ctx, workspace, subjects).await
    }

    /// Records that the keys of `subjects` (the workspace's invitations, or the workspace
    /// itself) were destroyed, for every node's key eviction.
    pub async fn record_shredded(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        subjects: Vec<Uuid>,
    ) -> Result<(), CommandError> {
        let at = self.clock.now();
        let shredded = WorkspaceEvent::KeysShredded { subjects, at };
        // Recorded whatever the workspace's state: a deleted one refuses every command.
        self.exec
            .execute::<Workspace, _>(&workspace_stream(workspace), ctx, None, at, |_| {
                Ok(vec![shredded.clone()])
            })
            .await?;
        Ok(())
    }

    /// Destroys a deleted workspace's key and its invitations': its name, invitees'
    /// addresses and storage credentials no longer open anywhere. Returns the keys'
    /// subjects.
    async fn shred(
        &self,
        workspace: WorkspaceId,
        state: &Workspace,
    ) -> Result<Vec<Uuid>, CommandError> {
        let mut keys: Vec<Uuid> = state.invitations.keys().copied().collect();
        keys.push(workspace.0);
        self.keys.destroy_all(&keys, self.clock.now()).await?;
        self.exec.forget(&workspace_stream(workspace));
        // Its provider keys were sealed with the same key.
        self.exec
            .forget(&crate::provider_keys::provider_keys_stream(workspace.0));
        Ok(keys)
    }

    /// Changes the studio configuration with normalised values.
    pub async fn configure_studio(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        actor: AccountId,
        schema_version: u32,
        set: SettingValues,
        resets: Vec<String>,
    ) -> Result<(Workspace, Option<GlobalPosition>), CommandError> {
        let at = self.clock.now();
        let command = WorkspaceCommand::ConfigureStudio {
            actor,
            schema_version,
            set,
            resets,
            at,
        };
        self.run(ctx, workspace, command).await
    }

    /// Records external storage settings that passed their probe.
    pub async fn configure_storage(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        actor: AccountId,
        settings: ExternalStorage,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        let command = WorkspaceCommand::ConfigureStorage {
            actor,
            settings: Box::new(settings),
            at,
        };
        Ok(self.run(ctx, workspace, command).await?.1)
    }
}

fn committed(position: Option<GlobalPosition>) -> Result<GlobalPosition, CommandError> {
    position.ok_or_else(|| CommandError::Internal("the workspace command appended nothing".into()))
}

fn command_time(command: &WorkspaceCommand) -> Timestamp {
    use WorkspaceCommand as C;
    match command {
        C::Create { at, .. }
        | C::Rename { at, .. }
        | C::Invite { at, .. }
        | C::Resend { at, .. }
        | C::RevokeInvitation { at, .. }
        | C::Accept { at, .. }
        | C::Decline { at, .. }
        | C::ChangeRole { at, .. }
        | C::Remove { at, .. }
        | C::Leave { at, .. }
        | C::TransferOwnership { at, .. }
        | C::Delete { at, .. }
        | C::ForgetAccount { at, .. }
        | C::ConfigureStudio { at, .. }
        | C::ConfigureStorage { at, .. }
        | C::ResetStorage { at, .. }
        | C::RecordProbe { at, .. } => *at,
    }
}
