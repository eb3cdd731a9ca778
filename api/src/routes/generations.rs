//! Charging generations: hold an estimate, settle the actual amount, or release it.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, CurrentSession, RequestContext};
use crate::routes::visible;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use commands::CommandContext;
use domain::AccountId;
use domain::credits::{Feature, ReleaseReason};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me/generations", post(hold))
        .route("/me/generations/{id}/complete", post(complete))
        .route("/me/generations/{id}/fail", post(fail))
}

/// `POST /me/generations`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct HoldRequest {
    /// The client's id for the generation (1-128 of `A-Z a-z 0-9 - _ . :`); retries reuse it.
    pub generation_id: String,
    /// Credits to reserve.
    pub estimated_credits: u64,
    /// What it is for.
    #[schema(value_type = String, example = "generation")]
    pub feature: Feature,
}

/// `POST /me/generations/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompleteRequest {
    /// Credits actually used (at most the estimate).
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
        (status = 201, body = GenerationView),
        (status = 409, description = "The id was used for another request (`generation_conflict`)", body = ErrorBody),
        (status = 422, description = "Not enough credits (`insufficient_credits`)", body = ErrorBody),
    ))]
pub async fn hold(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<HoldRequest>,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    hold_as(
        &state,
        &ctx.command(session.actor()),
        session.account_id,
        None,
        body,
    )
    .await
}

/// Holds credits for `account`, through `api_token` if one made the request.
pub(crate) async fn hold_as(
    state: &AppState,
    ctx: &CommandContext,
    account: AccountId,
    api_token: Option<Uuid>,
    body: HoldRequest,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    let position = state
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
    visible(state, Visibility::ReadModel(Follower::Credits), position).await?;
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
    params(("id" = String, Path)), request_body = CompleteRequest,
    responses(
        (status = 200, body = GenerationView),
        (status = 404, description = "No hold (`generation_not_found`)", body = ErrorBody),
        (status = 409, description = "Released, timed out, or settled differently", body = ErrorBody),
        (status = 422, description = "More than held (`exceeds_hold`)", body = ErrorBody),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<Json<GenerationView>, ApiError> {
    complete_as(
        &state,
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
    state: &AppState,
    ctx: &CommandContext,
    account: AccountId,
    api_token: Option<Uuid>,
    id: String,
    body: CompleteRequest,
) -> Result<Json<GenerationView>, ApiError> {
    let position = state
        .credits
        .settle(ctx, account, &id, body.credits, api_token)
        .await?;
    visible(state, Visibility::ReadModel(Follower::Credits), position).await?;
    Ok(Json(GenerationView {
        generation_id: id,
        status: "completed",
        credits: body.credits,
    }))
}

/// Releases a failed generation's hold in full.
#[utoipa::path(post, path = "/me/generations/{id}/fail", tag = "credits", security(("session" = [])),
    params(("id" = String, Path)),
    responses(
        (status = 200, body = GenerationView),
        (status = 404, description = "No hold (`generation_not_found`)", body = ErrorBody),
        (status = 409, description = "Already completed (`generation_closed`)", body = ErrorBody),
    ))]
pub async fn fail(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    Path(id): Path<String>,
) -> Result<Json<GenerationView>, ApiError> {
    fail_as(
        &state,
        &ctx.command(session.actor()),
        session.account_id,
        None,
        id,
    )
    .await
}

/// Releases a generation of `account` in full.
pub(crate) async fn fail_as(
    state: &AppState,
    ctx: &CommandContext,
    account: AccountId,
    api_token: Option<Uuid>,
    id: String,
) -> Result<Json<GenerationView>, ApiError> {
    let position = state
        .credits
        .release(ctx, account, &id, ReleaseReason::Failed, api_token)
        .await?;
    visible(state, Visibility::ReadModel(Follower::Credits), position).await?;
    Ok(Json(GenerationView {
        generation_id: id,
        status: "failed",
        credits: 0,
    }))
}
