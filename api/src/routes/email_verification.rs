//! Verifying the account's e-mail address: the link e-mailed at registration (and again
//! on request) is opened by the settings app, which posts its token here. Joining a
//! workspace through an invitation needs a verified address.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::{Auth, Core};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(verify_email))
        .routes(routes!(request_verification))
}

/// `POST /auth/verify-email`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyEmailRequest {
    /// The token of the link in the e-mail (`ver_…`).
    #[schema(schema_with = patterns::schemas::verification_token)]
    pub token: String,
}

/// Proves the account holds its address: the token of the latest link e-mailed to it,
/// before it expires. Needs no session (the link may be opened on another device);
/// opening a link again once verified changes nothing.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth",
    request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 404, description = "`verification_link_invalid`: not a link this service sent, or one a newer link replaced", body = ErrorBody),
        (status = 410, description = "`verification_link_expired`: ask for a new one with `POST /me/email/verification`", body = ErrorBody),
    ))]
pub async fn verify_email(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> Result<StatusCode, ApiError> {
    let (_, position) = auth
        .accounts
        .verify_email(&ctx.command(Actor::Anonymous), &body.token)
        .await?;
    // `GET /me` and an invitation's acceptance read it from the accounts read model.
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A verification link sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationSentView {
    /// When the new link stops working (RFC 3339); it replaces any earlier link.
    pub expires_at: String,
}

/// E-mails a new verification link to the account's address; earlier links stop
/// working. At most one a minute.
#[utoipa::path(post, path = "/me/email/verification", tag = "account", security(("session" = [])),
    responses(
        (status = 202, description = "A new link is on its way", body = VerificationSentView),
        (status = 409, description = "`email_already_verified`", body = ErrorBody),
        (status = 429, description = "`verification_requested_recently`: a link was sent less than a minute ago; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn request_verification(
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<(StatusCode, Json<VerificationSentView>), ApiError> {
    let expires_at = auth
        .accounts
        .request_email_verification(&ctx.command(session.actor()), session.account_id)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(VerificationSentView {
            expires_at: expires_at.to_rfc3339(),
        }),
    ))
}
