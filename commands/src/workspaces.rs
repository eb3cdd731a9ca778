//! Workspace commands: creating (with the workspace's own data key), renaming,
//! invitations and their links, members and roles, ownership, the studio configuration,
//! storage settings, and deletion (which destroys the key, and with it the sealed name,
//! invitees' addresses and storage credentials).

use crate::clock::Clock;
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executed, Executor};
use domain::workspace::{
    ExternalStorage, INVITATION_DAYS, LinkHashes, Role, SettingValues, Workspace, WorkspaceCommand,
    WorkspaceError, WorkspaceEvent,
};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp, WorkspaceId};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;
use vault::{DataKeys, InvitationLinks};

/// Decisions an invitation may start again from (another admin inviting or answering for
/// the same address at that moment) before it gives up.
const INVITE_ATTEMPTS: usize = 3;

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

    /// Invites `email` (canonical) as `role`, or refreshes its pending invitation.
    ///
    /// The invitation's events are sealed with a data key of its own (their data subject
    /// is the invitation), destroyed once it is answered (`crate::workspaces` callers:
    /// the erasure reactor): the invitee's address then lives on only in their own
    /// account, whose erasure erases it. The invitation is the address's pending one if it
    /// has one, else a new one; a decision against a state where that no longer holds
    /// appends nothing, and the command starts again from the state it then reads.
    #[allow(clippy::too_many_arguments)]
    pub async fn invite(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        actor: AccountId,
        email: String,
        role: Role,
        expires_in_days: Option<u32>,
        seats: u32,
    ) -> Result<InvitationSent, CommandError> {
        let at = self.clock.now();
        let expires_at = at.plus(lifetime(expires_in_days)?);
        for _ in 0..INVITE_ATTEMPTS {
            let known = self.load(workspace).await?;
            let pending = known.pending_invitation(&email, at);
            let invitation_id = pending.unwrap_or_else(Uuid::new_v4);
            let command = WorkspaceCommand::Invite {
                actor,
                invitation_id,
                email: email.clone(),
                role,
                link: self.link_hashes(workspace),
                expires_at,
                seats,
                at,
            };
            let mut moved = false;
            let executed = self
                .on_invitation(ctx, workspace, &known, invitation_id, &command, |w| {
                    moved = w.pending_invitation(&email, at) != pending;
                    if moved {
                        return Ok(vec![]);
                    }
                    Ok(w.decide(&command)?)
                })
                .await;
            if moved {
                // Nothing was appended: a new key sealed nothing.
                if pending.is_none() {
                    self.keys.discard_unused(invitation_id).await?;
                }
                continue;
            }
            let executed = executed?;
            return Ok(InvitationSent {
                invitation_id: invited(&executed.events)?,
                expires_at,
                position: committed(executed.position)?,
            });
        }
        Err(CommandError::Contention)
    }

    /// Runs `command` (an invitation sent or sent again) on `workspace`, its events sealed
    /// with the invitation's own key (made now if it has none), once `known`, the
    /// workspace as read, does not refuse it (no such workspace or invitation, the
    /// caller's role, the seats): a refused command makes no key. `decide` decides it
    /// against the state the append checks.
    async fn on_invitation(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        known: &Workspace,
        invitation_id: Uuid,
        command: &WorkspaceCommand,
        decide: impl FnMut(&Workspace) -> Result<Vec<WorkspaceEvent>, CommandError>,
    ) -> Result<Executed<Workspace>, CommandError> {
        known.decide(command)?;
        let at = command_time(command);
        self.keys.create(invitation_id, at).await?;
        self.exec
            .execute::<Workspace, _>(
                &workspace_stream(workspace),
                ctx,
                Some(invitation_id),
                at,
                decide,
            )
            .await
    }

    /// A new link and expiry for an invitation.
    pub async fn resend(
        &self,
        ctx: &CommandContext,
        workspace: WorkspaceId,
        actor: AccountId,
        invitation_id: Uuid,
        expires_in_days: Option<u32>,
        seats: u32,
    ) -> Result<InvitationSent, CommandError> {
        let at = self.clock.now();
        let expires_at = at.plus(lifetime(expires_in_days)?);
        let command = WorkspaceCommand::Resend {
            actor,
            invitation_id,
            link: self.link_hashes(workspace),
            expires_at,
            seats,
            at,
        };
        // Sealed with the invitation's key, as `invite` does (one made before keys were
        // per invitation gets its key now).
        let known = self.load(workspace).await?;
        let position = self
            .on_invitation(ctx, workspace, &known, invitation_id, &command, |w| {
                Ok(w.decide(&command)?)
            })
            .await?
            .position;
        Ok(InvitationSent {
            invitation_id,
            expires_at,
            position: committed(position)?,
        })
    }

    /// Accepts (`accept`) or declines the invitation `token` opens, for `account` whose
    /// canonical address is `email`. Returns the workspace joined.
    pub async fn answer(
        &self,
        ctx: &CommandContext,
        token: &str,
        account: AccountId,
        email: String,
        accept: bool,
    ) -> Result<(WorkspaceId, GlobalPosition), CommandError> {
        let (workspace, invitation_id) = InvitationLinks::parse(token).ok_or_else(invalid_link)?;
        let token_hash = vault::token_hash(token);
        let at = self.clock.now();
        let command = if accept {
            WorkspaceCommand::Accept {
                invitation_id,
                token_hash,
                account,
                email,
                at,
            }
        } else {
            WorkspaceCommand::Decline {
                invitation_id,
                token_hash,
                account,
                email,
                at,
            }
        };
        let (_, position) = self.run(ctx, workspace, command).await?;
        // The invitation's key goes once it is answered: at once here, before another node
        // that reads the answer forgets the key (the erasure reactor does it too, should
        // this process stop first).
        self.keys.destroy(invitation_id, at).await?;
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

    /// Destroys a deleted workspace's key and its invitations': its name, invitees'
    /// addresses and storage credentials no longer open anywhere.
    async fn shred(&self, workspace: WorkspaceId, state: &Workspace) -> Result<(), CommandError> {
        let mut keys: Vec<Uuid> = state.invitations.keys().copied().collect();
        keys.push(workspace.0);
        self.keys.destroy_all(&keys, self.clock.now()).await?;
        self.exec.forget(&workspace_stream(workspace));
        // Its provider keys were sealed with the same key.
        self.exec
            .forget(&crate::provider_keys::provider_keys_stream(workspace.0));
        Ok(())
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

    fn link_hashes(&self, workspace: WorkspaceId) -> LinkHashes {
        let links = self.links.clone();
        LinkHashes(Arc::new(move |invitation, generation| {
            links.hash(workspace, invitation, generation)
        }))
    }
}

fn invalid_link() -> CommandError {
    WorkspaceError::LinkInvalid.into()
}

fn committed(position: Option<GlobalPosition>) -> Result<GlobalPosition, CommandError> {
    position.ok_or_else(|| CommandError::Internal("the workspace command appended nothing".into()))
}

/// An invitation's lifetime: [`INVITATION_DAYS`].
fn lifetime(days: Option<u32>) -> Result<Duration, CommandError> {
    let (min, max, default) = INVITATION_DAYS;
    let days = days.unwrap_or(default);
    if !(min..=max).contains(&days) {
        return Err(CommandError::Invalid {
            field: "expires_in_days",
            message: format!("must be between {min} and {max}"),
        });
    }
    Ok(Duration::from_secs(u64::from(days) * 86_400))
}

/// The invitation an invite just created or refreshed.
fn invited(events: &[WorkspaceEvent]) -> Result<Uuid, CommandError> {
    events
        .iter()
        .find_map(|e| match e {
            WorkspaceEvent::MemberInvited { invitation_id, .. }
            | WorkspaceEvent::InvitationRefreshed { invitation_id, .. } => Some(*invitation_id),
            _ => None,
        })
        .ok_or_else(|| CommandError::Internal("the invitation is missing".into()))
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
