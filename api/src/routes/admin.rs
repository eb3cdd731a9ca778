//! Operator routes, for operator tokens only (`accounts admin-token create`).

use crate::error::{ApiError, ErrorBody};
use crate::extract::Operator;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use store::EventDecoder;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/admin/reconciliation", get(reconciliation))
}

/// Recomputes balances, holds and invoice totals from the log and compares them with the
/// read models (admin and auditor tokens).
#[utoipa::path(get, path = "/admin/reconciliation", tag = "admin", security(("operator" = [])),
    responses(
        (status = 200, description = "The report; `ok` is false when anything drifted"),
        (status = 401, description = "Not an operator token", body = ErrorBody),
    ))]
pub async fn reconciliation(
    State(state): State<AppState>,
    operator: Operator,
) -> Result<Json<workers::reconcile::Report>, ApiError> {
    tracing::info!(token_id = %operator.token_id, role = operator.role, "reconciliation requested");
    let decoder: Arc<dyn EventDecoder> = Arc::new(state.codec.clone());
    let report = workers::reconcile::reconcile(&state.db, &state.log, &decoder)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(report))
}
