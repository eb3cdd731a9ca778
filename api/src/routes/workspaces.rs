//! The Workspaces tab: creating, listing, renaming, leaving and deleting workspaces, and
//! their members (roles, removal, ownership). Another member's workspace is 404 to
//! non-members, never 403 with its name. Invitations are in [`super::invitations`].

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::pages::{PageQuery, next_cursor};
use crate::state::{AppState, Core};
use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use commands::workspaces::Workspaces;
use domain::workspace::{Role, WorkspaceCommand};
use domain::{AccountId, WorkspaceId};
use projections::workspaces::Membership;
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

impl FromRef<AppState> for Workspaces {
    fn from_ref(state: &AppState) -> Self {
        state.workspaces.clone()
    }
}

/// The routes of this module (members are in [`super::members`]).
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(create_workspace))
        .routes(routes!(my_workspaces))
        .routes(routes!(get_workspace, rename_workspace, delete_workspace))
        .routes(routes!(leave_workspace))
}

/// A role, as clients write it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    /// Reads and uses the workspace.
    Member,
    /// Also manages it, its invitations and members (not owners).
    Admin,
    /// Also manages owners and deletes it.
    Owner,
}

impl From<RoleName> for Role {
    fn from(role: RoleName) -> Self {
        match role {
            RoleName::Member => Role::Member,
            RoleName::Admin => Role::Admin,
            RoleName::Owner => Role::Owner,
        }
    }
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Member => RoleName::Member,
            Role::Admin => RoleName::Admin,
            Role::Owner => RoleName::Owner,
        }
    }
}

/// `{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameRequest {
    /// 1 to 80 characters once trimmed, no control characters.
    #[schema(schema_with = patterns::schemas::workspace_name)]
    pub name: String,
}

/// A workspace as the caller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    /// Its id.
    pub workspace_id: Uuid,
    /// Its name.
    pub name: String,
    /// The caller's role.
    pub role: RoleName,
    /// How many members it has.
    pub member_count: i64,
    /// Pending invitations (admins and owners only; null for members).
    pub pending_invitations: Option<i64>,
}

impl From<Membership> for WorkspaceView {
    fn from(m: Membership) -> Self {
        Self {
            workspace_id: m.workspace_id.0,
            name: m.name,
            role: m.role.into(),
            member_count: m.member_count,
            // Members never see invitations.
            pending_invitations: m.role.administers().then_some(m.pending_invitations),
        }
    }
}

/// The caller's workspaces.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceList {
    /// Oldest first.
    pub workspaces: Vec<WorkspaceView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Path of a workspace.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WorkspacePath {
    /// The workspace.
    pub id: Uuid,
}

/// The caller's role in `workspace`, or 404 whether it does not exist or the caller is not
/// a member.
pub async fn role_in(
    core: &Core,
    workspace: WorkspaceId,
    account: AccountId,
) -> Result<Role, ApiError> {
    projections::workspaces::role_of(&core.db, workspace, account)
        .await?
        .ok_or_else(not_found)
}

/// The 404 of a workspace the caller cannot see.
pub fn not_found() -> ApiError {
    ApiError::NotFound("workspace_not_found", "no such workspace".into())
}

/// The caller must administer `workspace` (403 for a member, 404 for anyone else).
pub async fn require_admin(
    core: &Core,
    workspace: WorkspaceId,
    account: AccountId,
) -> Result<Role, ApiError> {
    let role = role_in(core, workspace, account).await?;
    if !role.administers() {
        return Err(ApiError::Forbidden(
            "insufficient_role",
            "only admins and owners may do this".into(),
        ));
    }
    Ok(role)
}

async fn view(
    core: &Core,
    workspace: WorkspaceId,
    account: AccountId,
) -> Result<WorkspaceView, ApiError> {
    let now = core.clock.now();
    projections::workspaces::membership(&core.db, &core.sealer, workspace, account, now)
        .await?
        .map(WorkspaceView::from)
        .ok_or_else(not_found)
}

