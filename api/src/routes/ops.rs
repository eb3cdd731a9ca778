//! Operations: liveness, readiness and the OpenAPI document (its interactive page is in
//! [`super::docs`]).

use crate::error::{ApiError, ErrorBody};
use crate::extract::{bearer_token, live_operator};
use crate::openapi::Routes;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
}

/// The document as served: rendered once, when the router is built.
#[derive(Debug, Clone)]
pub struct Published {
    json: Bytes,
}

impl Published {
    /// Renders `document` as JSON.
    pub fn new(document: &OpenApi) -> Self {
        let document = crate::openapi::to_json(document);
        Self {
            json: Bytes::from(document.to_string()),
        }
    }
}

/// The OpenAPI 3.1 document of every route this service serves.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi_json(Extension(published): Extension<Published>) -> Response {
    let mut response = published.json.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// One read model's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionStatus {
    /// Its name.
    pub name: &'static str,
    /// The last log position it applied.
    pub checkpoint: u64,
    /// Whether it has applied everything in the log.
    pub caught_up: bool,
}

/// Readiness: the status to anyone; the log head and each read model's checkpoint to
/// operators only.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: &'static str,
    /// The last position in the log (operator tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_head: Option<u64>,
    /// Each read model (operator tokens only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projections: Option<Vec<ProjectionStatus>>,
}

/// The database answers and the read models are known. Anyone gets the status; an
/// operator token (`Authorization: Bearer adm_…`, any role) also gets the log head and each
/// read model's checkpoint. A token that is sent and not a live operator token is 401.
#[utoipa::path(get, path = "/readyz", tag = "operations", security((), ("operator" = [])),
    responses((status = 200, body = Readiness), (status = 503, description = "`not_ready`: the database does not answer", body = ErrorBody)))]
pub async fn readyz(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Readiness>, ApiError> {
    let operator = match headers.get(header::AUTHORIZATION) {
        None => false,
        Some(_) => {
            let token = bearer_token(&headers).unwrap_or_default();
            // A service token (the studio's workers) is no operator here.
            live_operator(&state, token).await?.role != domain::operator::OperatorRole::Service
        }
    };
    let core = &state.core;
    let check = async {
        core.db.ping().await.map_err(|e| e.to_string())?;
        let head = core.log.head().await.map_err(|e| e.to_string())?;
        if !operator {
            return Ok(Readiness {
                status: "ready",
                log_head: None,
                projections: None,
            });
        }
        let mut projections = Vec::new();
        for name in core.projections.names() {
            let checkpoint = core
                .projections
                .position(name)
                .await
                .map_err(|e| e.to_string())?;
            projections.push(ProjectionStatus {
                name: name.key(),
                checkpoint: checkpoint.0,
                caught_up: checkpoint >= head,
            });
        }
        Ok::<_, String>(Readiness {
            status: "ready",
            log_head: Some(head.0),
            projections: Some(projections),
        })
    };
    check.await.map(Json).map_err(|cause| {
        tracing::warn!(%cause, "not ready");
        ApiError::Unavailable("not_ready", "the database is not reachable".into())
    })
}
