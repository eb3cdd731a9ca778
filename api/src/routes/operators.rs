//! Operator routes, for operator tokens only (`accounts operator-token create`). Every route
//! here is a read that auditors may make (`Operator`, i.e. `Operator<AnyRole>`); a route
//! that changes anything takes `Operator<Admin>`.

use crate::error::ApiError;
use crate::extract::Operator;
use crate::openapi::Routes;
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;
use store::EventDecoder;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(reconciliation))
        .routes(routes!(dead_letters))
        .routes(routes!(metrics))
}

/// Recomputes balances, holds and invoice totals from the log and compares them with the
/// read models (admin and auditor tokens).
#[utoipa::path(get, path = "/admin/reconciliation", tag = "admin", security(("operator" = [])),
    responses(
        (status = 200, description = "The report; `ok` is false when anything drifted", body = Object),
    ))]
pub async fn reconciliation(
    State(core): State<Core>,
    operator: Operator,
) -> Result<Json<workers::reconcile::Report>, ApiError> {
    tracing::info!(token_id = %operator.token_id, role = operator.role.as_str(), "reconciliation requested");
    let decoder: Arc<dyn EventDecoder> = Arc::new(core.codec.clone());
    let report = workers::reconcile::reconcile(&core.db, &core.log, &decoder)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(report))
}

/// Mail that kept failing, newest first (admin and auditor tokens).
#[utoipa::path(get, path = "/admin/mail/dead-letters", tag = "admin", security(("operator" = [])),
    responses(
        (status = 200, description = "The dead letters: message, attempts, last error", body = [Object]),
    ))]
pub async fn dead_letters(
    State(core): State<Core>,
    _operator: Operator,
) -> Result<Json<Vec<workers::mail::queue::DeadLetter>>, ApiError> {
    Ok(Json(workers::mail::queue::dead_letters(&core.db).await?))
}

/// Prometheus metrics (operator tokens): HTTP requests by route template and status,
/// commands, conflicts and retries, append sizes, password-hash queue waits, how far each
/// read model is behind the log, and the mail pipeline (see the README's "Metrics").
#[utoipa::path(get, path = "/metrics", tag = "admin", security(("operator" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    ))]
pub async fn metrics(State(core): State<Core>, _operator: Operator) -> Result<Response, ApiError> {
    Ok(crate::metrics::text_response(
        crate::metrics::render(&core).await?,
    ))
}
