//! The Editor tab: a user's editor preferences (appearance, behaviour, in-editor
//! notifications, collaborator cursors), typed and versioned (`domain::settings::editor`).
//! The effective value is the user's, else the workspace's studio default where one
//! applies (`?workspace_id=`), else the built-in default. Writes take `If-Match` with the
//! version read: a stale one is 412, none is 428.

use super::workspaces::role_in;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::pages::{PageQuery, next_cursor};
use crate::settings_http::{SettingsView, patch, stored};
use crate::state::{AppState, Core};
use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use commands::editor_preferences::EditorPreferencesHandler;
use domain::settings::{Normalised, editor, effective, json_schema};
use domain::{AccountId, WorkspaceId};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

impl FromRef<AppState> for EditorPreferencesHandler {
    fn from_ref(state: &AppState) -> Self {
        EditorPreferencesHandler::new(state.core.exec.clone(), state.core.clock.clone())
    }
}

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(get_preferences, patch_preferences))
        .routes(routes!(reset_preference))
        .routes(routes!(preferences_schema))
        .routes(routes!(preferences_history))
}

/// The `If-Match` header of a write.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// The version read (the `ETag` of the last read).
    #[param(
        rename = "If-Match",
        required = true,
        pattern = r#"^(?:W/)?"?[0-9]{1,19}"?$"#
    )]
    pub if_match: String,
}

/// `?workspace_id=`: the workspace whose studio defaults apply.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceQuery {
    /// A workspace the caller belongs to.
    pub workspace_id: Option<Uuid>,
}

/// Editor preferences as they apply, with the version to send back in `If-Match`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreferencesView {
    /// The version (also the `ETag`).
    pub version: u64,
    /// The settings.
    #[serde(flatten)]
    pub settings: SettingsView,
}

async fn fallback(
    core: &Core,
    account: AccountId,
    workspace: Option<Uuid>,
) -> Result<BTreeMap<String, serde_json::Value>, ApiError> {
    let Some(workspace) = workspace.map(WorkspaceId) else {
        return Ok(BTreeMap::new());
    };
    role_in(core, workspace, account).await?;
    Ok(
        projections::workspaces::workspace(&core.db, &core.sealer, workspace)
            .await?
            .map(|row| stored(&row.studio))
            .unwrap_or_default(),
    )
}

fn respond(view: PreferencesView) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", view.version)).ok();
    let mut response = Json(view).into_response();
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The version named by `If-Match` (`"3"`, `W/"3"` or `3`).
fn if_match(headers: &HeaderMap) -> Result<u64, ApiError> {
    let value = headers.get(header::IF_MATCH).ok_or_else(|| {
        ApiError::PreconditionRequired(
            "if_match_required",
            "send If-Match with the version you read (the ETag of GET /me/editor-preferences)"
                .into(),
        )
    })?;
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "invalid_if_match",
                "If-Match must be a version this API gave".into(),
            )
        })
}

/// The caller's editor preferences as they apply, and their version (`ETag`).
#[utoipa::path(get, path = "/me/editor-preferences", tag = "editor", security(("session" = [])),
    params(WorkspaceQuery),
    responses((status = 200, body = PreferencesView, headers(("ETag" = String, description = "The version"))),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn get_preferences(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(query): ApiQuery<WorkspaceQuery>,
) -> Result<Response, ApiError> {
    let fallback = fallback(&core, session.account_id, query.workspace_id).await?;
    let (values, version) =
        projections::editor_preferences::preferences(&core.db, session.account_id).await?;
    let values = effective(&editor::SCHEMA, &stored(&values), &fallback);
    Ok(respond(PreferencesView {
        version,
        settings: SettingsView::new(&editor::SCHEMA, values, &[]),
    }))
}

async fn change(
    core: &Core,
    handler: &EditorPreferencesHandler,
    ctx: &RequestContext,
    session: &CurrentSession,
    version: u64,
    normalised: Normalised,
) -> Result<Response, ApiError> {
    let (state, position) = handler
        .change(
            &ctx.command(session.actor()),
            session.account_id,
            version,
            normalised.set,
            normalised.resets,
            editor::SCHEMA.version,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::EditorPreferences), position)
        .await?;
    let values = effective(&editor::SCHEMA, &state.values, &BTreeMap::new());
    Ok(respond(PreferencesView {
        version: state.version,
        settings: SettingsView::new(&editor::SCHEMA, values, &normalised.warnings),
    }))
}

