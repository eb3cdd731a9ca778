//! The API tab (public API tokens) and the Integrations tab's CLI tokens, managed by a
//! signed-in session.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, CurrentSession, RequestContext};
use crate::routes::visible;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use commands::access_tokens::{IssuedAccessToken, NewAccessToken};
use domain::AccountId;
use domain::access_token::{Scope, TokenKind};
use projections::access_tokens::TokenSummary;
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/me/api-tokens",
            post(create_api_token).get(list_api_tokens),
        )
        .route("/me/api-tokens/{id}", delete(revoke_api_token))
        .route("/me/api-tokens/{id}/rotate", post(rotate_api_token))
        .route("/me/api-tokens/{id}/usage", get(api_token_usage))
        .route(
            "/me/cli-tokens",
            post(create_cli_token).get(list_cli_tokens),
        )
        .route("/me/cli-tokens/{id}", delete(revoke_cli_token))
}

/// `POST /me/api-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// 1-64 characters.
    pub label: String,
    /// Any of `account:read`, `credits:read`, `generations:write`, `usage:read`.
    pub scopes: Vec<String>,
    /// 1-3650; never expires when absent.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// `POST /me/cli-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCliToken {
    /// 1-64 characters.
    pub label: String,
    /// `device` or `recorder`.
    pub kind: String,
}

/// `POST /me/api-tokens/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps working: 0 (default) to 86400.
    #[serde(default)]
    pub grace_seconds: u64,
}

/// A token just issued: the secret appears here and nowhere else, ever.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// Its id.
    pub token_id: Uuid,
    /// The secret.
    pub token: String,
    /// How lists show it.
    pub hint: String,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
}

impl From<IssuedAccessToken> for IssuedTokenView {
    fn from(issued: IssuedAccessToken) -> Self {
        Self {
            token_id: issued.token_id,
            token: issued.token,
            hint: issued.hint,
            expires_at: issued.expires_at.map(|e| e.to_rfc3339()),
        }
    }
}

/// A token in a list (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub token_id: Uuid,
    /// `api`, `cli_device` or `cli_recorder`.
    pub kind: &'static str,
    /// The owner's name for it.
    pub label: String,
    /// Its scopes (API tokens).
    pub scopes: Vec<String>,
    /// Prefix and last four characters.
    pub hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// RFC 3339: the last request, as of the last usage flush (a few seconds).
    pub last_used_at: Option<String>,
}

impl From<TokenSummary> for TokenView {
    fn from(t: TokenSummary) -> Self {
        Self {
            token_id: t.token_id,
            kind: t.kind.as_str(),
            label: t.label,
            scopes: t.scopes,
            hint: t.hint,
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|e| e.to_rfc3339()),
            last_used_at: t.last_used_at.map(|e| e.to_rfc3339()),
        }
    }
}

/// A list of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenView>,
}

/// Requests of one day by status class.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsageView {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// 2xx answers.
    pub ok: i64,
    /// 4xx answers.
    pub client_errors: i64,
    /// 5xx answers.
    pub server_errors: i64,
}

/// A token's usage log.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// The token.
    pub token_id: Uuid,
    /// Oldest first.
    pub days: Vec<DailyUsageView>,
    /// RFC 3339.
    pub last_used_at: Option<String>,
    /// The last request's client IP.
    pub last_ip: Option<String>,
    /// The last request's user agent.
    pub last_user_agent: Option<String>,
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

/// Creates an API token; its secret is in this response only.
#[utoipa::path(post, path = "/me/api-tokens", tag = "tokens", security(("session" = [])),
    request_body = CreateApiToken,
    responses((status = 201, body = IssuedTokenView), (status = 422, body = ErrorBody)))]
pub async fn create_api_token(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<CreateApiToken>,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    let scopes = parse_scopes(&body.scopes)?;
    let token = NewAccessToken {
        kind: TokenKind::Api,
        label: body.label,
        scopes,
        expires_in_days: body.expires_in_days,
    };
    issue(&state, &ctx, &session, token).await
}

/// Creates `token` for the caller; answers once the token works.
async fn issue(
    state: &AppState,
    ctx: &RequestContext,
    session: &CurrentSession,
    token: NewAccessToken,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    let issued = state
        .access_tokens
        .create(&ctx.command(session.actor()), session.account_id, token)
        .await?;
    visible(
        state,
        Visibility::ReadModel(Follower::AccessTokens),
        Some(issued.position),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/me/api-tokens", tag = "tokens", security(("session" = [])),
    responses((status = 200, body = TokenList)))]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    session: CurrentSession,
) -> Result<Json<TokenList>, ApiError> {
    list(&state, session.account_id, false).await
}

