//! Workspaces (`workspace-<id>`): shared-team administration, apart from accounts and
//! billing. A workspace has members with roles, invitations, a studio configuration and
//! its object-storage settings; its personal data (its name, invitees' addresses, storage
//! credentials) is sealed with the workspace's own data key, destroyed when it is deleted.
//!
//! **A workspace always has an owner.** Every command that removes or demotes a member
//! (leave, removal, role change, ownership transfer, the deletion of a member's account)
//! is decided here against the members as they are, so no path leaves it ownerless.

use crate::event::Event;
use crate::{AccountId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

mod commands;
pub(crate) mod decide;
mod evolve;
mod storage;

pub use commands::{ExternalStorage, LinkHashes, WorkspaceCommand};
pub use storage::{StorageHealth, StorageSettings};

/// Longest a workspace's name may be, in characters.
pub const MAX_NAME: usize = 80;
/// Invitation lifetimes, in days: at least, at most, by default.
pub const INVITATION_DAYS: (u32, u32, u32) = (1, 30, 7);

/// Typed settings values by key (already normalised). JSON numbers here are never NaN
/// (JSON has none), so equality is an equivalence and the values can be `Eq` like every
/// event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SettingValues(pub BTreeMap<String, serde_json::Value>);

impl Eq for SettingValues {}

/// What a member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads the workspace, its members and its studio configuration; uses it.
    Member,
    /// A member who also renames the workspace, invites, manages invitations, members and
    /// admins (never owners), the studio configuration and the storage settings.
    Admin,
    /// An admin who also manages owners, transfers ownership and deletes the workspace.
    Owner,
}

impl Role {
    /// Its name, as clients write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Member, Self::Admin, Self::Owner]
            .into_iter()
            .find(|r| r.as_str() == name)
    }

    /// Admins and owners.
    pub fn administers(self) -> bool {
        self >= Self::Admin
    }
}

/// Where an invitation stands (expiry is derived from the time, see
/// [`Invitation::status_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Waiting for an answer.
    Pending,
    /// Accepted: the invitee is a member.
    Accepted,
    /// Declined by the invitee.
    Declined,
    /// Revoked by an admin, or dead with its workspace.
    Revoked,
    /// Pending past its expiry.
    Expired,
}

