//! The public API (`/api/v1`, API tokens with scopes) and what the studio CLI calls
//! (`/cli/v1`, CLI tokens). Each request made with a token is counted into its usage log.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, RequestContext};
use crate::openapi::Routes;
use crate::routes::credits::{
    CreditsView, HistoryQuery, TransactionPage, credits_of, transactions_of,
};
use crate::routes::generations::{
    CompleteRequest, GenerationView, HoldRequest, complete_as, fail_as, hold_as,
};
use crate::routes::me::{MeResponse, me_view};
use crate::routes::token_views::UsageView;
use crate::routes::tokens::usage_of;
use crate::state::{AppState, Core, Payments};
use crate::token_auth::{
    AccountRead, ApiCaller, CliCaller, CreditsRead, GenerationsWrite, UsageRead, record_usage,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module, each counted into its token's usage log.
pub fn router(state: AppState) -> Routes {
    Routes::new()
        .routes(routes!(me))
        .routes(routes!(credits))
        .routes(routes!(transactions))
        .routes(routes!(hold))
        .routes(routes!(complete))
        .routes(routes!(fail))
        .routes(routes!(usage))
        .routes(routes!(cli_me))
        .route_layer(axum::middleware::from_fn_with_state(state, record_usage))
}

/// The token's account.
#[utoipa::path(get, path = "/api/v1/me", operation_id = "api_me", tag = "public api", security(("api_token" = ["account:read"])),
    responses((status = 200, body = MeResponse)))]
pub async fn me(
    State(core): State<Core>,
    caller: ApiCaller<AccountRead>,
) -> Result<Json<MeResponse>, ApiError> {
    Ok(Json(me_view(&core, caller.account_id).await?))
}

/// The balance card.
#[utoipa::path(get, path = "/api/v1/credits", operation_id = "api_credits", tag = "public api", security(("api_token" = ["credits:read"])),
    responses((status = 200, body = CreditsView),
        (status = 503, description = "`projection_lag`: the credits read model has not caught up with the account's latest change yet (it waits up to 10 s first); retry in a moment", body = ErrorBody)))]
pub async fn credits(
    State(core): State<Core>,
    caller: ApiCaller<CreditsRead>,
) -> Result<Json<CreditsView>, ApiError> {
    credits_of(&core, caller.account_id).await
}

/// The credit history, newest first; entries made through a token name it.
#[utoipa::path(get, path = "/api/v1/credits/transactions", operation_id = "api_transactions", tag = "public api", security(("api_token" = ["credits:read"])),
    params(HistoryQuery),
    responses((status = 200, body = TransactionPage),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody),
        (status = 503, description = "`projection_lag`: the credits read model has not caught up with the account's latest change yet (it waits up to 10 s first); retry in a moment", body = ErrorBody)))]
pub async fn transactions(
    State(core): State<Core>,
    caller: ApiCaller<CreditsRead>,
    ApiQuery(page): ApiQuery<HistoryQuery>,
) -> Result<Json<TransactionPage>, ApiError> {
    transactions_of(&core, caller.account_id, page).await
}

/// Holds credits for a generation.
#[utoipa::path(post, path = "/api/v1/generations", operation_id = "api_hold", tag = "public api", security(("api_token" = ["generations:write"])),
    request_body = HoldRequest,
    responses((status = 201, body = GenerationView, links(
            ("complete" = (operation_id = "api_complete", parameters(("id" = "$response.body#/generation_id")))),
            ("fail" = (operation_id = "api_fail", parameters(("id" = "$response.body#/generation_id")))),
        )),
        (status = 409, description = "`generation_conflict`: the id was used for another request; \
            `insufficient_credits`: the balance does not cover the estimate; \
            `too_many_open_holds`: the account has as many generations open as it may (`--max-open-holds`)", body = ErrorBody)))]
pub async fn hold(
    State(payments): State<Payments>,
    ctx: RequestContext,
    caller: ApiCaller<GenerationsWrite>,
    ApiJson(body): ApiJson<HoldRequest>,
) -> Result<(StatusCode, Json<GenerationView>), ApiError> {
    hold_as(
        &payments,
        &ctx.command(caller.actor()),
        caller.account_id,
        Some(caller.token_id),
        body,
    )
    .await
}

/// Settles a generation: spends the actual credits, returns the rest of the hold.
#[utoipa::path(post, path = "/api/v1/generations/{id}/complete", operation_id = "api_complete", tag = "public api", security(("api_token" = ["generations:write"])),
    params(("id" = String, Path, description = "The generation id of the hold")), request_body = CompleteRequest,
    responses((status = 200, body = GenerationView),
        (status = 404, description = "`generation_not_found`: no hold with this id", body = ErrorBody),
        (status = 409, description = "`generation_closed` (released), `hold_expired`, `generation_conflict` \
            (settled with another amount) or `exceeds_hold` (more than held)", body = ErrorBody)))]
pub async fn complete(
    State(payments): State<Payments>,
    ctx: RequestContext,
    caller: ApiCaller<GenerationsWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<CompleteRequest>,
) -> Result<Json<GenerationView>, ApiError> {
    complete_as(
        &payments,
        &ctx.command(caller.actor()),
        caller.account_id,
        Some(caller.token_id),
        id,
        body,
    )
    .await
}

/// Releases a failed generation's hold.
#[utoipa::path(post, path = "/api/v1/generations/{id}/fail", operation_id = "api_fail", tag = "public api", security(("api_token" = ["generations:write"])),
    params(("id" = String, Path, description = "The generation id of the hold")),
    responses((status = 200, body = GenerationView),
        (status = 404, description = "`generation_not_found`: no hold with this id", body = ErrorBody),
        (status = 409, description = "`generation_closed`: already completed", body = ErrorBody)))]
pub async fn fail(
    State(payments): State<Payments>,
    ctx: RequestContext,
    caller: ApiCaller<GenerationsWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GenerationView>, ApiError> {
    fail_as(
        &payments,
        &ctx.command(caller.actor()),
        caller.account_id,
        Some(caller.token_id),
        id,
    )
    .await
}

/// The calling token's usage log.
#[utoipa::path(get, path = "/api/v1/usage", operation_id = "api_usage", tag = "public api", security(("api_token" = ["usage:read"])),
    responses((status = 200, body = UsageView)))]
pub async fn usage(
    State(core): State<Core>,
    caller: ApiCaller<UsageRead>,
) -> Result<Json<UsageView>, ApiError> {
    Ok(Json(
        usage_of(&core, caller.account_id, caller.token_id).await?,
    ))
}

/// Who a CLI token belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct CliWhoAmI {
    /// The account.
    pub account_id: uuid::Uuid,
    /// Its display name.
    pub display_name: String,
    /// The token.
    pub token_id: uuid::Uuid,
    /// `cli_device` or `cli_recorder`.
    pub kind: &'static str,
}

/// The account and token behind a CLI token (what `studio whoami` shows).
#[utoipa::path(get, path = "/cli/v1/me", tag = "cli", security(("cli_token" = [])),
    responses((status = 200, body = CliWhoAmI)))]
pub async fn cli_me(
    State(core): State<Core>,
    caller: CliCaller,
) -> Result<Json<CliWhoAmI>, ApiError> {
    let me = me_view(&core, caller.account_id).await?;
    Ok(Json(CliWhoAmI {
        account_id: me.account_id,
        display_name: me.display_name,
        token_id: caller.token_id,
        kind: caller.kind.as_str(),
    }))
}
