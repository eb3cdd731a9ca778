//! A workspace's object storage: managed (the service's own), external (an S3-compatible
//! bucket of the workspace's), or misconfigured (external, failing its last probe).
//! Settings are probed live before they are saved; the secret is write-only, sealed with
//! the workspace's key, never returned or logged. [`reprobe_all`] re-checks external
//! storage on a schedule.

use super::workspaces::{WorkspacePath, not_found, require_admin, role_in, run};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, ApiJson, ApiPath, CurrentSession, RequestContext, optional_json};
use crate::openapi::Routes;
use crate::state::{AppState, Core, outbound_http_client};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::CommandContext;
use commands::workspaces::Workspaces;
use domain::WorkspaceId;
use domain::workspace::{ExternalStorage, WorkspaceCommand};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use store::s3::{ProbeFailure, S3BlobStore, S3Settings, probe};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(get_storage, put_storage, reset_storage))
        .routes(routes!(test_storage))
}

/// The storage in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageView {
    /// `managed`, `external` or `misconfigured`.
    pub state: String,
    /// The bucket (external).
    pub bucket: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// The endpoint of an S3-compatible store.
    pub endpoint: Option<String>,
    /// The access key's prefix and last four characters (admins only).
    pub access_key_hint: Option<String>,
    /// `set` or `not_set`: the secret itself is never returned.
    pub secret_state: String,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// The last probe (RFC 3339).
    pub last_checked_at: Option<String>,
    /// Why it is misconfigured, and since when.
    pub problem: Option<String>,
    /// Misconfigured since (RFC 3339).
    pub problem_since: Option<String>,
}

/// External storage settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StorageRequest {
    /// The bucket.
    #[schema(min_length = 3, max_length = 63)]
    pub bucket: String,
    /// Its region, e.g. `eu-west-1`.
    #[schema(min_length = 1, max_length = 64)]
    pub region: String,
    /// The endpoint of an S3-compatible store (absent: AWS).
    #[schema(max_length = 2048)]
    pub endpoint: Option<String>,
    /// The access key id.
    #[schema(min_length = 1, max_length = 256)]
    pub access_key_id: String,
    /// The secret access key; absent keeps the stored one.
    #[schema(max_length = 256)]
    pub secret_access_key: Option<String>,
    /// Path-style addressing (most S3-compatible servers).
    #[serde(default)]
    pub force_path_style: bool,
}

/// The outcome of a probe.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProbeView {
    /// Whether every step passed.
    pub ok: bool,
    /// The step that failed: `put`, `get`, `verify` or `delete`.
    pub step: Option<String>,
    /// The store's error.
    pub problem: Option<String>,
}

fn view(storage: projections::workspaces::StorageRow, admin: bool) -> StorageView {
    let external = storage.state != "managed";
    StorageView {
        state: storage.state,
        bucket: storage.bucket,
        region: storage.region,
        endpoint: storage.endpoint,
        access_key_hint: storage.access_key_hint.filter(|_| admin),
        secret_state: if external { "set" } else { "not_set" }.into(),
        force_path_style: storage.force_path_style,
        last_checked_at: storage.last_checked_at.map(|t| t.to_rfc3339()),
        problem: storage.problem,
        problem_since: storage.problem_since.map(|t| t.to_rfc3339()),
    }
}

/// The workspace's storage (members; the key hint for admins).
#[utoipa::path(get, path = "/workspaces/{id}/storage", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 200, body = StorageView),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn get_storage(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<Json<StorageView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    let role = role_in(&core, workspace, session.account_id).await?;
    let row = projections::workspaces::workspace(&core.db, &core.sealer, workspace)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(row.storage, role.administers())))
}

/// The settings a request asks for, the stored secret standing in for an absent one; a
/// value out of the bounds the schema states is 422 before anything is probed or stored.
async fn settings_of(
    workspaces: &Workspaces,
    workspace: WorkspaceId,
    body: StorageRequest,
) -> Result<ExternalStorage, ApiError> {
    let bounded = [
        ("bucket", Some(&body.bucket), 3, 63),
        ("region", Some(&body.region), 1, 64),
        ("endpoint", body.endpoint.as_ref(), 0, 2048),
        ("access_key_id", Some(&body.access_key_id), 1, 256),
        ("secret_access_key", body.secret_access_key.as_ref(), 0, 256),
    ];
    for (field, value, min, max) in bounded {
        let length = value.map_or(min, |v| v.chars().count());
        if !(min..=max).contains(&length) {
            return Err(ApiError::invalid(
                field,
                format_args!("{min} to {max} characters"),
            ));
        }
    }
    let secret = match body.secret_access_key {
        Some(secret) if !secret.is_empty() => secret,
        _ => workspaces
            .load(workspace)
            .await?
            .storage
            .external
            .map(|e| e.secret_access_key)
            .ok_or_else(|| {
                ApiError::Conflict(
                    "secret_required",
                    "secret_access_key is required: the workspace has none stored yet".into(),
                )
            })?,
    };
    Ok(ExternalStorage {
        bucket: body.bucket,
        region: body.region,
        endpoint: body.endpoint.filter(|e| !e.is_empty()),
        access_key_id: body.access_key_id,
        secret_access_key: secret,
        force_path_style: body.force_path_style,
    })
}

