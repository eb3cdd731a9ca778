//! The members of a workspace: listing them, changing roles, removing them, and
//! transferring ownership. Role changes and removals apply from the member's very next
//! request; the workspace aggregate keeps an owner on every path.

use super::workspaces::{RoleName, WorkspacePath, role_in, run};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::workspaces::Workspaces;
use domain::workspace::WorkspaceCommand;
use domain::{AccountId, WorkspaceId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(transfer_ownership))
}

/// Path of a member.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MemberPath {
    /// The workspace.
    pub id: Uuid,
    /// The member's account.
    pub account_id: Uuid,
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The account.
    pub account_id: Uuid,
    /// Its display name.
    pub name: String,
    /// Its role.
    pub role: RoleName,
    /// When it joined (RFC 3339).
    pub joined_at: String,
}

/// The members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// In the order they joined.
    pub members: Vec<MemberView>,
}

/// The members of the workspace (members).
#[utoipa::path(get, path = "/workspaces/{id}/members", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 200, body = MemberList),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn list_members(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<Json<MemberList>, ApiError> {
    let workspace = WorkspaceId(path.id);
    role_in(&core, workspace, session.account_id).await?;
    let mut members = Vec::new();
    for member in projections::workspaces::members(&core.db, workspace).await? {
        let name = projections::accounts::find(&core.db, &core.sealer, member.account_id)
            .await?
            .map(|a| a.display_name)
            .unwrap_or_default();
        members.push(MemberView {
            account_id: member.account_id.0,
            name,
            role: member.role.into(),
            joined_at: member.joined_at.to_rfc3339(),
        });
    }
    Ok(Json(MemberList { members }))
}

/// `{role}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// The new role.
    pub role: RoleName,
}

/// Changes a member's role (admins for members and admins, owners for owners); it applies
/// from the member's very next request.
#[utoipa::path(patch, path = "/workspaces/{id}/members/{account_id}", tag = "workspaces", security(("session" = [])),
    params(MemberPath), request_body = RoleRequest,
    responses((status = 204, description = "Changed"),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`, `member_not_found`", body = ErrorBody),
        (status = 409, description = "`last_owner`: the workspace would have no owner", body = ErrorBody)))]
pub async fn change_role(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<MemberPath>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<StatusCode, ApiError> {
    let command = WorkspaceCommand::ChangeRole {
        actor: session.account_id,
        member: AccountId(path.account_id),
        role: body.role.into(),
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

/// Removes a member, who is told by e-mail; it applies from its very next request.
#[utoipa::path(delete, path = "/workspaces/{id}/members/{account_id}", tag = "workspaces", security(("session" = [])),
    params(MemberPath),
    responses((status = 204, description = "Removed"),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`, `member_not_found`", body = ErrorBody),
        (status = 409, description = "`last_owner`; `removing_self`: leave instead", body = ErrorBody)))]
pub async fn remove_member(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<MemberPath>,
) -> Result<StatusCode, ApiError> {
    let command = WorkspaceCommand::Remove {
        actor: session.account_id,
        member: AccountId(path.account_id),
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

/// `{account_id}` of the new owner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// A member.
    pub account_id: Uuid,
}

/// Makes a member the owner; the caller (an owner) becomes an admin.
#[utoipa::path(post, path = "/workspaces/{id}/transfer-ownership", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath), request_body = TransferRequest,
    responses((status = 204, description = "Transferred"),
        (status = 403, description = "`insufficient_role`: only owners transfer", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`, `member_not_found`", body = ErrorBody),
        (status = 409, description = "`already_owner`: transferring to oneself", body = ErrorBody)))]
pub async fn transfer_ownership(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<StatusCode, ApiError> {
    let command = WorkspaceCommand::TransferOwnership {
        actor: session.account_id,
        to: AccountId(body.account_id),
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
