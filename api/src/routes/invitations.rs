//! Workspace invitations: sent, listed, resent and revoked by admins (their links are
//! opened and answered in `invitation_links`). Seats: members plus pending invitations
//! stay within the owner's plan.

use super::workspaces::{RoleName, WorkspacePath, require_admin, run};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiBytes, ApiJson, ApiPath, ApiQuery, CurrentSession, RequestContext, optional_json,
};
use crate::openapi::{Routes, patterns};
use crate::pages::{PageQuery, next_cursor};
use crate::state::{Auth, Core, Payments};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::workspaces::Workspaces;
use domain::WorkspaceId;
use domain::email::EmailAddress;
use domain::workspace::{Role, WorkspaceCommand};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(invite, list_invitations))
        .routes(routes!(resend_invitation))
        .routes(routes!(revoke_invitation))
}

/// `{email, role, expires_in_days?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The invitee's address.
    #[schema(schema_with = patterns::schemas::email)]
    pub email: String,
    /// `admin` or `member`.
    pub role: InvitableRole,
    /// 1 to 30; 7 when absent.
    #[schema(minimum = 1, maximum = 30)]
    #[serde(default, deserialize_with = "crate::integers::option_u32")]
    pub expires_in_days: Option<u32>,
}

/// The roles an invitation may offer.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitableRole {
    /// A member.
    Member,
    /// An admin.
    Admin,
}

/// An invitation, as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// Its id.
    pub invitation_id: Uuid,
    /// The invitee's address.
    pub email: String,
    /// The role offered.
    pub role: RoleName,
    /// `pending`, `accepted`, `declined`, `revoked` or `expired`.
    pub status: String,
    /// When its link expires (RFC 3339).
    pub expires_at: String,
    /// Who invited.
    pub invited_by: Uuid,
    /// When it was first sent (RFC 3339).
    pub created_at: String,
}

/// The invitations of a workspace.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// Newest first.
    pub invitations: Vec<InvitationView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// An invitation just sent or resent.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationSentView {
    /// Its id.
    pub invitation_id: Uuid,
    /// When its link expires (RFC 3339). The link itself goes by e-mail only.
    pub expires_at: String,
}

/// The seats `workspace` may fill: its owners' plan (the most generous of its owners).
async fn seats_allowed(
    core: &Core,
    payments: &Payments,
    workspace: WorkspaceId,
) -> Result<u32, ApiError> {
    let mut seats = 0;
    for member in projections::workspaces::members(&core.db, workspace).await? {
        if member.role == Role::Owner {
            seats = seats.max(
                crate::routes::entitlements::entitlements_of(core, payments, member.account_id)
                    .await?
                    .seats,
            );
        }
    }
    Ok(seats)
}

/// Invites an address (admins and owners) and e-mails it the link; an address with a
/// pending invitation gets it refreshed (a new link and expiry) instead of a second.
#[utoipa::path(post, path = "/workspaces/{id}/invitations", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath), request_body = InviteRequest,
    responses((status = 201, body = InvitationSentView),
        (status = 403, description = "`insufficient_role`: members may not invite", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 409, description = "`seats_full`: members and pending invitations fill the owner's plan; `already_member`: the address is a member's", body = ErrorBody),
        (status = 422, description = "`validation_failed`: an address or lifetime out of bounds", body = ErrorBody)))]
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    State(core): State<Core>,
    State(payments): State<Payments>,
    State(workspaces): State<Workspaces>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> Result<(StatusCode, Json<InvitationSentView>), ApiError> {
    let workspace = WorkspaceId(path.id);
    let address = EmailAddress::parse(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    let invitee = auth.accounts.account_with_address(&address).await?;
    let email = address.canonical();
    let seats = seats_allowed(&core, &payments, workspace).await?;
    let role = match body.role {
        InvitableRole::Member => Role::Member,
        InvitableRole::Admin => Role::Admin,
    };
    let sent = workspaces
        .invite(
            &ctx.command(session.actor()),
            workspace,
            session.account_id,
            email,
            invitee,
            role,
            body.expires_in_days,
            seats,
        )
        .await?;
    core.visible(
        Visibility::ReadModel(Follower::Workspaces),
        Some(sent.position),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationSentView {
            invitation_id: sent.invitation_id,
            expires_at: sent.expires_at.to_rfc3339(),
        }),
    ))
}

