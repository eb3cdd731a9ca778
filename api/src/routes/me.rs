//! The signed-in account: profile and password.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientInfo, CurrentSession, RequestContext};
use crate::openapi::{Routes, patterns};
use crate::state::{Auth, Core, Payments, Tokens};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::accounts::ChangePassword;
use commands::throttle::{Secret, guarded};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(me, delete_account))
        .routes(routes!(change_password))
}

/// The account.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// Its id.
    pub account_id: Uuid,
    /// Its e-mail address.
    pub email: String,
    /// Whether it proved it holds that address (`POST /auth/verify-email`); joining a
    /// workspace needs it.
    pub email_verified: bool,
    /// A change of address waiting for the link e-mailed to the new address (`POST
    /// /me/email/change`); the account keeps `email` until then.
    pub pending_email: Option<PendingEmailView>,
    /// Its display name.
    pub display_name: String,
    /// Its bio.
    pub bio: Option<String>,
    /// Whether `GET /profiles/{account_id}` shows it.
    pub public_profile: bool,
    /// Its avatar, if any.
    pub avatar_url: Option<String>,
    /// Whether 2FA is on.
    pub two_factor_enabled: bool,
    /// When it registered (RFC 3339).
    pub created_at: String,
}

/// A change of address not confirmed yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingEmailView {
    /// The address the confirmation link went to.
    pub email: String,
    /// When the link stops working (RFC 3339).
    pub expires_at: String,
}

/// The account as `GET /me` shows it.
pub async fn me_view(core: &Core, account_id: domain::AccountId) -> Result<MeResponse, ApiError> {
    let account = projections::accounts::find(&core.db, &core.sealer, account_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("account_not_found", "no such account".into()))?;
    Ok(MeResponse {
        account_id: account.account_id.0,
        email: account.email,
        email_verified: account.email_verified,
        // Past its link's expiry a change can no longer happen: not pending any more.
        pending_email: account
            .pending_email
            .filter(|(_, expires_at)| *expires_at > core.clock.now())
            .map(|(email, expires_at)| PendingEmailView {
                email,
                expires_at: expires_at.to_rfc3339(),
            }),
        display_name: account.display_name,
        bio: account.bio,
        public_profile: account.public_profile,
        avatar_url: account.has_avatar.then(|| "/me/avatar".to_owned()),
        two_factor_enabled: account.totp_enabled,
        created_at: account.created_at.to_rfc3339(),
    })
}

/// The signed-in account.
#[utoipa::path(get, path = "/me", tag = "account", security(("session" = [])),
    responses((status = 200, body = MeResponse)))]
pub async fn me(
    State(core): State<Core>,
    session: CurrentSession,
) -> Result<Json<MeResponse>, ApiError> {
    Ok(Json(me_view(&core, session.account_id).await?))
}

/// `DELETE /me`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    /// The account's password.
    pub password: String,
    /// Must be exactly `DELETE`.
    #[schema(schema_with = confirm_delete)]
    pub confirm: String,
    /// Delete even with a paid subscription running (it ends at once, unrefunded).
    #[serde(default)]
    pub acknowledge_subscription: bool,
}

fn confirm_delete() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["DELETE"]))
        .description(Some("Must be exactly `DELETE`."))
        .build()
}