impl InvitationStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// What happened to a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "workspace")]
pub enum WorkspaceEvent {
    /// Created; its creator is its first owner.
    #[event(personal(name))]
    WorkspaceCreated {
        /// The creator.
        owner: AccountId,
        /// Its name.
        name: String,
        /// When.
        at: Timestamp,
    },
    /// Renamed by an admin.
    #[event(personal(name))]
    WorkspaceRenamed {
        /// Who.
        by: AccountId,
        /// The new name.
        name: String,
        /// When.
        at: Timestamp,
    },
    /// An address was invited (the mail carries a link whose token only the hash of is
    /// kept here).
    #[event(personal(email, workspace_name))]
    MemberInvited {
        /// The invitation.
        invitation_id: Uuid,
        /// The invitee's address, canonical.
        email: String,
        /// The role offered.
        role: Role,
        /// SHA-256 of the link's token.
        token_hash: String,
        /// Which link of the invitation this is (a resend makes a new one).
        generation: u32,
        /// When the link stops working.
        expires_at: Timestamp,
        /// Who invited.
        invited_by: AccountId,
        /// The workspace's name, for the e-mail.
        workspace_name: String,
        /// When.
        at: Timestamp,
    },
    /// A pending or expired invitation got a new link and expiry (a resend, or the same
    /// address invited again); the old link stops working.
    #[event(personal(email, workspace_name))]
    InvitationRefreshed {
        /// The invitation.
        invitation_id: Uuid,
        /// The invitee's address, canonical (for the e-mail).
        email: String,
        /// The role offered now.
        role: Role,
        /// SHA-256 of the new link's token.
        token_hash: String,
        /// The new link's generation.
        generation: u32,
        /// Its expiry.
        expires_at: Timestamp,
        /// Who.
        by: AccountId,
        /// The workspace's name, for the e-mail.
        workspace_name: String,
        /// When.
        at: Timestamp,
    },
    /// Revoked: its link stops working.
    #[event(no_personal_data)]
    InvitationRevoked {
        /// The invitation.
        invitation_id: Uuid,
        /// Who (none when the workspace died).
        by: Option<AccountId>,
        /// When.
        at: Timestamp,
    },
    /// Accepted: the account joined with the role offered.
    #[event(no_personal_data)]
    InvitationAccepted {
        /// The invitation.
        invitation_id: Uuid,
        /// The new member.
        account_id: AccountId,
        /// Its role.
        role: Role,
        /// When.
        at: Timestamp,
    },
    /// Declined.
    #[event(no_personal_data)]
    InvitationDeclined {
        /// The invitation.
        invitation_id: Uuid,
        /// Who declined.
        account_id: AccountId,
        /// When.
        at: Timestamp,
    },
    /// A member's role changed.
    #[event(no_personal_data)]
    MemberRoleChanged {
        /// The member.
        account_id: AccountId,
        /// The new role.
        role: Role,
        /// Who.
        by: AccountId,
        /// When.
        at: Timestamp,
    },
    /// A member was removed by an admin (and is told so by e-mail).
    #[event(personal(workspace_name))]
    MemberRemoved {
        /// The member.
        account_id: AccountId,
        /// Who.
        by: AccountId,
        /// The workspace's name, for the notice.
        workspace_name: String,
        /// When.
        at: Timestamp,
    },
    /// A member left, or its account was deleted.
    #[event(no_personal_data)]
    MemberLeft {
        /// The member.
        account_id: AccountId,
        /// Left because its account was deleted.
        account_deleted: bool,
        /// When.
        at: Timestamp,
    },
    /// `to` became an owner and `from` an admin: an owner's transfer, or the succession
    /// when the last owner's account is deleted.
    #[event(no_personal_data)]
    OwnershipTransferred {
        /// The owner before.
        from: AccountId,
        /// The owner after.
        to: AccountId,
        /// When.
        at: Timestamp,
    },
    /// The studio configuration changed: the values set and the keys reset to default.
    #[event(no_personal_data)]
    StudioConfigured {
        /// Who.
        by: AccountId,
        /// The schema version of the values.
        schema_version: u32,
        /// Values set (normalised).
        set: SettingValues,
        /// Keys back to their defaults.
        resets: Vec<String>,
        /// When.
        at: Timestamp,
    },
    /// External object storage was configured (after a live probe); assets stored from now
    /// on go there.
    #[event(personal(access_key_id, secret_access_key))]
    StorageConfigured {
        /// Who.
        by: AccountId,
        /// The bucket.
        bucket: String,
        /// Its region.
        region: String,
        /// The endpoint, for S3-compatible stores other than AWS.
        endpoint: Option<String>,
        /// The access key id (sealed).
        access_key_id: String,
        /// Its prefix and last four characters.
        access_key_hint: String,
        /// The secret (sealed).
        secret_access_key: String,
        /// Path-style addressing.
        force_path_style: bool,
        /// When.
        at: Timestamp,
    },
    /// Back to the managed storage; the external credentials are forgotten.
    #[event(no_personal_data)]
    StorageReset {
        /// Who.
        by: AccountId,
        /// When.
        at: Timestamp,
    },
    /// A scheduled probe of the external storage: its outcome, and whether the storage
    /// went from working to misconfigured or back (whose admins are then told, once).
    #[event(no_personal_data)]
    StorageProbed {
        /// The failure, if it failed.
        problem: Option<String>,
        /// Whether the health changed with this probe.
        changed: bool,
        /// Admins and owners to tell of the change.
        notify: Vec<AccountId>,
        /// When.
        at: Timestamp,
    },
    /// Deleted by an owner (or with its only member's account): pending invitations die,
    /// and its data key is destroyed.
    #[event(no_personal_data)]
    WorkspaceDeleted {
        /// Who.
        by: AccountId,
        /// When.
        at: Timestamp,
    },
    /// Data keys of the workspace (its own, its invitations') were destroyed: every node
    /// drops them from its cache when it reads this, recorded after the destruction (a
    /// node that read the answer or the deletion may have cached a key again before it).
    #[event(no_personal_data)]
    KeysShredded {
        /// The keys' subjects: invitations, and the workspace itself once deleted.
        subjects: Vec<Uuid>,
        /// When.
        at: Timestamp,
    },
}

