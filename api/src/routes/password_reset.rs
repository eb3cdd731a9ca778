//! A forgotten password: a reset link e-mailed to the account's address, and a new password
//! set through it. Both need no session. Asking for a link answers the same whether or not
//! an account holds the address, and after the same work: the request is carried out in
//! the background.

use super::auth::factor;
use super::me::{ChangePasswordResponse, revoke_dropped_tokens};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientInfo, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::{Auth, Core, Tokens};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::CommandError;
use commands::accounts::ResetPassword;
use commands::throttle::{Secret, guarded};
use domain::email::EmailAddress;
use projections::Visibility;
use serde::Deserialize;
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
}

/// `POST /auth/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordResetRequest {
    /// The account's e-mail address.
    #[schema(schema_with = patterns::schemas::email)]
    pub email: String,
}

/// E-mails a link setting a new password to the address, if an account holds it. The
/// answer is the same either way (and when a link was sent in the last minute, in which
/// case no other is): nobody learns here which addresses have accounts. The link works
/// once, within the hour; a newer link replaces it. Requests are limited per client IP.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "If an account holds the address, a link is on its way"),
        (status = 429, description = "`too_many_password_resets`: too many requests from this client IP, whatever the addresses; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn request_reset(
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    ApiJson(body): ApiJson<PasswordResetRequest>,
) -> Result<StatusCode, ApiError> {
    let email = EmailAddress::parse(&body.email).map_err(|e| ApiError::invalid("email", e))?;
    // Each request may send an e-mail: one client cannot send them to address after address.
    if let Err(wait) = auth.password_resets.check(client.ip).await? {
        return Err(ApiError::RateLimited(
            "too_many_password_resets",
            "too many password reset requests from this client".into(),
            wait,
        ));
    }
    let (accounts, command) = (auth.accounts.clone(), ctx.command(Actor::Anonymous));
    tokio::spawn(async move {
        match accounts.request_password_reset(&command, &email).await {
            Ok(()) => {}
            Err(CommandError::TooSoon { .. }) => {
                tracing::debug!("a password reset link was sent moments ago; none sent");
            }
            Err(error) => tracing::warn!(%error, "could not send a password reset link"),
        }
    });
    Ok(StatusCode::ACCEPTED)
}

/// `POST /auth/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmPasswordResetRequest {
    /// The token of the link in the e-mail (`pwr_…`).
    #[schema(schema_with = patterns::schemas::password_reset_token)]
    pub token: String,
    /// The password from now on; same policy as at registration.
    #[schema(value_type = patterns::schemas::NewPassword)]
    pub new_password: String,
    /// With 2FA on: the authenticator app's 6-digit code.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// With 2FA on, instead of a code: one of the recovery codes (used up).
    #[serde(default)]
    pub recovery_code: Option<String>,
    /// Also revoke every API and CLI token: refused from the very next request.
    #[serde(default)]
    pub revoke_tokens: bool,
}

/// Sets a new password through the link e-mailed for a forgotten one. Every session of
/// the account ends (sign in again with the new password); with `revoke_tokens`, every
/// API and CLI token too. With 2FA on, a code or a recovery code is needed as well. The
/// link works once, and proves the account holds its address (it is verified if it was
/// not).
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth",
    request_body = ConfirmPasswordResetRequest,
    responses(
        (status = 200, description = "The password is set; `sessions_revoked` counts every session ended", body = ChangePasswordResponse),
        (status = 401, description = "2FA on and no code (`totp_required`); a wrong or reused code (`invalid_second_factor`)", body = ErrorBody),
        (status = 404, description = "`password_reset_link_invalid`: not a link this service sent, one used already, or one a newer link or a password change replaced", body = ErrorBody),
        (status = 410, description = "`password_reset_link_expired`: ask for a new one with `POST /auth/password-reset`", body = ErrorBody),
        (status = 422, description = "`weak_password`: the password does not meet the policy; `validation_failed`: both `totp_code` and `recovery_code` sent", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong codes; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn confirm_reset(
    State(core): State<Core>,
    State(auth): State<Auth>,
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    client: ClientInfo,
    ApiJson(body): ApiJson<ConfirmPasswordResetRequest>,
) -> Result<Json<ChangePasswordResponse>, ApiError> {
    let second_factor = factor(body.totp_code, body.recovery_code)?;
    let sends_a_code = second_factor.is_some();
    let revoke_tokens = body.revoke_tokens;
    let command = ctx.command(Actor::Anonymous);
    let reset = auth.accounts.reset_password(
        &command,
        ResetPassword {
            token: body.token.clone(),
            new_password: body.new_password,
            second_factor,
            revoke_tokens,
        },
    );
    // Codes guessed through a reset count against the address's budget of wrong codes,
    // the one sign-ins with codes spend.
    let address = if sends_a_code {
        auth.accounts.password_reset_address(&body.token).await?
    } else {
        None
    };
    let (account_id, changed) = match address {
        Some(email) => {
            let key = auth.email_index.digest(&email);
            guarded(
                &[(&*auth.code_throttle, Secret::Code)],
                &key,
                client.ip,
                reset,
            )
            .await??
        }
        None => reset.await?,
    };
    core.visible(Visibility::SessionsAndAccount, changed.position)
        .await?;
    let tokens_revoked = if revoke_tokens {
        revoke_dropped_tokens(&core, &tokens, &command, account_id, changed.position).await?
    } else {
        0
    };
    Ok(Json(ChangePasswordResponse {
        sessions_revoked: changed.sessions_revoked,
        tokens_revoked,
    }))
}
