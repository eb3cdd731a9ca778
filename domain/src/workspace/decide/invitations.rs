//! The rules of invitations: who may invite, resend and revoke, seats, expiry, and who
//! may accept or decline a link.

use super::{check_expiry, invalid};
use crate::workspace::{
    InvitationStatus, Role, Workspace, WorkspaceCommand, WorkspaceError, WorkspaceEvent,
};

impl Workspace {
    pub(super) fn decide_invitations(
        &self,
        command: &WorkspaceCommand,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        use WorkspaceCommand as C;
        use WorkspaceEvent as E;
        match command {
            C::Invite {
                actor,
                invitation_id,
                email,
                invitee,
                role,
                link,
                expires_at,
                seats,
                at,
            } => {
                self.admin(*actor)?;
                if *role == Role::Owner {
                    return Err(invalid("role", "must be admin or member"));
                }
                // A member's address: an invitation would hold a seat it could never use.
                if invitee.is_some_and(|account| self.members.contains_key(&account)) {
                    return Err(WorkspaceError::AlreadyMember);
                }
                check_expiry(*at, *expires_at)?;
                let pending = self
                    .pending_invitation(email, *at)
                    .and_then(|id| Some((id, self.invitations.get(&id)?)));
                if let Some((id, invitation)) = pending {
                    let generation = invitation.generation + 1;
                    return Ok(vec![E::InvitationRefreshed {
                        invitation_id: id,
                        email: email.clone(),
                        role: *role,
                        token_hash: link.hash(id, generation),
                        generation,
                        expires_at: *expires_at,
                        by: *actor,
                        workspace_name: self.name_or_empty(),
                        at: *at,
                    }]);
                }
                self.check_seats(*seats, *at)?;
                if self.invitations.contains_key(invitation_id) {
                    return Err(invalid("invitation_id", "is taken"));
                }
                Ok(vec![E::MemberInvited {
                    invitation_id: *invitation_id,
                    email: email.clone(),
                    role: *role,
                    token_hash: link.hash(*invitation_id, 1),
                    generation: 1,
                    expires_at: *expires_at,
                    invited_by: *actor,
                    workspace_name: self.name_or_empty(),
                    at: *at,
                }])
            }
            C::Resend {
                actor,
                invitation_id,
                link,
                expires_at,
                seats,
                at,
            } => {
                self.admin(*actor)?;
                let invitation = self.invitation(*invitation_id)?;
                match invitation.status_at(*at) {
                    InvitationStatus::Pending => {}
                    // An expired invitation takes a seat again.
                    InvitationStatus::Expired => self.check_seats(*seats, *at)?,
                    status => return Err(WorkspaceError::InvitationClosed(status.as_str())),
                }
                check_expiry(*at, *expires_at)?;
                let generation = invitation.generation + 1;
                Ok(vec![E::InvitationRefreshed {
                    invitation_id: *invitation_id,
                    email: invitation.email.clone(),
                    role: invitation.role,
                    token_hash: link.hash(*invitation_id, generation),
                    generation,
                    expires_at: *expires_at,
                    by: *actor,
                    workspace_name: self.name_or_empty(),
                    at: *at,
                }])
            }
            C::RevokeInvitation {
                actor,
                invitation_id,
                at,
            } => {
                self.admin(*actor)?;
                let invitation = self.invitation(*invitation_id)?;
                match invitation.status_at(*at) {
                    InvitationStatus::Pending | InvitationStatus::Expired => {
                        Ok(vec![E::InvitationRevoked {
                            invitation_id: *invitation_id,
                            by: Some(*actor),
                            at: *at,
                        }])
                    }
                    status => Err(WorkspaceError::InvitationClosed(status.as_str())),
                }
            }
            C::Accept {
                invitation_id,
                token_hash,
                account,
                email,
                at,
            } => {
                let invitation = self.answerable(*invitation_id, token_hash, email, *at)?;
                if self.members.contains_key(account) {
                    return Err(WorkspaceError::AlreadyMember);
                }
                Ok(vec![E::InvitationAccepted {
                    invitation_id: *invitation_id,
                    account_id: *account,
                    role: invitation.role,
                    at: *at,
                }])
            }
            C::Decline {
                invitation_id,
                token_hash,
                account,
                email,
                at,
            } => {
                self.answerable(*invitation_id, token_hash, email, *at)?;
                Ok(vec![E::InvitationDeclined {
                    invitation_id: *invitation_id,
                    account_id: *account,
                    at: *at,
                }])
            }
            _ => unreachable!("only invitation commands are decided here"),
        }
    }
}
