//! The links of workspace invitations. A link's token names its workspace and invitation
//! and carries an HMAC (a key derived from the master key) over them and the link's
//! generation: unguessable, checked without a look-up, and derivable again by the mailer
//! from the invitation event, so the token itself is stored nowhere — only its SHA-256,
//! in the workspace's events. A resend bumps the generation, which kills the old link.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::WorkspaceId;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The prefix of invitation tokens.
pub const INVITATION_TOKEN_PREFIX: &str = "inv_";

/// Makes and reads invitation tokens: `inv_` + base64url(workspace ‖ invitation ‖
/// HMAC-SHA256(key, workspace ‖ invitation ‖ generation)), 64 bytes before encoding.
#[derive(Clone)]
pub struct InvitationLinks {
    key: [u8; 32],
}

impl std::fmt::Debug for InvitationLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InvitationLinks")
    }
}

impl InvitationLinks {
    /// Links signed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, workspace: WorkspaceId, invitation: Uuid, generation: u32) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(workspace.0.as_bytes());
        mac.update(invitation.as_bytes());
        mac.update(&generation.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The token of `invitation`'s link of `generation`.
    pub fn token(&self, workspace: WorkspaceId, invitation: Uuid, generation: u32) -> String {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(workspace.0.as_bytes());
        bytes.extend_from_slice(invitation.as_bytes());
        bytes.extend_from_slice(&self.mac(workspace, invitation, generation));
        format!("{INVITATION_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The SHA-256 (hex) of `invitation`'s token of `generation`: what the events keep.
    pub fn hash(&self, workspace: WorkspaceId, invitation: Uuid, generation: u32) -> String {
        token_hash(&self.token(workspace, invitation, generation))
    }

    /// The workspace and invitation a token names, if it is shaped like one (whether it is
    /// the live link is for the workspace to decide, by its hash).
    pub fn parse(token: &str) -> Option<(WorkspaceId, Uuid)> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(INVITATION_TOKEN_PREFIX)?)
            .ok()?;
        if bytes.len() != 64 {
            return None;
        }
        let workspace = Uuid::from_slice(&bytes[..16]).ok()?;
        let invitation = Uuid::from_slice(&bytes[16..32]).ok()?;
        Some((WorkspaceId(workspace), invitation))
    }
}

/// The SHA-256 (hex) of a presented token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_invitation_and_change_with_the_generation_and_key() {
        let links = InvitationLinks::new([3; 32]);
        let (workspace, invitation) = (WorkspaceId(Uuid::new_v4()), Uuid::new_v4());
        let first = links.token(workspace, invitation, 1);
        assert!(first.starts_with(INVITATION_TOKEN_PREFIX));
        assert_eq!(
            InvitationLinks::parse(&first),
            Some((workspace, invitation))
        );
        assert_ne!(first, links.token(workspace, invitation, 2));
        assert_ne!(
            first,
            InvitationLinks::new([4; 32]).token(workspace, invitation, 1)
        );
        assert_eq!(links.hash(workspace, invitation, 1), token_hash(&first));
        assert_eq!(InvitationLinks::parse("inv_short"), None);
        assert_eq!(InvitationLinks::parse("ses_x"), None);
    }
}
