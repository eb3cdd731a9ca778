//! A workspace's studio configuration: the studio's defaults (aspect ratio, resolution,
//! frame rate, export format, watermark, brand colours, default voice and model per
//! provider), typed and versioned (`domain::settings::studio`). Members read; admins write.

use super::workspaces::{WorkspacePath, not_found, role_in};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::settings_http::{SettingsView, patch, stored};
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use commands::workspaces::Workspaces;
use domain::WorkspaceId;
use domain::settings::{effective, json_schema, studio};
use domain::workspace::SettingValues;
use projections::{Follower, Visibility};
use std::collections::BTreeMap;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(get_studio, patch_studio))
        .routes(routes!(studio_schema))
}

/// The studio configuration as it applies: every setting, and whether it is the default.
#[utoipa::path(get, path = "/workspaces/{id}/studio", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 200, body = SettingsView),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn get_studio(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<Json<SettingsView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    role_in(&core, workspace, session.account_id).await?;
    let row = projections::workspaces::workspace(&core.db, &core.sealer, workspace)
        .await?
        .ok_or_else(not_found)?;
    let values = effective(&studio::SCHEMA, &stored(&row.studio), &BTreeMap::new());
    Ok(Json(SettingsView::new(&studio::SCHEMA, values, &[])))
}

/// Changes some settings (admins and owners): unknown keys are dropped and reported as
/// warnings, enum values match regardless of case, `null` resets a key to its default,
/// and `schema_version` (optional) names the version the client knows, whose keys are
/// migrated.
#[utoipa::path(patch, path = "/workspaces/{id}/studio", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    request_body(content = Object, description = "Settings to change, e.g. `{\"frame_rate\": 24, \"resolution\": \"4K\", \"schema_version\": 1}`"),
    responses((status = 200, body = SettingsView),
        (status = 403, description = "`insufficient_role`: members read only", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_settings`: each refused value, with what is allowed", body = ErrorBody)))]
pub async fn patch_studio(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Json<SettingsView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    let change = patch(&studio::SCHEMA, body)?;
    let (state, position) = workspaces
        .configure_studio(
            &ctx.command(session.actor()),
            workspace,
            session.account_id,
            studio::SCHEMA.version,
            SettingValues(change.set.clone()),
            change.resets.clone(),
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Workspaces), position)
        .await?;
    let values = effective(&studio::SCHEMA, &state.studio, &BTreeMap::new());
    Ok(Json(SettingsView::new(
        &studio::SCHEMA,
        values,
        &change.warnings,
    )))
}

/// The JSON Schema (types, defaults, ranges) a client renders the studio form from.
#[utoipa::path(get, path = "/workspaces/{id}/studio/schema", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 200, description = "A JSON Schema (draft 2020-12)", body = Object),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn studio_schema(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<Json<serde_json::Value>, ApiError> {
    role_in(&core, WorkspaceId(path.id), session.account_id).await?;
    Ok(Json(json_schema(&studio::SCHEMA)))
}
