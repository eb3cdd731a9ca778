//! The workspace's rules: who may do what, seats, invitation links, and the invariant
//! that a workspace always has an owner.

use super::{
    ExternalStorage, INVITATION_DAYS, Invitation, InvitationStatus, MAX_NAME, Member, Role,
    StorageHealth, Workspace, WorkspaceCommand, WorkspaceError, WorkspaceEvent,
};
use crate::{AccountId, Aggregate, Timestamp};

mod invitations;

fn invalid(field: &'static str, message: impl Into<String>) -> WorkspaceError {
    WorkspaceError::Invalid {
        field,
        message: message.into(),
    }
}

/// A name of 1 to [`MAX_NAME`] printable characters, trimmed.
fn valid_name(name: &str) -> Result<String, WorkspaceError> {
    let name = name.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_NAME || name.chars().any(char::is_control) {
        return Err(invalid(
            "name",
            format!("must be 1 to {MAX_NAME} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

fn check_expiry(at: Timestamp, expires_at: Timestamp) -> Result<(), WorkspaceError> {
    let (min, max, _) = INVITATION_DAYS;
    let days = expires_at.unix_micros().saturating_sub(at.unix_micros()) / 86_400_000_000;
    if expires_at <= at || days < i64::from(min) || days > i64::from(max) {
        return Err(invalid(
            "expires_in_days",
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(())
}

impl Workspace {
    /// The caller's membership; a non-member (or a deleted workspace) is told "not found".
    fn member(&self, actor: AccountId) -> Result<Member, WorkspaceError> {
        if !self.created || self.deleted {
            return Err(WorkspaceError::NotFound);
        }
        self.members
            .get(&actor)
            .copied()
            .ok_or(WorkspaceError::NotFound)
    }

    fn admin(&self, actor: AccountId) -> Result<Member, WorkspaceError> {
        let member = self.member(actor)?;
        if !member.role.administers() {
            return Err(WorkspaceError::Forbidden(
                "only admins and owners may do this",
            ));
        }
        Ok(member)
    }

    fn owner(&self, actor: AccountId) -> Result<(), WorkspaceError> {
        if self.member(actor)?.role != Role::Owner {
            return Err(WorkspaceError::Forbidden("only owners may do this"));
        }
        Ok(())
    }

    fn is_last_owner(&self, account: AccountId) -> bool {
        self.members.get(&account).map(|m| m.role) == Some(Role::Owner)
            && self.owners().count() == 1
    }

    fn name_or_empty(&self) -> String {
        self.name.clone().unwrap_or_default()
    }

    fn check_seats(&self, seats: u32, at: Timestamp) -> Result<(), WorkspaceError> {
        if self.seats_taken(at) >= seats as usize {
            return Err(WorkspaceError::SeatsFull(seats));
        }
        Ok(())
    }

    fn invitation(&self, id: uuid::Uuid) -> Result<&Invitation, WorkspaceError> {
        self.invitations
            .get(&id)
            .ok_or(WorkspaceError::NoSuchInvitation)
    }

    /// The invitation a link opens, checked: live link, pending, unexpired, the invitee's
    /// address (accepting also needs the account not to be a member yet; declining does
    /// not, so a member invited again can close the invitation).
    fn answerable(
        &self,
        id: uuid::Uuid,
        token_hash: &str,
        email: &str,
        at: Timestamp,
    ) -> Result<&Invitation, WorkspaceError> {
        if !self.created || self.deleted {
            return Err(WorkspaceError::LinkInvalid);
        }
        let invitation = self
            .invitation(id)
            .map_err(|_| WorkspaceError::LinkInvalid)?;
        if invitation.token_hash != token_hash {
            return Err(WorkspaceError::LinkInvalid);
        }
        match invitation.status_at(at) {
            InvitationStatus::Pending => {}
            InvitationStatus::Expired => return Err(WorkspaceError::LinkExpired),
            _ => return Err(WorkspaceError::LinkInvalid),
        }
        if invitation.email != email {
            return Err(WorkspaceError::OtherAddress);
        }
        Ok(invitation)
    }

    /// Who succeeds `leaving` as owner: the longest-standing admin, else member.
    fn successor(&self, leaving: AccountId) -> Option<AccountId> {
        self.members
            .iter()
            .filter(|(id, _)| **id != leaving)
            .max_by_key(|(id, m)| (m.role, std::cmp::Reverse((m.joined_at, **id))))
            .map(|(id, _)| *id)
    }

    fn decide_members(
        &self,
        command: &WorkspaceCommand,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        use WorkspaceCommand as C;
        use WorkspaceEvent as E;
        match command {
            C::ChangeRole {
                actor,
                member,
                role,
                at,
            } => {
                let me = self.admin(*actor)?;
                let current = self
                    .members
                    .get(member)
                    .ok_or(WorkspaceError::NoSuchMember)?
                    .role;
                // Owners are made and unmade by owners only.
                if (current == Role::Owner || *role == Role::Owner) && me.role != Role::Owner {
                    return Err(WorkspaceError::Forbidden("only owners may change owners"));
                }
                if current == *role {
                    return Ok(vec![]);
                }
                if self.is_last_owner(*member) {
                    return Err(WorkspaceError::LastOwner);
                }
                Ok(vec![E::MemberRoleChanged {
                    account_id: *member,
                    role: *role,
                    by: *actor,
                    at: *at,
                }])
            }
            C::Remove { actor, member, at } => {
                let me = self.admin(*actor)?;
                let target = self
                    .members
                    .get(member)
                    .ok_or(WorkspaceError::NoSuchMember)?;
                if member == actor {
                    return Err(WorkspaceError::RemovingSelf);
                }
                if target.role == Role::Owner && me.role != Role::Owner {
                    return Err(WorkspaceError::Forbidden("only owners may remove owners"));
                }
                if self.is_last_owner(*member) {
                    return Err(WorkspaceError::LastOwner);
                }
                Ok(vec![E::MemberRemoved {
                    account_id: *member,
                    by: *actor,
                    workspace_name: self.name_or_empty(),
                    at: *at,
                }])
            }
            C::Leave { actor, at } => {
                self.member(*actor)?;
                if self.is_last_owner(*actor) {
                    return Err(WorkspaceError::LastOwner);
                }
                Ok(vec![E::MemberLeft {
                    account_id: *actor,
                    account_deleted: false,
                    at: *at,
                }])
            }
            C::TransferOwnership { actor, to, at } => {
                self.owner(*actor)?;
                if !self.members.contains_key(to) {
                    return Err(WorkspaceError::NoSuchMember);
                }
                if to == actor {
                    return Err(WorkspaceError::AlreadyOwner);
                }
                Ok(vec![E::OwnershipTransferred {
                    from: *actor,
                    to: *to,
                    at: *at,
                }])
            }
            C::ForgetAccount { account, at } => {
                if !self.created || self.deleted || !self.members.contains_key(account) {
                    return Ok(vec![]);
                }
                if self.members.len() == 1 {
                    return Ok(self.deletion(*account, *at));
                }
                let mut events = Vec::new();
                if self.is_last_owner(*account)
                    && let Some(successor) = self.successor(*account)
                {
                    events.push(E::OwnershipTransferred {
                        from: *account,
                        to: successor,
                        at: *at,
                    });
                }
                events.push(E::MemberLeft {
                    account_id: *account,
                    account_deleted: true,
                    at: *at,
                });
                Ok(events)
            }
            _ => unreachable!("only member commands are decided here"),
        }
    }

    /// Deleting: pending invitations die first, then the workspace.
    fn deletion(&self, by: AccountId, at: Timestamp) -> Vec<WorkspaceEvent> {
        let mut events: Vec<WorkspaceEvent> = self
            .invitations
            .iter()
            .filter(|(_, i)| i.status == InvitationStatus::Pending)
            .map(|(id, _)| WorkspaceEvent::InvitationRevoked {
                invitation_id: *id,
                by: None,
                at,
            })
            .collect();
        events.push(WorkspaceEvent::WorkspaceDeleted { by, at });
        events
    }

    fn decide_settings(
        &self,
        command: &WorkspaceCommand,
    ) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        use WorkspaceCommand as C;
        use WorkspaceEvent as E;
        match command {
            C::ConfigureStudio {
                actor,
                schema_version,
                set,
                resets,
                at,
            } => {
                self.admin(*actor)?;
                let resets: Vec<String> = resets
                    .iter()
                    .filter(|k| self.studio.contains_key(*k))
                    .cloned()
                    .collect();
                let set: std::collections::BTreeMap<_, _> = set
                    .0
                    .iter()
                    .filter(|(k, v)| self.studio.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if set.is_empty() && resets.is_empty() {
                    return Ok(vec![]);
                }
                Ok(vec![E::StudioConfigured {
                    by: *actor,
                    schema_version: *schema_version,
                    set: super::SettingValues(set),
                    resets,
                    at: *at,
                }])
            }
            C::ConfigureStorage {
                actor,
                settings,
                at,
            } => {
                self.admin(*actor)?;
                let ExternalStorage {
                    bucket,
                    region,
                    endpoint,
                    access_key_id,
                    secret_access_key,
                    force_path_style,
                } = settings.as_ref();
                Ok(vec![E::StorageConfigured {
                    by: *actor,
                    bucket: bucket.clone(),
                    region: region.clone(),
                    endpoint: endpoint.clone(),
                    access_key_hint: key_hint(access_key_id),
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    force_path_style: *force_path_style,
                    at: *at,
                }])
            }
            C::ResetStorage { actor, at } => {
                self.admin(*actor)?;
                if self.storage.external.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![E::StorageReset {
                    by: *actor,
                    at: *at,
                }])
            }
            C::RecordProbe {
                probed,
                problem,
                at,
            } => {
                if !self.created || self.deleted || self.storage.external.as_ref() != Some(probed) {
                    return Ok(vec![]);
                }
                let was_working = self.storage.health == StorageHealth::Working;
                let changed = was_working == problem.is_some();
                Ok(vec![E::StorageProbed {
                    problem: problem.clone(),
                    changed,
                    notify: if changed {
                        self.administrators()
                    } else {
                        vec![]
                    },
                    at: *at,
                }])
            }
            _ => unreachable!("only settings commands are decided here"),
        }
    }
}

/// An access key's prefix and last four characters.
pub fn key_hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

impl Aggregate for Workspace {
    type Event = WorkspaceEvent;
    type Command = WorkspaceCommand;
    type Error = WorkspaceError;

    fn decide(&self, command: &WorkspaceCommand) -> Result<Vec<WorkspaceEvent>, WorkspaceError> {
        use WorkspaceCommand as C;
        use WorkspaceEvent as E;
        match command {
            C::Create { owner, name, at } => {
                if self.created {
                    return Err(WorkspaceError::Exists);
                }
                Ok(vec![E::WorkspaceCreated {
                    owner: *owner,
                    name: valid_name(name)?,
                    at: *at,
                }])
            }
            C::Rename { actor, name, at } => {
                self.admin(*actor)?;
                let name = valid_name(name)?;
                if self.name.as_deref() == Some(name.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![E::WorkspaceRenamed {
                    by: *actor,
                    name,
                    at: *at,
                }])
            }
            C::Delete { actor, confirm, at } => {
                self.owner(*actor)?;
                if self.name.as_deref() != Some(confirm.trim()) {
                    return Err(WorkspaceError::ConfirmMismatch);
                }
                Ok(self.deletion(*actor, *at))
            }
            C::Invite { .. }
            | C::Resend { .. }
            | C::RevokeInvitation { .. }
            | C::Accept { .. }
            | C::Decline { .. } => self.decide_invitations(command),
            C::ChangeRole { .. }
            | C::Remove { .. }
            | C::Leave { .. }
            | C::TransferOwnership { .. }
            | C::ForgetAccount { .. } => self.decide_members(command),
            C::ConfigureStudio { .. }
            | C::ConfigureStorage { .. }
            | C::ResetStorage { .. }
            | C::RecordProbe { .. } => self.decide_settings(command),
        }
    }

    fn evolve(&mut self, event: &WorkspaceEvent) {
        self.apply(event);
    }
}