async fn list(
    state: &AppState,
    account: AccountId,
    cli: bool,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = projections::access_tokens::list(&state.db, &state.sealer, account, cli).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Replaces the secret; the old one keeps working for `grace_seconds`, then dies.
#[utoipa::path(post, path = "/me/api-tokens/{id}/rotate", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path)), request_body = RotateRequest,
    responses((status = 200, body = IssuedTokenView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_api_token(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    Path(id): Path<Uuid>,
    body: axum::body::Bytes,
) -> Result<Json<IssuedTokenView>, ApiError> {
    // The body is optional: none means no grace period.
    let grace = if body.iter().all(u8::is_ascii_whitespace) {
        0
    } else {
        serde_json::from_slice::<RotateRequest>(&body)
            .map_err(|e| ApiError::Unprocessable("invalid_body", e.to_string()))?
            .grace_seconds
    };
    own_token(&state, session.account_id, id, false).await?;
    let issued = state
        .access_tokens
        .rotate(
            &ctx.command(session.actor()),
            session.account_id,
            id,
            Duration::from_secs(grace),
        )
        .await?;
    visible(
        &state,
        Visibility::ReadModel(Follower::AccessTokens),
        Some(issued.position),
    )
    .await?;
    Ok(Json(issued.into()))
}

/// Checks that `id` is a live token of `account` of the right family (404 otherwise, as
/// for another account's token).
async fn own_token(
    state: &AppState,
    account: AccountId,
    id: Uuid,
    cli: bool,
) -> Result<(), ApiError> {
    match state.access_tokens.kind_of(account, id).await? {
        Some(kind) if kind.is_cli() == cli => Ok(()),
        _ => Err(ApiError::NotFound(
            "token_not_found",
            "no such token".into(),
        )),
    }
}

async fn revoke(
    state: &AppState,
    ctx: &RequestContext,
    session: &CurrentSession,
    id: Uuid,
    cli: bool,
) -> Result<StatusCode, ApiError> {
    own_token(state, session.account_id, id, cli).await?;
    let position = state
        .access_tokens
        .revoke(&ctx.command(session.actor()), session.account_id, id)
        .await?;
    visible(
        state,
        Visibility::ReadModel(Follower::AccessTokens),
        position,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes an API token: refused from the very next request.
#[utoipa::path(delete, path = "/me/api-tokens/{id}", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_token(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &ctx, &session, id, false).await
}

/// Requests per day by status class, and the last use.
#[utoipa::path(get, path = "/me/api-tokens/{id}/usage", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path)), responses((status = 200, body = UsageView), (status = 404, body = ErrorBody)))]
pub async fn api_token_usage(
    State(state): State<AppState>,
    session: CurrentSession,
    Path(id): Path<Uuid>,
) -> Result<Json<UsageView>, ApiError> {
    Ok(Json(usage_of(&state, session.account_id, id).await?))
}

/// The usage log of `token_id` of `account`.
pub async fn usage_of(
    state: &AppState,
    account: AccountId,
    token_id: Uuid,
) -> Result<UsageView, ApiError> {
    let token = projections::access_tokens::list(&state.db, &state.sealer, account, false)
        .await?
        .into_iter()
        .find(|t| t.token_id == token_id)
        .ok_or_else(|| ApiError::NotFound("token_not_found", "no such token".into()))?;
    let days = projections::access_tokens::daily_usage(&state.db, account, token_id).await?;
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
#[utoipa::path(post, path = "/me/cli-tokens", tag = "tokens", security(("session" = [])),
    request_body = CreateCliToken,
    responses((status = 201, body = IssuedTokenView), (status = 422, body = ErrorBody)))]
pub async fn create_cli_token(
    State(state): State<AppState>,
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
    issue(&state, &ctx, &session, token).await
}

/// The caller's CLI tokens.
#[utoipa::path(get, path = "/me/cli-tokens", tag = "tokens", security(("session" = [])),
    responses((status = 200, body = TokenList)))]
pub async fn list_cli_tokens(
    State(state): State<AppState>,
    session: CurrentSession,
) -> Result<Json<TokenList>, ApiError> {
    list(&state, session.account_id, true).await
}

/// Revokes a CLI token.
#[utoipa::path(delete, path = "/me/cli-tokens/{id}", tag = "tokens", security(("session" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke_cli_token(
    State(state): State<AppState>,
    ctx: RequestContext,
    session: CurrentSession,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &ctx, &session, id, true).await
}
