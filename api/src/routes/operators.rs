//! Operator routes, for operator tokens only (`accounts operator-token create`). Every route
//! here is a read that auditors may make (`Operator`, i.e. `Operator<AnyRole>`); a route
//! that changes anything takes `Operator<Admin>`.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, Operator};
use crate::openapi::Routes;
use crate::pages::{PageQuery, next_cursor};
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use projections::chain::{BrokenReason, VerifyReport};
use serde::Serialize;
use std::sync::Arc;
use store::EventDecoder;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(reconciliation))
        .routes(routes!(dead_letters))
        .routes(routes!(metrics))
        .routes(routes!(verify_chain))
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

/// A page of the dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    /// Newest first: each message (personal fields sealed), the attempts made, the last
    /// failure and when it was given up (µs since the epoch).
    #[schema(value_type = Vec<Object>)]
    pub dead_letters: Vec<workers::mail::queue::DeadLetter>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Mail that kept failing, newest first, a page at a time (admin and auditor tokens).
#[utoipa::path(get, path = "/admin/mail/dead-letters", tag = "admin", security(("operator" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "The dead letters: message, attempts, last error", body = DeadLetterList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody),
    ))]
pub async fn dead_letters(
    State(core): State<Core>,
    _operator: Operator,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let page = page.page()?;
    let listed = workers::mail::queue::dead_letters(&core.db, &page).await?;
    Ok(Json(DeadLetterList {
        dead_letters: listed.items,
        next_cursor: next_cursor(listed.next),
    }))
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

/// The answer of `GET /admin/audit/verify`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainVerification {
    /// No broken link up to the head.
    pub ok: bool,
    /// Links recomputed from the stored events and found equal.
    pub events_checked: u64,
    /// The chain's head: publish it elsewhere to anchor the chain.
    pub head: ChainHeadView,
    /// Events after the head, not chained yet (not checked); null when the walk stopped at
    /// a broken link.
    pub unchained: Option<u64>,
    /// The first broken link, or null.
    pub first_broken: Option<BrokenLinkView>,
}

/// The last event chained, and its link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainHeadView {
    /// Its global position (0: nothing chained yet).
    pub position: u64,
    /// Its link, 64 lower-case hex digits (null if the stored link is gone).
    pub hash: Option<String>,
}

/// Where the chain breaks first.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrokenLinkView {
    /// The global position.
    pub position: u64,
    /// The event's stream (null if the event is gone).
    pub stream: Option<String>,
    /// The event's revision in its stream (null if the event is gone).
    pub revision: Option<u64>,
    /// Why.
    pub reason: BrokenReasonView,
}

/// Why a link is broken.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokenReasonView {
    /// The stored event no longer hashes to its link: it was edited.
    HashMismatch,
    /// An event at or below the head has no link: inserted, or its link deleted.
    MissingLink,
    /// A link names a position the log no longer holds: the event was deleted.
    MissingEvent,
}

impl From<VerifyReport> for ChainVerification {
    fn from(report: VerifyReport) -> Self {
        Self {
            ok: report.ok,
            events_checked: report.events_checked,
            head: ChainHeadView {
                position: report.head.position,
                hash: report.head.hash,
            },
            unchained: report.unchained,
            first_broken: report.first_broken.map(|broken| BrokenLinkView {
                position: broken.position,
                stream: broken.stream,
                revision: broken.revision,
                reason: match broken.reason {
                    BrokenReason::HashMismatch => BrokenReasonView::HashMismatch,
                    BrokenReason::MissingLink => BrokenReasonView::MissingLink,
                    BrokenReason::MissingEvent => BrokenReasonView::MissingEvent,
                },
            }),
        }
    }
}

/// Verifies the hash chain over the stored log (admin and auditor tokens): reads every
/// event again, recomputes its link and compares it with the stored chain. Answers the
/// first broken link, the head to publish, and how many recent events are not chained yet.
/// A broken chain is still a 200, with `ok` false.
#[utoipa::path(get, path = "/admin/audit/verify", tag = "admin", security(("operator" = [])),
    responses(
        (status = 200, description = "The verification; `ok` is false when a link is broken", body = ChainVerification),
    ))]
pub async fn verify_chain(
    State(core): State<Core>,
    operator: Operator,
) -> Result<Json<ChainVerification>, ApiError> {
    tracing::info!(token_id = %operator.token_id, role = operator.role.as_str(), "chain verification requested");
    let report = projections::chain::verify(&core.db, core.log.as_ref(), None)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(broken) = &report.first_broken {
        tracing::warn!(
            position = broken.position,
            reason = broken.reason.as_str(),
            "the event chain is broken"
        );
    }
    Ok(Json(report.into()))
}
