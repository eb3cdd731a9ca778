//! What a caller may ask of a workspace, with the values commands carry: external
//! storage settings (their secret never printed) and the invitation links' hashing.

use super::{Role, SettingValues};
use crate::{AccountId, Timestamp};
use uuid::Uuid;

/// What may be asked of a workspace. `actor` is the signed-in account asking.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkspaceCommand {
    /// Create it, owned by `owner`.
    Create {
        /// The creator.
        owner: AccountId,
        /// 1 to [`MAX_NAME`](super::MAX_NAME) printable characters.
        name: String,
        /// Now.
        at: Timestamp,
    },
    /// Rename it (admins).
    Rename {
        /// Who asks.
        actor: AccountId,
        /// The new name.
        name: String,
        /// Now.
        at: Timestamp,
    },
    /// Invite an address (admins); a pending invitation of the same address is refreshed.
    Invite {
        /// Who asks.
        actor: AccountId,
        /// The new invitation's id (unused when one is refreshed).
        invitation_id: Uuid,
        /// The invitee's canonical address.
        email: String,
        /// The account holding that address, if one does: a member is not invited.
        invitee: Option<AccountId>,
        /// Admin or member.
        role: Role,
        /// SHA-256 of the new link's token, by generation: see [`LinkHashes`].
        link: LinkHashes,
        /// When the link stops working.
        expires_at: Timestamp,
        /// The seats the owner's plan allows.
        seats: u32,
        /// Now.
        at: Timestamp,
    },
    /// A new link and expiry for an invitation (admins).
    Resend {
        /// Who asks.
        actor: AccountId,
        /// The invitation.
        invitation_id: Uuid,
        /// The new link's hashes.
        link: LinkHashes,
        /// Its expiry.
        expires_at: Timestamp,
        /// The seats the owner's plan allows.
        seats: u32,
        /// Now.
        at: Timestamp,
    },
    /// Revoke an invitation (admins).
    RevokeInvitation {
        /// Who asks.
        actor: AccountId,
        /// The invitation.
        invitation_id: Uuid,
        /// Now.
        at: Timestamp,
    },
    /// Accept an invitation with its link.
    Accept {
        /// The invitation.
        invitation_id: Uuid,
        /// SHA-256 of the token presented.
        token_hash: String,
        /// The signed-in account.
        account: AccountId,
        /// Its canonical address, which must be the one invited.
        email: String,
        /// Now.
        at: Timestamp,
    },
    /// Decline an invitation with its link.
    Decline {
        /// The invitation.
        invitation_id: Uuid,
        /// SHA-256 of the token presented.
        token_hash: String,
        /// The signed-in account.
        account: AccountId,
        /// Its canonical address, which must be the one invited.
        email: String,
        /// Now.
        at: Timestamp,
    },
    /// Change a member's role.
    ChangeRole {
        /// Who asks.
        actor: AccountId,
        /// The member.
        member: AccountId,
        /// The new role.
        role: Role,
        /// Now.
        at: Timestamp,
    },
    /// Remove a member.
    Remove {
        /// Who asks.
        actor: AccountId,
        /// The member.
        member: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Leave.
    Leave {
        /// Who asks.
        actor: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Make `to` an owner and the asking owner an admin.
    TransferOwnership {
        /// Who asks (an owner).
        actor: AccountId,
        /// A member.
        to: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Delete the workspace (owners), confirming its name.
    Delete {
        /// Who asks.
        actor: AccountId,
        /// The workspace's name, typed again.
        confirm: String,
        /// Now.
        at: Timestamp,
    },
    /// A member's account was deleted: it leaves; a last owner is succeeded by the longest-
    /// standing admin (else member); a workspace left without members is deleted.
    ForgetAccount {
        /// The deleted account.
        account: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Change the studio configuration (admins), with values already normalised.
    ConfigureStudio {
        /// Who asks.
        actor: AccountId,
        /// The schema version.
        schema_version: u32,
        /// Values set.
        set: SettingValues,
        /// Keys reset.
        resets: Vec<String>,
        /// Now.
        at: Timestamp,
    },
    /// Use external storage (admins), after a successful probe.
    ConfigureStorage {
        /// Who asks.
        actor: AccountId,
        /// The settings.
        settings: Box<ExternalStorage>,
        /// Now.
        at: Timestamp,
    },
    /// Back to managed storage (admins).
    ResetStorage {
        /// Who asks.
        actor: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Record a scheduled probe of the external storage.
    RecordProbe {
        /// The settings probed: an outcome is recorded only while they are the current
        /// ones (a probe that outlived a change of settings says nothing of the new).
        probed: ExternalStorage,
        /// The failure, if it failed.
        problem: Option<String>,
        /// Now.
        at: Timestamp,
    },
}

impl WorkspaceCommand {
    /// Accept (`accept`) or decline the invitation `invitation_id` with the link whose
    /// token hashes to `token_hash`, as `account`, signed in with `email`.
    pub fn answer(
        accept: bool,
        invitation_id: Uuid,
        token_hash: String,
        account: AccountId,
        email: String,
        at: Timestamp,
    ) -> Self {
        if accept {
            Self::Accept {
                invitation_id,
                token_hash,
                account,
                email,
                at,
            }
        } else {
            Self::Decline {
                invitation_id,
                token_hash,
                account,
                email,
                at,
            }
        }
    }
}

/// External object-storage settings, as configured. Its `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalStorage {
    /// The bucket.
    pub bucket: String,
    /// Its region.
    pub region: String,
    /// Endpoint of an S3-compatible store.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Path-style addressing.
    pub force_path_style: bool,
}

impl std::fmt::Debug for ExternalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalStorage")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// The hash of a new invitation link's token for the generation the link will have: the
/// token is derived from the invitation, its generation and a server secret (so the
/// notifier can put it in the e-mail), and the caller cannot know which invitation an
/// address's invite will refresh, so it supplies the function.
#[derive(Clone)]
pub struct LinkHashes(pub std::sync::Arc<dyn Fn(Uuid, u32) -> String + Send + Sync>);

impl LinkHashes {
    /// The hash for `invitation`'s link of `generation`.
    pub fn hash(&self, invitation: Uuid, generation: u32) -> String {
        (self.0)(invitation, generation)
    }
}

impl std::fmt::Debug for LinkHashes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkHashes")
    }
}

impl PartialEq for LinkHashes {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}
