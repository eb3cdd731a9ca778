//! Charging generations: hold an estimate, settle the actual amount, or release it.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::Payments;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::CommandContext;
use domain::AccountId;
use domain::credits::{Feature, ReleaseReason};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(hold))
        .routes(routes!(complete))
        .routes(routes!(fail))
}

/// `POST /me/generations`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HoldRequest {
    /// The client's id for the generation (1-128 of `A-Z a-z 0-9 - _ . :`); retries reuse it.
    #[schema(schema_with = patterns::schemas::generation_id)]
    pub generation_id: String,
    /// Credits to reserve.
    #[schema(minimum = 1, maximum = 18_446_744_073_709_551_615_u64)]
    #[serde(deserialize_with = "crate::integers::u64")]
    pub estimated_credits: u64,
    /// What it is for.
    #[schema(value_type = FeatureName)]
    pub feature: Feature,
}

/// What a generation is for ([`Feature`]).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum FeatureName {
    /// The editor.
    Editor,
    /// AI generation.
    Generation,
    /// Rendering.
    Rendering,
    /// The public API.
    Api,
}

/// `POST /me/generations/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompleteRequest {
    /// Credits actually used (at most the hold).
    #[schema(maximum = 18_446_744_073_709_551_615_u64)]
    #[serde(deserialize_with = "crate::integers::u64")]
    pub credits: u64,
}

/// Where a generation stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerationView {
    /// The generation.
    pub generation_id: String,
    /// held, completed or failed.
    pub status: &'static str,
    /// Credits concerned.
    pub credits: u64,
}

/// Reserves credits for a generation.
#[utoipa::path(post, path = "/me/generations", tag = "credits", security(("session" = [])),
    request_body = HoldRequest,
    responses(
        (status = 201, body = GenerationView, links(
            ("complete" = (operation_id = "complete", parameters(("id" = "$response.body#/generation_id")))),
            ("fail" = (operation_id = "fail", parameters(("id" = "$response.body#/generation_id")))),
        )),
        (status = 409, description = "`generation_conflict`: the id was used for another request; \
            `generation_closed`: the generation was completed or released already; \
            `insufficient_credits`: the balance does not cover the estimate; \
            `too_many_open_holds`: the account has as many generations open as it may (`--max-open-holds`)", body = ErrorBody),
    ))]
pub async fn hold(
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<HoldRequest>,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    hold_as(
        &payments,
        &ctx.command(session.actor()),
        session.account_id,
        None,
        body,
    )
    .await
}

/// Holds credits for `account`, through `api_token` if one made the request.
pub(crate) async fn hold_as(
    payments: &Payments,
    ctx: &CommandContext,
    account: AccountId,
    api_token: Option<Uuid>,
    body: HoldRequest,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    payments
        .credits
        .hold(
            ctx,
            account,
            &body.generation_id,
            body.feature,
            body.estimated_credits,
            api_token,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(GenerationView {
            generation_id: body.generation_id,
            status: "held",
            credits: body.estimated_credits,
        }),
    ))
}

/// Settles a generation: spends `credits` and returns the rest of the hold.
#[utoipa::path(post, path = "/me/generations/{id}/complete", tag = "credits", security(("session" = [])),
    params(("id" = String, Path, description = "The generation id of the hold")), request_body = CompleteRequest,
    responses(
        (status = 200, body = GenerationView),
        (status = 404, description = "`generation_not_found`: no hold with this id", body = ErrorBody),
        (status = 409, description = "`generation_closed` (released), `hold_expired`, `generation_conflict` \
            (settled with another amount) or `exceeds_hold` (more than held)", body = ErrorBody),
    ))]
pub async fn complete(
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<Json<GenerationView>, ApiError> {
    complete_as(
        &payments,
        &ctx.command(session.actor()),
        session.account_id,
        None,
        id,
        body,
    )
    .await
}

/// Settles a generation of `account`.
pub(crate) async fn complete_as(
    payments: &Payments,
    ctx: &CommandContext,
    account: AccountId,
    api_token: Option<Uuid>,
    id: String,
    body: CompleteRequest,
) -> Result<Json<GenerationView>, ApiError> {
    payments
        .credits
        .settle(ctx, account, &id, body.credits, api_token)
        .await?;
    Ok(Json(GenerationView {
        generation_id: id,
        status: "completed",
        credits: body.credits,
    }))
}

/// Releases a failed generation's hold in full.
#[utoipa::path(post, path = "/me/generations/{id}/fail", tag = "credits", security(("session" = [])),
    params(("id" = String, Path, description = "The generation id of the hold")),
    responses(
        (status = 200, body = GenerationView),
        (status = 404, description = "`generation_not_found`: no hold with this id", body = ErrorBody),
        (status = 409, description = "`generation_closed`: already completed", body = ErrorBody),
    ))]
pub async fn fail(
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GenerationView>, ApiError> {
    fail_as(
        &payments,
        &ctx.command(session.actor()),
        session.account_id,
        None,
        id,
    )
    .await
}

/// Releases a generation of `account` in full.
pub(crate) async fn fail_as(
    payments: &Payments,
    ctx: &CommandContext,
    account: AccountId,
    api_token: Option<Uuid>,
    id: String,
) -> Result<Json<GenerationView>, ApiError> {
    payments
        .credits
        .release(ctx, account, &id, ReleaseReason::Failed, api_token)
        .await?;
    Ok(Json(GenerationView {
        generation_id: id,
        status: "failed",
        credits: 0,
    }))
}
