//! Registration, sign-in and sign-out.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientInfo, CurrentSession, RequestContext};
use crate::middleware::NotReplayable;
use crate::openapi::{Routes, patterns};
use crate::state::{Auth, Core};
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use commands::accounts::{FactorInput, RegisterAccount, SignIn};
use commands::throttle::{Secret, guarded};
use domain::email::EmailAddress;
use domain::session::RevocationReason;
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
}

/// `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Unique, case-insensitively.
    #[schema(schema_with = patterns::schemas::email)]
    pub email: String,
    /// 8 to 128 characters with a number and a symbol; not a common password.
    #[schema(value_type = patterns::schemas::NewPassword)]
    pub password: String,
    /// 1 to 64 characters.
    #[schema(schema_with = patterns::schemas::display_name)]
    pub display_name: String,
}

/// The new account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    /// Its id.
    pub account_id: Uuid,
}

/// Creates an account. Each client IP may register `--registration-rate-limit` times an
/// hour (every attempt counts, on every node).
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = RegisterResponse),
        (status = 409, description = "`email_taken`: the e-mail address is registered (case-insensitively)", body = ErrorBody),
        (status = 422, description = "`validation_failed` (the e-mail address or display name) or `weak_password`", body = ErrorBody),
        (status = 429, description = "`too_many_registrations`: too many registrations from this address; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn register(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), ApiError> {
    // Before any work: a registration costs an argon2 hash, appends and a signup bonus.
    if let Err(wait) = auth.registrations.check(client.ip).await? {
        return Err(ApiError::RateLimited(
            "too_many_registrations",
            "too many registrations from this address".into(),
            wait,
        ));
    }
    let (account_id, position) = auth
        .accounts
        .register(
            &ctx.command(Actor::Anonymous),
            RegisterAccount {
                email: body.email,
                password: body.password,
                display_name: body.display_name,
            },
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), Some(position))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            account_id: account_id.0,
        }),
    ))
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The account's e-mail address.
    pub email: String,
    /// Its password.
    pub password: String,
    /// With 2FA on: the authenticator app's 6-digit code.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// With 2FA on, instead of a code: one of the recovery codes (used up).
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// The second factor of a request body: a code or a recovery code, not both.
pub fn factor(
    totp_code: Option<String>,
    recovery_code: Option<String>,
) -> Result<Option<FactorInput>, ApiError> {
    match (totp_code, recovery_code) {
        (None, None) => Ok(None),
        (Some(code), None) => Ok(Some(FactorInput::Totp(code))),
        (None, Some(code)) => Ok(Some(FactorInput::RecoveryCode(code))),
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "totp_code",
            "send either totp_code or recovery_code, not both",
        )),
    }
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// The session's id, as listed in `GET /me/sessions`.
    pub session_id: Uuid,
    /// Send as `Authorization: Bearer <token>`. Shown once.
    pub token: String,
    /// Absolute expiry (RFC 3339); the session also ends after the idle timeout.
    pub expires_at: String,
}

/// The throttle's key for an address: keyed hash, never the address itself.
fn throttle_key(auth: &Auth, email: &str) -> String {
    match EmailAddress::parse(email) {
        Ok(email) => auth.email_index.digest(&email),
        Err(_) => auth.email_index.digest_text(email),
    }
}

/// Starts a session.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 201, description = "Signed in", body = LoginResponse),
        (status = 401, description = "Wrong e-mail or password (`invalid_credentials`); 2FA on and no code \
            (`totp_required`); wrong or reused code (`invalid_second_factor`)", body = ErrorBody),
        (status = 422, description = "`validation_failed`: both `totp_code` and `recovery_code` sent", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failed attempts; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn login(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<(StatusCode, Extension<NotReplayable>, Json<LoginResponse>), ApiError> {
    let key = throttle_key(&auth, &body.email);
    let second_factor = factor(body.totp_code, body.recovery_code)?;
    let mut throttles = vec![(&*auth.throttle, Secret::Password)];
    if second_factor.is_some() {
        throttles.push((&*auth.code_throttle, Secret::Code));
    }
    let signed_in = guarded(
        &throttles,
        &key,
        client.ip,
        auth.accounts.sign_in(
            &ctx.command(Actor::Anonymous),
            SignIn {
                email: body.email,
                password: body.password,
                second_factor,
                origin: client.origin(),
            },
        ),
    )
    .await??;
    core.visible(
        Visibility::ReadModel(Follower::Sessions),
        Some(signed_in.position),
    )
    .await?;
    // A new session's token is never stored for replay: a retried sign-in signs in again.
    Ok((
        StatusCode::CREATED,
        Extension(NotReplayable),
        Json(LoginResponse {
            session_id: signed_in.session_id.0,
            token: signed_in.token,
            expires_at: signed_in.expires_at.to_rfc3339(),
        }),
    ))
}

/// Ends the calling session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("session" = [])),
    responses(
        (status = 204, description = "Signed out; the token no longer works"),
    ))]
pub async fn logout(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<StatusCode, ApiError> {
    let changed = auth
        .accounts
        .revoke_session(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            RevocationReason::Logout,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Sessions), changed.position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