/// Deletes the account: every session ends, the personal data becomes unreadable, the
/// address is free to register again. Needs a recent proof (`POST /auth/reauthenticate`).
#[utoipa::path(delete, path = "/me", tag = "account", security(("session" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "`reauthentication_required` or `invalid_current_password`", body = ErrorBody),
        (status = 409, description = "`active_subscription`: a paid subscription is active; `sole_workspace_owner`: the account is the only owner of a workspace with other members (transfer ownership first)", body = ErrorBody),
        (status = 422, description = "`confirmation_required`: `confirm` is not `DELETE`", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong passwords; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn delete_account(
    State(core): State<Core>,
    State(auth): State<Auth>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    client: ClientInfo,
    session: CurrentSession,
    ApiJson(body): ApiJson<DeleteAccountRequest>,
) -> Result<StatusCode, ApiError> {
    if body.confirm != "DELETE" {
        return Err(ApiError::Unprocessable(
            "confirmation_required",
            "confirm must be exactly \"DELETE\"".into(),
        ));
    }
    if !body.acknowledge_subscription
        && payments
            .billing
            .subscription(session.account_id)
            .await?
            .is_active()
    {
        return Err(ApiError::Conflict(
            "active_subscription",
            "a paid subscription is active; cancel it, or send acknowledge_subscription: true"
                .into(),
        ));
    }
    // A workspace always has an owner: its sole owner hands it on first. (Should a
    // member join between this check and the deletion, the workspace names a successor.)
    let owned =
        projections::workspaces::solely_owned_with_others(&core.db, session.account_id).await?;
    if let Some(workspace) = owned.first() {
        return Err(ApiError::Conflict(
            "sole_workspace_owner",
            format!(
                "the account is the only owner of workspace {workspace}, which has other \
                 members; transfer its ownership first"
            ),
        ));
    }
    let key = format!("account:{}", session.account_id);
    let position = guarded(
        &[(&*auth.throttle, Secret::Password)],
        &key,
        client.ip,
        auth.accounts.delete_account(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
            &body.password,
        ),
    )
    .await??;
    core.visible(Visibility::AccountDeletion, position).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /me/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordRequest {
    /// The password now.
    pub current_password: String,
    /// The password from now on; same policy as at registration, and not the current one.
    #[schema(value_type = patterns::schemas::NewPassword)]
    pub new_password: String,
    /// Also sign out every other session.
    #[serde(default)]
    pub sign_out_other_sessions: bool,
    /// Also revoke every API and CLI token: refused from the very next request.
    #[serde(default)]
    pub revoke_tokens: bool,
}

/// What the change did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangePasswordResponse {
    /// How many other sessions were signed out.
    pub sessions_revoked: usize,
    /// How many API and CLI tokens were revoked (with `revoke_tokens`).
    pub tokens_revoked: usize,
}

/// Changes the password; optionally signs out the other sessions and revokes every API
/// and CLI token, in the same change. Needs a recent proof.
#[utoipa::path(put, path = "/me/password", tag = "account", security(("session" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, body = ChangePasswordResponse),
        (status = 403, description = "`invalid_current_password`, or `reauthentication_required` when the session's proof is stale", body = ErrorBody),
        (status = 422, description = "`weak_password`: the new password does not meet the policy; `validation_failed`: it is the current one", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many wrong current passwords; see `Retry-After`", body = ErrorBody),
    ))]
pub async fn change_password(
    State(core): State<Core>,
    State(auth): State<Auth>,
    State(tokens): State<Tokens>,
    ctx: RequestContext,
    client: ClientInfo,
    session: CurrentSession,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> Result<Json<ChangePasswordResponse>, ApiError> {
    // Guessing the current password through this route is throttled like sign-in.
    let key = format!("account:{}", session.account_id);
    let command = ctx.command(session.actor());
    let changed = guarded(
        &[(&*auth.throttle, Secret::Password)],
        &key,
        client.ip,
        auth.accounts.change_password(
            &command,
            session.account_id,
            session.session_id,
            ChangePassword {
                current_password: body.current_password,
                new_password: body.new_password,
                sign_out_other_sessions: body.sign_out_other_sessions,
                revoke_tokens: body.revoke_tokens,
            },
        ),
    )
    .await??;
    core.visible(Visibility::SessionsAndAccount, changed.position)
        .await?;
    let tokens_revoked = if body.revoke_tokens {
        revoke_dropped_tokens(
            &core,
            &tokens,
            &command,
            session.account_id,
            changed.position,
        )
        .await?
    } else {
        0
    };
    Ok(Json(ChangePasswordResponse {
        sessions_revoked: changed.sessions_revoked,
        tokens_revoked,
    }))
}

/// After a password change that revoked every token (committed at `position`): waits
/// until the token read model has dropped their secrets (the next request with one is
/// refused), then records the revocation in each token's stream; answers how many.
pub(super) async fn revoke_dropped_tokens(
    core: &Core,
    tokens: &Tokens,
    command: &commands::CommandContext,
    account: domain::AccountId,
    position: Option<store::GlobalPosition>,
) -> Result<usize, ApiError> {
    core.visible(Visibility::ReadModel(Follower::AccessTokens), position)
        .await?;
    let dropped = projections::access_tokens::ids_without_secrets(&core.db, account).await?;
    let mut last = None;
    for token_id in &dropped {
        match tokens
            .access_tokens
            .revoke(command, account, *token_id)
            .await
        {
            Ok(position) => last = position.or(last),
            // Revoked meanwhile by another request.
            Err(commands::CommandError::Rejected {
                code: "token_not_found",
                ..
            }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    core.visible(Visibility::ReadModel(Follower::AccessTokens), last)
        .await?;
    Ok(dropped.len())
}
