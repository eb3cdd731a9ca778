//! Changing the account's address: asked for from a session (with the password), confirmed
//! through the link e-mailed to the new address, or withdrawn. The account keeps its
//! address until the link is opened; the old address is told once it has moved.

use super::me::PendingEmailView;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientInfo, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::{Auth, Core};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::accounts::ChangeEmail;
use commands::throttle::{Secret, guarded};
use projections::{Follower, Visibility};
use serde::Deserialize;
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(request_change, cancel_change))
        .routes(routes!(confirm_change))
}

/// `POST /me/email/change`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeEmailRequest {
    /// The address to move to.
    #[schema(schema_with = patterns::schemas::email)]
    pub new_email: String,
    /// The account's password.
    pub password: String,
}

/// E-mails a link to `new_email`; opening it (`POST /auth/email-change/confirm`) moves
/// the account there, and the old address is told. Until then the account keeps its
/// address; a newer request replaces the link. Needs the password and a recent proof
/// (`POST /auth/reauthenticate`); at most one request a minute.
#[utoipa::path(post, path = "/me/email/change", tag = "account", security(("session" = [])),
    request_body = ChangeEmailRequest,
    responses(
        (status = 202, description = "The link is on its way to the new address", body = PendingEmailView),
        (status = 403, description = "`invalid_current_password`, or `reauthentication_required` when the session's proof is stale", body = ErrorBody),
        (status = 409, description = "`email_taken`: another account holds the address", body = ErrorBody),
        (status = 422, description = "`validation_failed`: not an address; `email_unchanged`: the account's address already", body = ErrorBody),
        (status = 429, description = "`email_change_requested_recently`: a link was sent less than a minute ago; `too_many_attempts`: too many wrong passwords; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn request_change(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    client: ClientInfo,
    session: CurrentSession,
    ApiJson(body): ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<PendingEmailView>), ApiError> {
    // Guessing the password through this route is throttled like sign-in.
    let key = format!("account:{}", session.account_id);
    let sent = guarded(
        &[(&*auth.throttle, Secret::Password)],
        &key,
        client.ip,
        auth.accounts.request_email_change(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            ChangeEmail {
                new_email: body.new_email,
                password: body.password,
            },
        ),
    )
    .await??;
    // `GET /me` shows the pending change.
    core.visible(Visibility::ReadModel(Follower::Accounts), sent.position)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(PendingEmailView {
            email: sent.new_email.as_str().to_owned(),
            expires_at: sent.expires_at.to_rfc3339(),
        }),
    ))
}

/// Withdraws the pending change of address: its link stops working. Nothing pending is
/// no error.
#[utoipa::path(delete, path = "/me/email/change", tag = "account", security(("session" = [])),
    responses((status = 204, description = "No change is pending")))]
pub async fn cancel_change(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<StatusCode, ApiError> {
    let position = auth
        .accounts
        .cancel_email_change(&ctx.command(session.actor()), session.account_id)
        .await?;
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/email-change/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfirmEmailChangeRequest {
    /// The token of the link e-mailed to the new address (`emc_…`).
    #[schema(schema_with = patterns::schemas::email_change_token)]
    pub token: String,
}

/// Moves the account to the address the link was e-mailed to: signing in, mail and
/// invitations use it from now on, it counts as verified, and the old address is free and
/// told of the change. Needs no session (the link may be opened on another device);
/// opening the link again changes nothing.
#[utoipa::path(post, path = "/auth/email-change/confirm", tag = "auth",
    request_body = ConfirmEmailChangeRequest,
    responses(
        (status = 204, description = "The account uses the new address"),
        (status = 404, description = "`email_change_link_invalid`: not a link this service sent, one a newer request replaced, or one withdrawn", body = ErrorBody),
        (status = 409, description = "`email_taken`: another account took the address meanwhile", body = ErrorBody),
        (status = 410, description = "`email_change_link_expired`: ask for the change again", body = ErrorBody),
    ))]
pub async fn confirm_change(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    ApiJson(body): ApiJson<ConfirmEmailChangeRequest>,
) -> Result<StatusCode, ApiError> {
    let (_, position) = auth
        .accounts
        .confirm_email_change(&ctx.command(Actor::Anonymous), &body.token)
        .await?;
    // `GET /me`, invitations and mail read the address from the accounts read model.
    core.visible(Visibility::ReadModel(Follower::Accounts), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
