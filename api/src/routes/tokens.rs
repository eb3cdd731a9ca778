//! The API tab (public API tokens) and the Integrations tab's CLI tokens, managed by a
//! signed-in session.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiBytes, ApiJson, ApiPath, ApiQuery, CurrentSession, RequestContext, optional_json,
};
use crate::openapi::Routes;
use crate::pages::{PageQuery, next_cursor};
use crate::routes::entitlements::entitlements_of;
use crate::routes::token_views::{
    CreateApiToken, CreateCliToken, DailyUsageView, IssuedTokenView, RotateRequest, TokenList,
    UsageView,
};
use crate::state::{Core, Payments, Tokens};
use crate::token_auth::api_access_disabled;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::access_tokens::{NewAccessToken, TokenFamily};
use commands::tokens::hash_token;
use domain::AccountId;
use domain::access_token::{Scope, TokenKind};
use projections::{Follower, Visibility};
use std::time::Duration;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(create_api_token, list_api_tokens))
        .routes(routes!(revoke_api_token))
        .routes(routes!(rotate_api_token))
        .routes(routes!(api_token_usage))
        .routes(routes!(create_cli_token, list_cli_tokens))
        .routes(routes!(revoke_cli_token))
}

fn parse_scopes(names: &[String]) -> Result<Vec<Scope>, ApiError> {
    names
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| {
                ApiError::invalid(
                    "scopes",
                    format!(
                        "unknown scope {name:?}; known: {}",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Creates an API token; its secret is in this response only. Needs API access and
/// scopes the account is offered (`GET /me/entitlements`), and a recent proof
/// (`POST /auth/reauthenticate`, or the sign-in itself); the token expires after
/// `expires_in_days` (90 days when absent, `--api-token-max-days` at most).
#[utoipa::path(post, path = "/me/api-tokens", tag = "tokens", security(("session" = [])),
    request_body = CreateApiToken,
    responses((status = 201, body = IssuedTokenView, links(
            ("rotate" = (operation_id = "rotate_api_token", parameters(("id" = "$response.body#/token_id")))),
            ("usage" = (operation_id = "api_token_usage", parameters(("id" = "$response.body#/token_id")))),
            ("revoke" = (operation_id = "revoke_api_token", parameters(("id" = "$response.body#/token_id")))),
        )),
        (status = 403, description = "`api_access_disabled`: the account's plan or the deployment leaves out API access; \
            `reauthentication_required`: the session has not proved its password recently", body = ErrorBody),
        (status = 409, description = "`too_many_tokens`: the account has as many live API and CLI tokens as it may (`--max-live-tokens`)", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a label, scope or lifetime out of bounds (the message names the range); \
            `scope_not_offered`: a scope the account's plan or the deployment does not offer (the message names it)", body = ErrorBody)))]
pub async fn create_api_token(
    State(core): State<Core>,
    State(payments): State<Payments>,
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<CreateApiToken>,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    let entitled = entitlements_of(&core, &payments, session.account_id).await?;
    if !entitled.api_access {
        return Err(api_access_disabled());
    }
    let scopes = parse_scopes(&body.scopes)?;
    if let Some(scope) = scopes.iter().find(|s| !entitled.offers(**s)) {
        return Err(ApiError::Unprocessable(
            "scope_not_offered",
            format!(
                "scopes: {} is not offered to this account; offered: {}",
                scope.as_str(),
                entitled
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let token = NewAccessToken {
        kind: TokenKind::Api,
        label: body.label,
        scopes,
        expires_in_days: body.expires_in_days,
    };
    issue(&core, &tokens, &ctx, &session, token).await
}

/// Creates `token` for the caller; answers once the token works.
async fn issue(
    core: &Core,
    tokens: &Tokens,
    ctx: &RequestContext,
    session: &CurrentSession,
    token: NewAccessToken,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    let issued = tokens
        .access_tokens
        .create(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            token,
        )
        .await?;
    core.visible(
        Visibility::ReadModel(Follower::AccessTokens),
        Some(issued.position),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// The caller's API tokens, newest first, a page at a time.
#[utoipa::path(get, path = "/me/api-tokens", tag = "tokens", security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = TokenList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn list_api_tokens(
    State(core): State<Core>,
    State(tokens): State<Tokens>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<TokenList>, ApiError> {
    // A rotation answers before the read model shows it: the list waits instead.
    if let Some(position) = tokens.cache.last_rotation_unseen(session.account_id) {
        core.shown(Follower::AccessTokens, position).await?;
    }
    list(&core, session.account_id, false, &page).await
}

async fn list(
    core: &Core,
    account: AccountId,
    cli: bool,
    page: &PageQuery,
) -> Result<Json<TokenList>, ApiError> {
    let page = page.page()?;
    let tokens =
        projections::access_tokens::list(&core.db, &core.sealer, account, cli, &page).await?;
    Ok(Json(TokenList {
        tokens: tokens.items.into_iter().map(Into::into).collect(),
        next_cursor: next_cursor(tokens.next),
    }))
}

/// Replaces the secret; the old one keeps working for `grace_seconds`, then dies. Needs a
/// recent proof of the password, as a new token does: the new secret would outlive a stolen
/// session. Answers once the rotation is saved: the very next request with either secret, and the
/// next list of the caller's tokens, see it (they wait for it when needed).
#[utoipa::path(post, path = "/me/api-tokens/{id}/rotate", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path, description = "The token")),
    request_body(content = Option<RotateRequest>, description = "Optional: no body means no grace period"),
    responses((status = 200, body = IssuedTokenView),
        (status = 403, description = "`reauthentication_required`: the session has not proved its password recently", body = ErrorBody),
        (status = 404, description = "`token_not_found`: not a live API token of the caller", body = ErrorBody),
        (status = 409, description = "`token_expired`: an expired token cannot be rotated", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 2 MiB", body = ErrorBody),
        (status = 422, description = "`invalid_body` (not the schema) or `validation_failed` (a grace period out of bounds)", body = ErrorBody)))]
pub async fn rotate_api_token(
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<IssuedTokenView>, ApiError> {
    let id = token_id(&id)?;
    // The body is optional: none means no grace period.
    let grace = optional_json::<RotateRequest>(&body)?
        .unwrap_or_default()
        .grace_seconds;
    // A CLI token, or another account's, is not found (the command checks, from the state
    // it loads anyway).
    let issued = tokens
        .access_tokens
        .rotate(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            id,
            TokenFamily::Api,
            Duration::from_secs(grace),
        )
        .await?;
    // Answers once committed: the requests that present the token's secrets wait for the
    // read model instead (`crate::token_cache`).
    tokens.cache.rotated(
        session.account_id,
        id,
        hash_token(&issued.token),
        issued.position,
    );
    Ok(Json(issued.into()))
}

/// A token id of a path: one that is not a UUID names no token.
fn token_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| ApiError::NotFound("token_not_found", "no such token".into()))
}

/// Checks that `id` is a live token of `account` of the right family (404 otherwise, as
/// for another account's token).
async fn own_token(
    tokens: &Tokens,
    account: AccountId,
    id: Uuid,
    cli: bool,
) -> Result<(), ApiError> {
    match tokens.access_tokens.kind_of(account, id).await? {
        Some(kind) if kind.is_cli() == cli => Ok(()),
        _ => Err(ApiError::NotFound(
            "token_not_found",
            "no such token".into(),
        )),
    }
}

async fn revoke(
    core: &Core,
    tokens: &Tokens,
    ctx: &RequestContext,
    session: &CurrentSession,
    id: Uuid,
    cli: bool,
) -> Result<StatusCode, ApiError> {
    own_token(tokens, session.account_id, id, cli).await?;
    let position = tokens
        .access_tokens
        .revoke(&ctx.command(session.actor()), session.account_id, id)
        .await?;
    core.visible(Visibility::ReadModel(Follower::AccessTokens), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes an API token: refused from the very next request.
#[utoipa::path(delete, path = "/me/api-tokens/{id}", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path, description = "The token")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "`token_not_found`: not a live API token of the caller", body = ErrorBody)))]
pub async fn revoke_api_token(
    State(core): State<Core>,
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&core, &tokens, &ctx, &session, token_id(&id)?, false).await
}

/// Requests per day by status class, and the last use.
#[utoipa::path(get, path = "/me/api-tokens/{id}/usage", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path, description = "The token")),
    responses((status = 200, body = UsageView),
        (status = 404, description = "`token_not_found`: not an API token of the caller", body = ErrorBody)))]
pub async fn api_token_usage(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<UsageView>, ApiError> {
    Ok(Json(
        usage_of(&core, session.account_id, token_id(&id)?).await?,
    ))
}

/// The usage log of `token_id` of `account`.
pub async fn usage_of(
    core: &Core,
    account: AccountId,
    token_id: Uuid,
) -> Result<UsageView, ApiError> {
    // Counts first: a usage flush writes counts and last use in one transaction, and a
    // flush committed between the two reads then shows in the later one, never as counts
    // without the last use they came with.
    let days = projections::access_tokens::daily_usage(&core.db, account, token_id).await?;
    let token =
        projections::access_tokens::find_api_token(&core.db, &core.sealer, account, token_id)
            .await?
            .ok_or_else(|| ApiError::NotFound("token_not_found", "no such token".into()))?;
    Ok(UsageView {
        token_id,
        days: days
            .into_iter()
            .map(|d| DailyUsageView {
                day: d.day,
                ok: d.ok,
                client_errors: d.client_errors,
                server_errors: d.server_errors,
            })
            .collect(),
        last_used_at: token.last_used_at.map(|t| t.to_rfc3339()),
        last_ip: token.last_ip,
        last_user_agent: token.last_user_agent,
    })
}

/// Creates a CLI token (`device` or `recorder`); its secret is in this response only.
/// Needs a recent proof.
#[utoipa::path(post, path = "/me/cli-tokens", tag = "tokens", security(("session" = [])),
    request_body = CreateCliToken,
    responses((status = 201, body = IssuedTokenView, links(
            ("revoke" = (operation_id = "revoke_cli_token", parameters(("id" = "$response.body#/token_id")))),
        )),
        (status = 403, description = "`reauthentication_required`: the session has not proved its password recently", body = ErrorBody),
        (status = 409, description = "`too_many_tokens`: the account has as many live API and CLI tokens as it may (`--max-live-tokens`)", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a label or kind out of bounds", body = ErrorBody)))]
pub async fn create_cli_token(
    State(core): State<Core>,
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<CreateCliToken>,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    let kind = match body.kind.as_str() {
        "device" => TokenKind::CliDevice,
        "recorder" => TokenKind::CliRecorder,
        _ => {
            return Err(ApiError::invalid(
                "kind",
                "must be \"device\" or \"recorder\"",
            ));
        }
    };
    let token = NewAccessToken {
        kind,
        label: body.label,
        scopes: Vec::new(),
        expires_in_days: None,
    };
    issue(&core, &tokens, &ctx, &session, token).await
}

/// The caller's CLI tokens, newest first, a page at a time.
#[utoipa::path(get, path = "/me/cli-tokens", tag = "tokens", security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = TokenList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn list_cli_tokens(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<TokenList>, ApiError> {
    list(&core, session.account_id, true, &page).await
}

/// Revokes a CLI token.
#[utoipa::path(delete, path = "/me/cli-tokens/{id}", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path, description = "The token")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "`token_not_found`: not a live CLI token of the caller", body = ErrorBody)))]
pub async fn revoke_cli_token(
    State(core): State<Core>,
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&core, &tokens, &ctx, &session, token_id(&id)?, true).await
}
