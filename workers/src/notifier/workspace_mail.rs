//! The e-mails workspace events cause: the invitation (to the invited address, sealed with
//! the workspace's key; the link is derived by the mailer), and notices to a member who is
//! removed and to the admins when the workspace's storage fails or works again.

use crate::mail::{MailKind, MailMessage};
use domain::workspace::WorkspaceEvent;
use domain::{AccountId, StreamCategory};
use serde_json::json;
use uuid::Uuid;

fn notice(cause: Uuid, account: AccountId, headline: &str, detail: String) -> MailMessage {
    // One message per recipient of the same event.
    let cause = Uuid::new_v5(&cause, account.0.as_bytes());
    MailMessage::caused_by(
        cause,
        MailKind::WorkspaceNotice,
        account.0,
        json!({ "headline": headline, "private": { "detail": detail } }),
    )
}

/// The e-mails `event` (id `cause`) of the workspace stream `stream` causes.
pub fn decide(stream: &str, cause: Uuid, event: &WorkspaceEvent) -> Vec<MailMessage> {
    let Some(workspace) = StreamCategory::Workspace
        .id_in(stream)
        .and_then(|id| Uuid::parse_str(id).ok())
    else {
        return vec![];
    };
    use WorkspaceEvent as E;
    match event {
        E::MemberInvited {
            invitation_id,
            email,
            role,
            generation,
            expires_at,
            invited_by,
            workspace_name,
            ..
        }
        | E::InvitationRefreshed {
            invitation_id,
            email,
            role,
            generation,
            expires_at,
            by: invited_by,
            workspace_name,
            ..
        } => vec![MailMessage::caused_by(
            cause,
            MailKind::WorkspaceInvitation,
            workspace,
            json!({
                "invitation_id": invitation_id,
                "generation": generation,
                "inviter_id": invited_by,
                "role": role.as_str(),
                "expires_at": expires_at.human_date(),
                "private": { "to": email, "workspace": workspace_name },
            }),
        )],
        E::MemberRemoved {
            account_id,
            workspace_name,
            ..
        } => vec![notice(
            cause,
            *account_id,
            "You were removed from a workspace",
            format!("an admin removed you from \"{workspace_name}\""),
        )],
        E::StorageProbed {
            problem, notify, ..
        } => notify
            .iter()
            .map(|admin| match problem {
                Some(problem) => notice(
                    cause,
                    *admin,
                    "A workspace's storage is failing",
                    format!("new assets cannot be stored: {problem}"),
                ),
                None => notice(
                    cause,
                    *admin,
                    "A workspace's storage works again",
                    "its external storage passed its check".to_owned(),
                ),
            })
            .collect(),
        _ => vec![],
    }
}
