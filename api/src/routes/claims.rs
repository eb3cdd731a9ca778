//! Claims: the signup bonus and promotional offers of the catalog.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::state::{Core, Payments};
use axum::Json;
use axum::extract::State;
use projections::{Follower, Visibility};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new().routes(routes!(list)).routes(routes!(claim))
}

/// An offer and where the account stands with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// signup or promotion.
    pub kind: String,
    /// Credits it grants.
    pub credits: u64,
    /// available, redeemed, ended or exhausted.
    pub status: &'static str,
    /// When the offer ends (RFC 3339), if it does.
    pub ends_at: Option<String>,
    /// When the granted credits expire, in days after the claim.
    pub lot_expires_after_days: Option<u32>,
}

/// The offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClaimList {
    /// Available and redeemed.
    pub claims: Vec<ClaimView>,
}

async fn views(
    core: &Core,
    payments: &Payments,
    session: &CurrentSession,
) -> Result<Vec<ClaimView>, ApiError> {
    let now = core.clock.now();
    crate::routes::credits::ledger_shown(core, session.account_id).await?;
    let lots = projections::credits::lots(&core.db, session.account_id).await?;
    let mut views = Vec::new();
    for offer in &payments.billing.catalog().claims {
        let key = format!("claim:{}", offer.id);
        let (_, granted) = projections::credits::offer_redemptions(&core.db, &offer.id).await?;
        let status = if lots.iter().any(|l| l.grant_key == key) {
            "redeemed"
        } else if offer.ends_at.is_some_and(|end| now >= end) {
            "ended"
        } else if offer
            .budget_credits
            .is_some_and(|budget| granted + offer.credits > budget)
        {
            "exhausted"
        } else {
            "available"
        };
        views.push(ClaimView {
            id: offer.id.clone(),
            name: offer.name.clone(),
            kind: serde_json::to_value(offer.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            credits: offer.credits,
            status,
            ends_at: offer.ends_at.map(|t| t.to_rfc3339()),
            lot_expires_after_days: offer.lot_expires_after_days,
        });
    }
    Ok(views)
}

/// The offers, with what the account redeemed.
#[utoipa::path(get, path = "/me/claims", operation_id = "list_claims", tag = "credits", security(("session" = [])),
    responses((status = 200, body = ClaimList),
        (status = 503, description = "`projection_lag`: the credits read model has not caught up with the account's latest change yet (it waits up to 10 s first); retry in a moment", body = ErrorBody)))]
pub async fn list(
    State(core): State<Core>,
    State(payments): State<Payments>,
    session: CurrentSession,
) -> Result<Json<ClaimList>, ApiError> {
    Ok(Json(ClaimList {
        claims: views(&core, &payments, &session).await?,
    }))
}

/// Claims an offer (once per account; a retry answers the same).
#[utoipa::path(post, path = "/me/claims/{claim_id}", tag = "credits", security(("session" = [])),
    params(("claim_id" = String, Path, description = "An offer of `GET /me/claims` (the examples are those on offer)")),
    responses(
        (status = 200, body = ClaimView),
        (status = 404, description = "`claim_not_found`: no such offer", body = ErrorBody),
        (status = 409, description = "`claim_budget_exhausted`: its budget is spent", body = ErrorBody),
        (status = 410, description = "`claim_ended`: the campaign ended", body = ErrorBody),
    ))]
pub async fn claim(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(claim_id): ApiPath<String>,
) -> Result<Json<ClaimView>, ApiError> {
    let position = payments
        .billing
        .claim(&ctx.command(session.actor()), session.account_id, &claim_id)
        .await?;
    core.visible(Visibility::ReadModel(Follower::Credits), position)
        .await?;
    views(&core, &payments, &session)
        .await?
        .into_iter()
        .find(|v| v.id == claim_id)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("claim_not_found", "no such claim".into()))
}