/// The workspace's invitations (admins and owners), newest first, a page at a time:
/// pending, accepted, declined, revoked and expired.
#[utoipa::path(get, path = "/workspaces/{id}/invitations", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath, PageQuery),
    responses((status = 200, body = InvitationList),
        (status = 403, description = "`insufficient_role`: members never see invitees' addresses", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn list_invitations(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<InvitationList>, ApiError> {
    let workspace = WorkspaceId(path.id);
    let page = page.page()?;
    require_admin(&core, workspace, session.account_id).await?;
    let now = core.clock.now();
    let listed =
        projections::workspaces::invitations(&core.db, &core.sealer, workspace, now, &page).await?;
    let invitations = listed
        .items
        .into_iter()
        .map(|i| InvitationView {
            invitation_id: i.invitation_id,
            email: i.email,
            role: i.role.into(),
            status: i.status.as_str().into(),
            expires_at: i.expires_at.to_rfc3339(),
            invited_by: i.invited_by.0,
            created_at: i.created_at.to_rfc3339(),
        })
        .collect();
    Ok(Json(InvitationList {
        invitations,
        next_cursor: next_cursor(listed.next),
    }))
}

/// Path of an invitation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct InvitationPath {
    /// The workspace.
    pub id: Uuid,
    /// The invitation.
    pub inv: Uuid,
}

/// `{expires_in_days?}` of a resent invitation.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// 1 to 30; 7 when absent.
    #[schema(minimum = 1, maximum = 30)]
    #[serde(default, deserialize_with = "crate::integers::option_u32")]
    pub expires_in_days: Option<u32>,
}

/// Sends a pending or expired invitation again with a new link and expiry; the old link
/// stops working.
#[utoipa::path(post, path = "/workspaces/{id}/invitations/{inv}/resend", tag = "workspaces", security(("session" = [])),
    params(InvitationPath),
    request_body(content = Option<ResendRequest>, description = "Optional"),
    responses((status = 200, body = InvitationSentView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`, `invitation_not_found`", body = ErrorBody),
        (status = 409, description = "`seats_full`: an expired invitation needs a free seat; `invitation_closed`: accepted, declined or revoked invitations are not resent", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a lifetime out of bounds", body = ErrorBody)))]
pub async fn resend_invitation(
    State(core): State<Core>,
    State(payments): State<Payments>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<InvitationPath>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<InvitationSentView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    let body = optional_json::<ResendRequest>(&body)?.unwrap_or_default();
    let seats = seats_allowed(&core, &payments, workspace).await?;
    let sent = workspaces
        .resend(
            &ctx.command(session.actor()),
            workspace,
            session.account_id,
            path.inv,
            body.expires_in_days,
            seats,
        )
        .await?;
    core.visible(
        Visibility::ReadModel(Follower::Workspaces),
        Some(sent.position),
    )
    .await?;
    Ok(Json(InvitationSentView {
        invitation_id: sent.invitation_id,
        expires_at: sent.expires_at.to_rfc3339(),
    }))
}

/// Revokes an invitation: its link stops working.
#[utoipa::path(delete, path = "/workspaces/{id}/invitations/{inv}", tag = "workspaces", security(("session" = [])),
    params(InvitationPath),
    responses((status = 204, description = "Revoked"),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`, `invitation_not_found`", body = ErrorBody),
        (status = 409, description = "`invitation_closed`: it was answered or revoked already", body = ErrorBody)))]
pub async fn revoke_invitation(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<InvitationPath>,
) -> Result<StatusCode, ApiError> {
    let command = WorkspaceCommand::RevokeInvitation {
        actor: session.account_id,
        invitation_id: path.inv,
        at: core.clock.now(),
    };
    run(
        &core,
        &workspaces,
        &ctx,
        &session,
        WorkspaceId(path.id),
        command,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
