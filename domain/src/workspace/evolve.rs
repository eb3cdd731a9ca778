//! How a workspace's events fold into its state.

use super::{
    ExternalStorage, Invitation, InvitationStatus, Member, Role, StorageHealth, Workspace,
    WorkspaceEvent,
};
use crate::{AccountId, Timestamp};

impl Workspace {
    /// Folds `event` into the state (the aggregate's `evolve`).
    pub(super) fn apply(&mut self, event: &WorkspaceEvent) {
        use WorkspaceEvent as E;
        match event {
            E::WorkspaceCreated { owner, name, at } => {
                self.created = true;
                self.name = Some(name.clone());
                self.members.insert(
                    *owner,
                    Member {
                        role: Role::Owner,
                        joined_at: *at,
                    },
                );
            }
            E::WorkspaceRenamed { name, .. } => self.name = Some(name.clone()),
            E::MemberInvited {
                invitation_id,
                email,
                role,
                token_hash,
                generation,
                expires_at,
                invited_by,
                ..
            } => {
                self.invitations.insert(
                    *invitation_id,
                    Invitation {
                        invited_by: *invited_by,
                        email: email.clone(),
                        role: *role,
                        token_hash: token_hash.clone(),
                        generation: *generation,
                        expires_at: *expires_at,
                        status: InvitationStatus::Pending,
                    },
                );
            }
            E::InvitationRefreshed {
                invitation_id,
                role,
                token_hash,
                generation,
                expires_at,
                ..
            } => {
                if let Some(i) = self.invitations.get_mut(invitation_id) {
                    i.role = *role;
                    i.token_hash.clone_from(token_hash);
                    i.generation = *generation;
                    i.expires_at = *expires_at;
                    i.status = InvitationStatus::Pending;
                }
            }
            E::InvitationRevoked { invitation_id, .. } => {
                self.set_status(*invitation_id, InvitationStatus::Revoked);
            }
            E::InvitationDeclined {
                invitation_id, at, ..
            } => {
                self.answered(
                    *invitation_id,
                    InvitationStatus::Declined,
                    Role::Member,
                    *at,
                );
            }
            E::InvitationAccepted {
                invitation_id,
                account_id,
                role,
                at,
            } => {
                self.answered(*invitation_id, InvitationStatus::Accepted, *role, *at);
                self.members.insert(
                    *account_id,
                    Member {
                        role: *role,
                        joined_at: *at,
                    },
                );
            }
            E::MemberRoleChanged {
                account_id, role, ..
            } => {
                if let Some(m) = self.members.get_mut(account_id) {
                    m.role = *role;
                }
            }
            E::MemberRemoved { account_id, .. } | E::MemberLeft { account_id, .. } => {
                self.members.remove(account_id);
            }
            E::OwnershipTransferred { from, to, .. } => {
                if let Some(m) = self.members.get_mut(from) {
                    m.role = Role::Admin;
                }
                if let Some(m) = self.members.get_mut(to) {
                    m.role = Role::Owner;
                }
            }
            E::StudioConfigured { set, resets, .. } => {
                crate::settings::apply(&mut self.studio, &set.0, resets);
            }
            E::StorageConfigured {
                bucket,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
                force_path_style,
                at,
                ..
            } => {
                self.storage.external = Some(ExternalStorage {
                    bucket: bucket.clone(),
                    region: region.clone(),
                    endpoint: endpoint.clone(),
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    force_path_style: *force_path_style,
                });
                self.storage.health = StorageHealth::Working;
                self.storage.last_checked_at = Some(*at);
            }
            E::StorageReset { .. } => self.storage = Default::default(),
            E::StorageProbed { problem, at, .. } => {
                self.storage.last_checked_at = Some(*at);
                match (problem, &self.storage.health) {
                    (None, _) => self.storage.health = StorageHealth::Working,
                    (Some(problem), StorageHealth::Working) => {
                        self.storage.health = StorageHealth::Misconfigured {
                            problem: problem.clone(),
                            since: *at,
                        };
                    }
                    (Some(problem), StorageHealth::Misconfigured { since, .. }) => {
                        self.storage.health = StorageHealth::Misconfigured {
                            problem: problem.clone(),
                            since: *since,
                        };
                    }
                }
            }
            E::WorkspaceDeleted { .. } => self.deleted = true,
            // Only the key caches follow it.
            E::KeysShredded { .. } => {}
        }
    }
}

impl Workspace {
    /// The invitation of `email` (canonical) still pending at `at`, if any: inviting the
    /// address again refreshes it.
    pub fn pending_invitation(&self, email: &str, at: Timestamp) -> Option<uuid::Uuid> {
        self.invitations
            .iter()
            .find(|(_, i)| i.email == email && i.status_at(at) == InvitationStatus::Pending)
            .map(|(id, _)| *id)
    }

    /// Closes an answered invitation. Its key is destroyed once it is answered, so a fold
    /// from the log no longer reads how it was sent: it is known from its answer alone,
    /// closed all the same (a resend or a revocation of it is refused as closed on every
    /// node, not as unknown on those that did not see it sent).
    fn answered(
        &mut self,
        invitation: uuid::Uuid,
        status: InvitationStatus,
        role: Role,
        at: Timestamp,
    ) {
        self.invitations
            .entry(invitation)
            .or_insert_with(|| Invitation {
                invited_by: AccountId(uuid::Uuid::nil()),
                email: String::new(),
                role,
                token_hash: String::new(),
                generation: 0,
                expires_at: at,
                status,
            })
            .status = status;
    }

    fn set_status(&mut self, invitation: uuid::Uuid, status: InvitationStatus) {
        if let Some(i) = self.invitations.get_mut(&invitation) {
            i.status = status;
        }
    }
}