/// A member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its role.
    pub role: Role,
    /// When it joined.
    pub joined_at: Timestamp,
}

/// An invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Who sent it first.
    pub invited_by: AccountId,
    /// The invitee's canonical address.
    pub email: String,
    /// The role offered.
    pub role: Role,
    /// SHA-256 of the live link's token.
    pub token_hash: String,
    /// The live link's generation.
    pub generation: u32,
    /// When the live link stops working.
    pub expires_at: Timestamp,
    /// Where it stands, before expiry is considered.
    pub status: InvitationStatus,
}

impl Invitation {
    /// Its status at `now`: a pending invitation past its expiry is expired.
    pub fn status_at(&self, now: Timestamp) -> InvitationStatus {
        match self.status {
            InvitationStatus::Pending if self.expires_at <= now => InvitationStatus::Expired,
            status => status,
        }
    }
}

/// The state of a workspace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Workspace {
    /// Its name, once created (`None` also when its key was destroyed).
    pub name: Option<String>,
    /// Created.
    pub created: bool,
    /// Deleted.
    pub deleted: bool,
    /// Members by account.
    pub members: BTreeMap<AccountId, Member>,
    /// Invitations by id.
    pub invitations: BTreeMap<Uuid, Invitation>,
    /// The studio configuration: values set.
    pub studio: BTreeMap<String, serde_json::Value>,
    /// The storage in force.
    pub storage: StorageSettings,
}

impl Workspace {
    /// The owners.
    pub fn owners(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| m.role == Role::Owner)
            .map(|(id, _)| *id)
    }

    /// Admins and owners, who are told about the workspace's health.
    pub fn administrators(&self) -> Vec<AccountId> {
        self.members
            .iter()
            .filter(|(_, m)| m.role.administers())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Members plus pending (unexpired) invitations at `now`: the seats taken.
    pub fn seats_taken(&self, now: Timestamp) -> usize {
        self.members.len()
            + self
                .invitations
                .values()
                .filter(|i| i.status_at(now) == InvitationStatus::Pending)
                .count()
    }
}

/// Why a workspace command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    /// No such workspace, or the caller is not a member (never told which).
    #[error("no such workspace")]
    NotFound,
    /// The id is taken.
    #[error("the workspace already exists")]
    Exists,
    /// The caller's role does not allow it.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The workspace would be left without an owner.
    #[error("a workspace always has an owner: transfer ownership first")]
    LastOwner,
    /// Every seat of the owner's plan is taken.
    #[error("every seat of the workspace is taken ({0}, members and pending invitations)")]
    SeatsFull(u32),
    /// No such member.
    #[error("no such member")]
    NoSuchMember,
    /// No such invitation.
    #[error("no such invitation")]
    NoSuchInvitation,
    /// The link is not the invitation's live link, or was used.
    #[error("this invitation link is no longer valid")]
    LinkInvalid,
    /// The invitation expired.
    #[error("this invitation has expired")]
    LinkExpired,
    /// The signed-in account is not the address invited.
    #[error("this invitation is for another address")]
    OtherAddress,
    /// The account is the owner already.
    #[error("the account is already the owner")]
    AlreadyOwner,
    /// Admins leave rather than remove themselves.
    #[error("leave the workspace instead of removing yourself")]
    RemovingSelf,
    /// The invitation was answered or revoked.
    #[error("the invitation is {0} and cannot be changed")]
    InvitationClosed(&'static str),
    /// The account is a member already.
    #[error("already a member of this workspace")]
    AlreadyMember,
    /// The confirmation did not match the name.
    #[error("confirm must be the workspace's name")]
    ConfirmMismatch,
    /// A field is out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// Which.
        field: &'static str,
        /// Why.
        message: String,
    },
}

#[cfg(test)]
mod tests;