/// Creates a workspace; the caller is its owner.
#[utoipa::path(post, path = "/workspaces", tag = "workspaces", security(("session" = [])),
    request_body = NameRequest,
    responses((status = 201, body = WorkspaceView),
        (status = 422, description = "`validation_failed`: a name out of bounds", body = ErrorBody)))]
pub async fn create_workspace(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<NameRequest>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    let (workspace, position) = workspaces
        .create(&ctx.command(session.actor()), session.account_id, body.name)
        .await?;
    core.visible(Visibility::ReadModel(Follower::Workspaces), Some(position))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&core, workspace, session.account_id).await?),
    ))
}

/// The caller's workspaces with their role, member count and (for admins) pending
/// invitations, oldest first, a page at a time.
#[utoipa::path(get, path = "/me/workspaces", tag = "workspaces", security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = WorkspaceList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn my_workspaces(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<WorkspaceList>, ApiError> {
    let page = page.page()?;
    let now = core.clock.now();
    let listed = projections::workspaces::memberships(
        &core.db,
        &core.sealer,
        session.account_id,
        now,
        &page,
    )
    .await?;
    Ok(Json(WorkspaceList {
        workspaces: listed.items.into_iter().map(WorkspaceView::from).collect(),
        next_cursor: next_cursor(listed.next),
    }))
}

/// A workspace (members).
#[utoipa::path(get, path = "/workspaces/{id}", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 200, body = WorkspaceView),
        (status = 404, description = "`workspace_not_found`: no such workspace, or the caller is not a member", body = ErrorBody)))]
pub async fn get_workspace(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<Json<WorkspaceView>, ApiError> {
    Ok(Json(
        view(&core, WorkspaceId(path.id), session.account_id).await?,
    ))
}

/// Runs a workspace command for the caller and answers once the read model shows it.
pub(crate) async fn run(
    core: &Core,
    workspaces: &Workspaces,
    ctx: &RequestContext,
    session: &CurrentSession,
    workspace: WorkspaceId,
    command: WorkspaceCommand,
) -> Result<(), ApiError> {
    let (_, position) = workspaces
        .run(&ctx.command(session.actor()), workspace, command)
        .await?;
    core.visible(Visibility::ReadModel(Follower::Workspaces), position)
        .await?;
    Ok(())
}

/// Renames the workspace (admins and owners).
#[utoipa::path(patch, path = "/workspaces/{id}", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath), request_body = NameRequest,
    responses((status = 200, body = WorkspaceView),
        (status = 403, description = "`insufficient_role`: members may not rename", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a name out of bounds", body = ErrorBody)))]
pub async fn rename_workspace(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiJson(body): ApiJson<NameRequest>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    let command = WorkspaceCommand::Rename {
        actor: session.account_id,
        name: body.name,
        at: core.clock.now(),
    };
    run(&core, &workspaces, &ctx, &session, workspace, command).await?;
    Ok(Json(view(&core, workspace, session.account_id).await?))
}

/// `{confirm}`: the workspace's name, typed again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The workspace's name.
    #[schema(max_length = 200)]
    pub confirm: String,
}

/// Deletes the workspace (owners): pending invitations die, and its data key is destroyed
/// with its storage settings.
#[utoipa::path(delete, path = "/workspaces/{id}", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath), request_body = DeleteRequest,
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "`insufficient_role`: only owners delete", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 409, description = "`confirmation_mismatch`: `confirm` is not the workspace's name", body = ErrorBody)))]
pub async fn delete_workspace(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiJson(body): ApiJson<DeleteRequest>,
) -> Result<StatusCode, ApiError> {
    let position = workspaces
        .delete(
            &ctx.command(session.actor()),
            WorkspaceId(path.id),
            session.account_id,
            body.confirm,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Workspaces), Some(position))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leaves the workspace (anyone but its last owner).
#[utoipa::path(post, path = "/workspaces/{id}/leave", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 204, description = "Left"),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 409, description = "`last_owner`: transfer ownership first", body = ErrorBody)))]
pub async fn leave_workspace(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<StatusCode, ApiError> {
    let command = WorkspaceCommand::Leave {
        actor: session.account_id,
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
