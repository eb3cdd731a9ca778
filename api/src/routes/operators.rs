//! Operator routes, for operator tokens only (`accounts operator-token create`). Every route
//! here is a read that auditors may make (`Operator`, i.e. `Operator<AnyRole>`); a route
//! that changes anything takes `Operator<Admin>`.

use crate::error::ApiError;
use crate::extract::Operator;
use crate::openapi::Routes;
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
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

/// Prometheus metrics of the mail pipeline (operator tokens): messages sent, skipped, in
/// flight, dead-lettered and waiting in the embedded outbox, and how far the notifier is
/// behind the log.
#[utoipa::path(get, path = "/metrics", tag = "admin", security(("operator" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    ))]
pub async fn metrics(State(core): State<Core>, _operator: Operator) -> Result<Response, ApiError> {
    let stats = workers::mail::queue::stats(&core.db).await?;
    let notifier =
        projections::checkpoints::stored_checkpoint(&core.db, workers::notifier::CHECKPOINT)
            .await?;
    let head = core
        .log
        .committed_head()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let behind = i64::from(notifier < head);
    let mut text = String::new();
    for (name, help, kind, value) in [
        (
            "accounts_mail_sent_total",
            "E-mails sent.",
            "counter",
            stats.sent,
        ),
        (
            "accounts_mail_skipped_total",
            "E-mails not sent because the account was gone.",
            "counter",
            stats.skipped,
        ),
        (
            "accounts_mail_sending",
            "E-mails being sent now.",
            "gauge",
            stats.sending,
        ),
        (
            "accounts_mail_dead_letters",
            "E-mails given up on (see accounts mail dead-letters).",
            "gauge",
            stats.dead_letters,
        ),
        (
            "accounts_mail_outbox",
            "E-mails waiting in the embedded outbox.",
            "gauge",
            stats.outbox,
        ),
        (
            "accounts_notifier_behind",
            "1 while the notifier has events of the log left to handle.",
            "gauge",
            behind as i64,
        ),
    ] {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
