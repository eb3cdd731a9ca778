//! Two-factor authentication and re-authentication.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientInfo, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::routes::auth::factor;
use crate::state::{Auth, Core};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::CommandError;
use commands::accounts::FactorInput;
use commands::throttle::{Secret, guarded};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(enroll, disable))
        .routes(routes!(confirm))
        .routes(routes!(regenerate))
        .routes(routes!(reauthenticate))
}

/// What an authenticator app needs.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrollment {
    /// The shared secret, base32 (to type in).
    pub secret: String,
    /// `otpauth://totp/…` (to open).
    pub otpauth_uri: String,
    /// The same as a PNG QR code, base64 (to scan).
    pub qr_png_base64: String,
}

/// Starts 2FA enrolment; nothing is enforced until `POST /me/totp/confirm`. Needs a recent
/// proof (`POST /auth/reauthenticate`, or the sign-in itself).
#[utoipa::path(post, path = "/me/totp", tag = "security", security(("session" = [])),
    responses((status = 200, body = TotpEnrollment),
        (status = 403, description = "`reauthentication_required`", body = ErrorBody),
        (status = 409, description = "`totp_already_enabled`", body = ErrorBody)))]
pub async fn enroll(
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Json<TotpEnrollment>, ApiError> {
    let enrollment = auth
        .accounts
        .start_totp(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
        )
        .await?;
    Ok(Json(TotpEnrollment {
        secret: enrollment.secret,
        otpauth_uri: enrollment.otpauth_uri,
        qr_png_base64: enrollment.qr_png_base64,
    }))
}

/// `POST /me/totp/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmRequest {
    /// A 6-digit code of the new secret.
    pub code: String,
}

/// Recovery codes, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesView {
    /// Ten single-use codes; each signs in once instead of a TOTP code.
    pub recovery_codes: Vec<String>,
}

fn code_key(session: &CurrentSession) -> String {
    format!("account:{}", session.account_id)
}

/// Runs `f`, which checks the caller's `secrets`, under their throttles; wrong codes in a
/// session are 403, not 401.
async fn throttled<T>(
    auth: &Auth,
    session: &CurrentSession,
    client: &ClientInfo,
    secrets: &[Secret],
    f: impl Future<Output = Result<T, CommandError>>,
) -> Result<T, ApiError> {
    let throttles: Vec<_> = secrets
        .iter()
        .map(|secret| match secret {
            Secret::Password => (&*auth.throttle, *secret),
            Secret::Code => (&*auth.code_throttle, *secret),
        })
        .collect();
    match guarded(&throttles, &code_key(session), client.ip, f).await? {
        Err(CommandError::InvalidSecondFactor) => Err(ApiError::Forbidden(
            "invalid_second_factor",
            "the code is wrong, expired or already used".into(),
        )),
        Err(CommandError::SecondFactorRequired) => Err(ApiError::Forbidden(
            "totp_required",
            "two-factor authentication is on: send a code".into(),
        )),
        other => other.map_err(Into::into),
    }
}

/// Turns 2FA on with a code of the new secret; returns 10 recovery codes, once. Needs a
/// recent proof.
#[utoipa::path(post, path = "/me/totp/confirm", tag = "security", security(("session" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, body = RecoveryCodesView),
        (status = 403, description = "`reauthentication_required`, or `invalid_second_factor`: a wrong code", body = ErrorBody),
        (status = 409, description = "`no_pending_enrollment` or `totp_already_enabled`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong codes; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn confirm(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    session: CurrentSession,
    ApiJson(body): ApiJson<ConfirmRequest>,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    let codes = throttled(
        &auth,
        &session,
        &client,
        &[Secret::Code],
        auth.accounts.confirm_totp(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            &body.code,
        ),
    )
    .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), codes.position)
        .await?;
    Ok(Json(RecoveryCodesView {
        recovery_codes: codes.codes,
    }))
}

/// Replaces the recovery codes; the old ones stop working. Needs a recent proof.
#[utoipa::path(post, path = "/me/totp/recovery-codes", tag = "security", security(("session" = [])),
    responses(
        (status = 200, body = RecoveryCodesView),
        (status = 403, description = "`reauthentication_required`", body = ErrorBody),
        (status = 409, description = "`totp_not_enabled`: 2FA is off", body = ErrorBody),
    ))]
pub async fn regenerate(
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Json<RecoveryCodesView>, ApiError> {
    let codes = auth
        .accounts
        .regenerate_recovery_codes(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
        )
        .await?;
    Ok(Json(RecoveryCodesView {
        recovery_codes: codes.codes,
    }))
}

/// `DELETE /me/totp`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DisableRequest {
    /// The account's password.
    pub password: String,
    /// A 6-digit code (or a recovery code).
    pub code: String,
}

/// Turns 2FA off. Needs the password, a code and a recent proof.
#[utoipa::path(delete, path = "/me/totp", tag = "security", security(("session" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Off"),
        (status = 403, description = "`reauthentication_required`, `invalid_current_password` or `invalid_second_factor`", body = ErrorBody),
        (status = 409, description = "`totp_not_enabled`: 2FA is off", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong codes; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn disable(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    session: CurrentSession,
    ApiJson(body): ApiJson<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    let code = body.code.trim().to_owned();
    let factor = if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
        FactorInput::Totp(code)
    } else {
        FactorInput::RecoveryCode(code)
    };
    let position = throttled(
        &auth,
        &session,
        &client,
        &[Secret::Password, Secret::Code],
        auth.accounts.disable_totp(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            &body.password,
            factor,
        ),
    )
    .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/reauthenticate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReauthenticateRequest {
    /// The account's password.
    pub password: String,
    /// With 2FA on: a 6-digit code.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// With 2FA on, instead: a recovery code.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// Until when sensitive changes are allowed.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reauthenticated {
    /// RFC 3339.
    pub valid_until: String,
}

/// Proves the password (and code) again, for sensitive changes in the next minutes.
#[utoipa::path(post, path = "/auth/reauthenticate", tag = "security", security(("session" = [])),
    request_body = ReauthenticateRequest,
    responses(
        (status = 200, body = Reauthenticated),
        (status = 403, description = "`invalid_current_password`, `totp_required` or `invalid_second_factor`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: both `totp_code` and `recovery_code` sent", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords or codes; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn reauthenticate(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    session: CurrentSession,
    ApiJson(body): ApiJson<ReauthenticateRequest>,
) -> Result<Json<Reauthenticated>, ApiError> {
    let second_factor = factor(body.totp_code, body.recovery_code)?;
    throttled(
        &auth,
        &session,
        &client,
        &[Secret::Password, Secret::Code],
        auth.accounts.reauthenticate(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            &body.password,
            second_factor,
        ),
    )
    .await?;
    let valid_until = core
        .clock
        .now()
        .plus(core.http.sessions.reauthentication_window);
    Ok(Json(Reauthenticated {
        valid_until: valid_until.to_rfc3339(),
    }))
}
