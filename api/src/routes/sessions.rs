//! The account's sessions: list them, revoke one, revoke all others.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::pages::{PageQuery, next_cursor};
use crate::state::{Auth, Core};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::SessionId;
use domain::session::RevocationReason;
use projections::{Follower, Visibility};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(list, revoke_others))
        .routes(routes!(revoke))
}

/// One active session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Its id.
    pub id: Uuid,
    /// Browser and system, from the User-Agent.
    pub device: String,
    /// The IP it signed in from.
    pub ip: Option<String>,
    /// From the trusted proxy's location headers, when configured.
    pub location: Option<String>,
    /// When it signed in (RFC 3339).
    pub created_at: String,
    /// Its latest request (RFC 3339).
    pub last_active_at: String,
    /// When it ends at the latest (RFC 3339).
    pub expires_at: String,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// A page of the active sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Newest first. Sessions that ended for being idle are left out, so a page may hold
    /// fewer than `limit` and still be followed by another.
    pub sessions: Vec<SessionView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Lists the active sessions, newest first, a page at a time.
#[utoipa::path(get, path = "/me/sessions", operation_id = "list_sessions", tag = "sessions", security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = SessionList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn list(
    State(core): State<Core>,
    State(auth): State<Auth>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<SessionList>, ApiError> {
    let page = page.page()?;
    let now = core.clock.now();
    let idle = core.http.sessions.idle_timeout;
    let rows = projections::sessions::list_for_account(
        &core.db,
        &core.sealer,
        session.account_id,
        now,
        &page,
    )
    .await?;
    let next = next_cursor(rows.next);
    let sessions = rows
        .items
        .into_iter()
        .filter_map(|row| {
            let (live, origin) = (row.session, row.origin);
            let last_active = auth
                .activity
                .last_seen(live.session_id)
                .map_or(live.last_active_at, |seen| seen.max(live.last_active_at));
            (now.since(last_active) < idle).then(|| SessionView {
                id: live.session_id.0,
                device: origin.device,
                ip: origin.ip,
                location: origin.location,
                created_at: live.created_at.to_rfc3339(),
                last_active_at: last_active.to_rfc3339(),
                expires_at: live.expires_at.to_rfc3339(),
                current: live.session_id == session.session_id,
            })
        })
        .collect();
    Ok(Json(SessionList {
        sessions,
        next_cursor: next,
    }))
}

/// Revokes one of the account's sessions (revoking the current one signs out).
#[utoipa::path(delete, path = "/me/sessions/{id}", tag = "sessions", security(("session" = [])),
    params(("id" = Uuid, Path, description = "The session")),
    responses(
        (status = 204, description = "Revoked; its token no longer works"),
        (status = 404, description = "`session_not_found`: not one of the caller's sessions", body = ErrorBody),
    ))]
pub async fn revoke(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let not_found = || ApiError::NotFound("session_not_found", "no such session".into());
    let target = Uuid::parse_str(&id)
        .map(SessionId)
        .map_err(|_| not_found())?;
    let changed = auth
        .accounts
        .revoke_session(
            &ctx.command(session.actor()),
            session.account_id,
            target,
            RevocationReason::Revoked,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Sessions), changed.position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    /// Sessions revoked.
    pub revoked: usize,
}

/// Revokes every session but the caller's.
#[utoipa::path(delete, path = "/me/sessions", tag = "sessions", security(("session" = [])),
    responses((status = 200, body = RevokedCount)))]
pub async fn revoke_others(
    State(core): State<Core>,
    State(auth): State<Auth>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Json<RevokedCount>, ApiError> {
    let changed = auth
        .accounts
        .revoke_other_sessions(
            &ctx.command(session.actor()),
            session.account_id,
            session.session_id,
        )
        .await?;
    core.visible(Visibility::ReadModel(Follower::Sessions), changed.position)
        .await?;
    Ok(Json(RevokedCount {
        revoked: changed.sessions_revoked,
    }))
}
