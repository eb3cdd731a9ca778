//! Invitations: sending one (or sending it again), each sealed with a data key of its own,
//! and answering one through its link, which destroys that key.

use super::{Workspaces, command_time, committed, workspace_stream};
use crate::error::CommandError;
use crate::executor::{CommandContext, Executed};
use crate::workspaces::InvitationSent;
use domain::workspace::{
    INVITATION_DAYS, LinkHashes, Role, Workspace, WorkspaceCommand, WorkspaceError, WorkspaceEvent,
};
use domain::{AccountId, Aggregate, WorkspaceId};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;
use vault::InvitationLinks;

/// Decisions an invitation may start again from (another admin inviting or answering for
/// the same address at that moment) before it gives up.
const INVITE_ATTEMPTS: usize = 3;

impl Workspaces {
    /// Invites `email` (canonical; held by the account `invitee`, if any) as `role`, or
    /// refreshes its pending invitation.
    ///
    /// The invitation's events are sealed with a data key of its own (their data subject
    /// is the invitation), destroyed once it is answered ([`Workspaces::answer`], and the
    /// erasure reactor again): the invitee's address then lives on only in their own
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
        invitee: Option<AccountId>,
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
                invitee,
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
            // Nothing was appended (the state moved, or the tip refused what the read
            // state allowed: a seat taken meanwhile): a new key sealed nothing.
            let refused = matches!(executed, Err(CommandError::Rejected { .. }));
            if (moved || refused) && pending.is_none() {
                self.keys.discard_unused(invitation_id).await?;
            }
            if moved {
                continue;
            }
            // Not moved: the decision sent, or sent again, `invitation_id`.
            return Ok(InvitationSent {
                invitation_id,
                expires_at,
                position: committed(executed?.position)?,
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
        let command =
            WorkspaceCommand::answer(accept, invitation_id, token_hash, account, email, at);
        let (_, position) = self.run(ctx, workspace, command).await?;
        // The invitation's key goes once it is answered: at once here, before another node
        // that reads the answer forgets the key (the erasure reactor does it too, should
        // this process stop first).
        self.keys.destroy(invitation_id, at).await?;
        Ok((workspace, committed(position)?))
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