/// Puts, reads back and deletes a sentinel object with `settings`.
pub async fn probe_settings(settings: &ExternalStorage) -> Result<(), ProbeFailure> {
    let s3 = S3Settings {
        endpoint: settings.endpoint.clone(),
        region: settings.region.clone(),
        bucket: settings.bucket.clone(),
        access_key_id: settings.access_key_id.clone(),
        secret_access_key: settings.secret_access_key.clone(),
        force_path_style: settings.force_path_style,
    };
    let failure = |message: String| ProbeFailure {
        step: store::s3::ProbeStep::Put,
        message,
    };
    // A client that follows no redirect: the endpoint is the user's.
    let client = outbound_http_client().map_err(|e| failure(e.to_string()))?;
    let store = S3BlobStore::new(&s3, client).map_err(|e| failure(e.to_string()))?;
    probe(&store).await
}

fn probe_refused(failure: &ProbeFailure) -> ApiError {
    ApiError::Unprocessable(
        "storage_probe_failed",
        format!("{} failed: {}", failure.step.as_str(), failure.message),
    )
}

/// Uses external storage (admins and owners), once a live probe (put, read back and
/// delete a sentinel object) passed: a failing step is 422 naming it, and nothing is
/// saved. Assets stored from now on go there.
#[utoipa::path(put, path = "/workspaces/{id}/storage", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath), request_body = StorageRequest,
    responses((status = 200, body = StorageView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 409, description = "`secret_required`: no secret given and none stored", body = ErrorBody),
        (status = 422, description = "`storage_probe_failed`: the step and the store's error; `validation_failed`: a value longer or shorter than its bounds", body = ErrorBody)))]
pub async fn put_storage(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiJson(body): ApiJson<StorageRequest>,
) -> Result<Json<StorageView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    require_admin(&core, workspace, session.account_id).await?;
    let settings = settings_of(&workspaces, workspace, body).await?;
    probe_settings(&settings)
        .await
        .map_err(|f| probe_refused(&f))?;
    let position = workspaces
        .configure_storage(
            &ctx.command(session.actor()),
            workspace,
            session.account_id,
            settings,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Workspaces), position)
        .await?;
    let row = projections::workspaces::workspace(&core.db, &core.sealer, workspace)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(view(row.storage, true)))
}

/// Probes the settings in the body without saving them (the stored secret if it has
/// none), or the saved settings when there is no body.
#[utoipa::path(post, path = "/workspaces/{id}/storage/test", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    request_body(content = Option<StorageRequest>, description = "Optional: no body tests the saved settings"),
    responses((status = 200, body = ProbeView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 409, description = "`secret_required`: no secret given and none stored; `managed_storage`: no body and nothing saved to test", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a value longer or shorter than its bounds", body = ErrorBody)))]
pub async fn test_storage(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ProbeView>, ApiError> {
    let workspace = WorkspaceId(path.id);
    require_admin(&core, workspace, session.account_id).await?;
    let settings = match optional_json::<StorageRequest>(&body)? {
        Some(body) => settings_of(&workspaces, workspace, body).await?,
        None => workspaces
            .load(workspace)
            .await?
            .storage
            .external
            .ok_or_else(|| {
                ApiError::Conflict(
                    "managed_storage",
                    "the workspace uses managed storage: send settings to test".into(),
                )
            })?,
    };
    Ok(Json(match probe_settings(&settings).await {
        Ok(()) => ProbeView {
            ok: true,
            step: None,
            problem: None,
        },
        Err(failure) => ProbeView {
            ok: false,
            step: Some(failure.step.as_str().into()),
            problem: Some(failure.message),
        },
    }))
}

/// Back to the managed storage (admins and owners); the external credentials are
/// forgotten.
#[utoipa::path(delete, path = "/workspaces/{id}/storage", tag = "workspaces", security(("session" = [])),
    params(WorkspacePath),
    responses((status = 204, description = "Managed storage"),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn reset_storage(
    State(core): State<Core>,
    State(workspaces): State<Workspaces>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspacePath>,
) -> Result<StatusCode, ApiError> {
    let command = WorkspaceCommand::ResetStorage {
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

/// Probes every workspace's external storage again and records the outcome: a change
/// between working and failing is recorded with its reason and since when, and its admins
/// are e-mailed once. Returns how many were probed.
#[tracing::instrument(skip_all)]
pub async fn reprobe_all(state: &AppState) -> Result<usize, ApiError> {
    let ctx = CommandContext::system("storage-probe");
    let ids = projections::workspaces::on_external_storage(&state.core.db).await?;
    for workspace in &ids {
        let current = state.workspaces.load(*workspace).await?;
        let Some(settings) = current.storage.external else {
            continue;
        };
        let problem = probe_settings(&settings)
            .await
            .err()
            .map(|f| format!("{} failed: {}", f.step.as_str(), f.message));
        let command = WorkspaceCommand::RecordProbe {
            probed: settings,
            problem,
            at: state.core.clock.now(),
        };
        state.workspaces.run(&ctx, *workspace, command).await?;
    }
    Ok(ids.len())
}
