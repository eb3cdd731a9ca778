//! An invitation's link: opened without a session (what it invites to), accepted or
//! declined signed in with the invited address, verified.

use super::workspaces::{RoleName, not_found};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::workspaces::Workspaces;
use domain::email::EmailAddress;
use domain::workspace::InvitationStatus;
use domain::{AccountId, WorkspaceId};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(open_invitation))
        .routes(routes!(accept_invitation))
        .routes(routes!(decline_invitation))
}

/// Path of an invitation link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TokenPath {
    /// The token of the link (`inv_…`).
    #[param(schema_with = patterns::schemas::invitation_token)]
    pub token: String,
}

/// What an invitation link invites to.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPreview {
    /// The workspace's name.
    pub workspace_name: String,
    /// The inviter's display name.
    pub inviter: String,
    /// The role offered.
    pub role: RoleName,
    /// When the link expires (RFC 3339).
    pub expires_at: String,
    /// `pending` or `expired`.
    pub status: String,
}

fn link_gone() -> ApiError {
    ApiError::NotFound(
        "invitation_invalid",
        "this invitation link is no longer valid".into(),
    )
}

/// What the link invites to: no session needed. A used, revoked, replaced or made-up link
/// is 404; an expired one answers with its status `expired`.
#[utoipa::path(get, path = "/invitations/{token}", tag = "workspaces",
    params(TokenPath),
    responses((status = 200, body = InvitationPreview),
        (status = 404, description = "`invitation_invalid`: not a live link", body = ErrorBody)))]
pub async fn open_invitation(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ApiPath(path): ApiPath<TokenPath>,
) -> Result<Json<InvitationPreview>, ApiError> {
    let (workspace, invitation_id) =
        vault::InvitationLinks::parse(&path.token).ok_or_else(link_gone)?;
    let state = workspaces.load(workspace).await?;
    let invitation = state
        .invitations
        .get(&invitation_id)
        .filter(|i| i.token_hash == vault::token_hash(&path.token))
        .filter(|_| state.created && !state.deleted)
        .ok_or_else(link_gone)?;
    let status = invitation.status_at(core.clock.now());
    if !matches!(
        status,
        InvitationStatus::Pending | InvitationStatus::Expired
    ) {
        return Err(link_gone());
    }
    let inviter = projections::accounts::find(&core.db, &core.sealer, invitation.invited_by)
        .await?
        .map(|a| a.display_name)
        .unwrap_or_default();
    Ok(Json(InvitationPreview {
        workspace_name: state.name.clone().unwrap_or_default(),
        inviter,
        role: invitation.role.into(),
        expires_at: invitation.expires_at.to_rfc3339(),
        status: status.as_str().into(),
    }))
}

/// The workspace joined.
#[derive(Debug, Serialize, ToSchema)]
pub struct JoinedView {
    /// The workspace.
    pub workspace_id: Uuid,
}

async fn answer(
    core: &Core,
    workspaces: &Workspaces,
    ctx: &RequestContext,
    session: &CurrentSession,
    token: &str,
    accept: bool,
) -> Result<WorkspaceId, ApiError> {
    let account = projections::accounts::find(&core.db, &core.sealer, session.account_id)
        .await?
        .ok_or_else(not_found)?;
    // Otherwise whoever registered the invited address first (a link forwarded, or leaked)
    // could answer for its owner.
    if !account.email_verified {
        return Err(ApiError::Forbidden(
            "email_unverified",
            "verify your e-mail address first (the link e-mailed to it, or a new one from \
             POST /me/email/verification)"
                .into(),
        ));
    }
    let email = EmailAddress::parse(&account.email)
        .map(|e| e.canonical())
        .unwrap_or_else(|_| account.email.to_lowercase());
    let (workspace, position) = workspaces
        .answer(
            &ctx.command(session.actor()),
            token,
            AccountId(session.account_id.0),
            email,
            accept,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Workspaces), Some(position))
        .await?;
    Ok(workspace)
}

/// Accepts the invitation with the signed-in account, whose address must be the one
/// invited; a link works once.
#[utoipa::path(post, path = "/invitations/{token}/accept", tag = "workspaces", security(("session" = [])),
    params(TokenPath),
    responses((status = 200, body = JoinedView),
        (status = 403, description = "`invitation_for_another_address`, or `email_unverified`: the account has not verified its address", body = ErrorBody),
        (status = 409, description = "`already_member`", body = ErrorBody),
        (status = 404, description = "`invitation_invalid`: not a live link (made up, used, revoked or replaced)", body = ErrorBody),
        (status = 410, description = "`invitation_expired`", body = ErrorBody)))]
pub async fn accept_invitation(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<TokenPath>,
) -> Result<Json<JoinedView>, ApiError> {
    let workspace = answer(&core, &workspaces, &ctx, &session, &path.token, true).await?;
    Ok(Json(JoinedView {
        workspace_id: workspace.0,
    }))
}

/// Declines the invitation.
#[utoipa::path(post, path = "/invitations/{token}/decline", tag = "workspaces", security(("session" = [])),
    params(TokenPath),
    responses((status = 204, description = "Declined"),
        (status = 403, description = "`invitation_for_another_address`, or `email_unverified`: the account has not verified its address", body = ErrorBody),
        (status = 409, description = "`already_member`", body = ErrorBody),
        (status = 404, description = "`invitation_invalid`: not a live link (made up, used, revoked or replaced)", body = ErrorBody),
        (status = 410, description = "`invitation_expired`", body = ErrorBody)))]
pub async fn decline_invitation(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<TokenPath>,
) -> Result<StatusCode, ApiError> {
    answer(&core, &workspaces, &ctx, &session, &path.token, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