/// Changes some preferences (partial): unknown keys dropped and reported, enums matched
/// regardless of case, out-of-range values refused with the range, `null` resets, and
/// `schema_version` migrates an older client's keys. `If-Match` names the version read.
#[utoipa::path(patch, path = "/me/editor-preferences", tag = "editor", security(("session" = [])),
    params(IfMatchHeader),
    request_body(content = Object, description = "Preferences to change, e.g. `{\"theme\": \"Dark\"}`"),
    responses((status = 200, body = PreferencesView),
        (status = 400, description = "`invalid_if_match`", body = ErrorBody),
        (status = 412, description = "`stale_version`: another write came first; read again", body = ErrorBody),
        (status = 422, description = "`invalid_settings`: each refused value, with what is allowed", body = ErrorBody),
        (status = 428, description = "`if_match_required`", body = ErrorBody)))]
pub async fn patch_preferences(
    State(core): State<Core>,
    State(handler): State<EditorPreferencesHandler>,
    ctx: RequestContext,
    session: CurrentSession,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let version = if_match(&headers)?;
    let normalised = patch(&editor::SCHEMA, body)?;
    change(&core, &handler, &ctx, &session, version, normalised).await
}

/// Path of one preference.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct KeyPath {
    /// The preference, e.g. `theme`.
    #[param(max_length = 100)]
    pub key: String,
}

/// Puts one preference back to its default (a reset, recorded as such).
#[utoipa::path(delete, path = "/me/editor-preferences/{key}", tag = "editor", security(("session" = [])),
    params(KeyPath, IfMatchHeader),
    responses((status = 200, body = PreferencesView),
        (status = 400, description = "`invalid_if_match`", body = ErrorBody),
        (status = 404, description = "`unknown_preference`", body = ErrorBody),
        (status = 412, description = "`stale_version`", body = ErrorBody),
        (status = 428, description = "`if_match_required`", body = ErrorBody)))]
pub async fn reset_preference(
    State(core): State<Core>,
    State(handler): State<EditorPreferencesHandler>,
    ctx: RequestContext,
    session: CurrentSession,
    headers: HeaderMap,
    ApiPath(path): ApiPath<KeyPath>,
) -> Result<Response, ApiError> {
    if editor::SCHEMA.field(&path.key).is_none() {
        return Err(ApiError::NotFound(
            "unknown_preference",
            format!("{:?} is not an editor preference", path.key),
        ));
    }
    let version = if_match(&headers)?;
    let reset = Normalised {
        resets: vec![path.key],
        ..Normalised::default()
    };
    change(&core, &handler, &ctx, &session, version, reset).await
}

/// The JSON Schema of the editor preferences (types, defaults, ranges).
#[utoipa::path(get, path = "/me/editor-preferences/schema", tag = "editor", security(("session" = [])),
    responses((status = 200, description = "A JSON Schema (draft 2020-12)", body = Object)))]
pub async fn preferences_schema(_session: CurrentSession) -> Json<serde_json::Value> {
    Json(json_schema(&editor::SCHEMA))
}

/// One change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    /// The preference.
    pub key: String,
    /// `set` or `reset`.
    pub action: String,
    /// The value set (null for a reset).
    #[schema(value_type = Object)]
    pub value: Option<serde_json::Value>,
    /// When (RFC 3339).
    pub at: String,
}

/// A page of changes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeList {
    /// Newest first.
    pub changes: Vec<ChangeView>,
    /// The next page's cursor; null on the last page.
    pub next_cursor: Option<String>,
}

/// Every change of the caller's editor preferences, newest first, a page at a time.
#[utoipa::path(get, path = "/me/editor-preferences/history", tag = "editor", security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = ChangeList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn preferences_history(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<ChangeList>, ApiError> {
    let page = page.page()?;
    let changes =
        projections::editor_preferences::history(&core.db, session.account_id, &page).await?;
    Ok(Json(ChangeList {
        changes: changes
            .items
            .into_iter()
            .map(|c| ChangeView {
                key: c.key,
                action: c.action,
                value: c.value,
                at: c.at.to_rfc3339(),
            })
            .collect(),
        next_cursor: next_cursor(changes.next),
    }))
}
