//! Audit routes: an account's history and its state at an instant for operator tokens
//! (auditors and admins), and the account holder's own security log. The answers are
//! built by [`crate::audit`], which the CLI's `accounts audit …` shares.

use crate::audit::events::{DEFAULT_LIMIT, EventsPage, EventsQuery, MAX_LIMIT};
use crate::audit::security_log::SecurityLogPage;
use crate::audit::state::AccountState;
use crate::audit::{AuditError, Auditor};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, CurrentSession, Operator};
use crate::openapi::{Routes, patterns};
use crate::state::Core;
use axum::Json;
use axum::extract::State;
use domain::{AccountId, Timestamp};
use serde::Deserialize;
use store::GlobalPosition;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(account_events))
        .routes(routes!(account_state))
        .routes(routes!(security_log))
}

/// Path of an audited account.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AccountPath {
    /// The account.
    pub id: Uuid,
}

/// Which events of the account.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// Events recorded at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Events recorded at or before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// `next_cursor` of the previous page; absent or empty for the first page.
    #[param(schema_with = patterns::schemas::position_cursor)]
    pub cursor: Option<String>,
    /// Events per page, 1 to 1000 (100 by default).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The instant of the state.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// The instant (RFC 3339; events recorded then count). Absent, or later than now: now.
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<String>,
}

/// A page of the security log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SecurityLogParams {
    /// `next_cursor` of the previous page; absent or empty for the first page.
    #[param(schema_with = patterns::schemas::position_cursor)]
    pub cursor: Option<String>,
    /// Entries per page, 1 to 100 (50 by default).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// An RFC 3339 instant of the query, or 422 naming `field`.
pub fn instant(field: &str, text: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    // An empty value is not an instant (the document gives the parameter the `date-time`
    // format): it is refused, not read as no instant.
    match text {
        None => Ok(None),
        Some(text) => OffsetDateTime::parse(text, &Rfc3339)
            .map(|at| Some(Timestamp::from_datetime(at)))
            .map_err(|_| ApiError::invalid(field, "is not an RFC 3339 instant")),
    }
}

/// A position cursor (1 to 19 digits), or 422.
pub fn position_cursor(text: Option<&str>) -> Result<Option<u64>, ApiError> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) if text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()) => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API gave")),
        Some(_) => Err(ApiError::invalid("cursor", "is not a cursor this API gave")),
    }
}

/// The instant of a state: `as_of` if given and not later than now, else now. "Now" is the
/// wall clock, the clock the log stamps `recorded_at` with.
pub fn as_of(text: Option<&str>) -> Result<Timestamp, ApiError> {
    let now = Timestamp::from_datetime(OffsetDateTime::now_utc());
    Ok(instant("as_of", text)?.map_or(now, |at| at.min(now)))
}

fn limit(value: Option<i64>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = value.unwrap_or(default as i64);
    if (1..=max as i64).contains(&limit) {
        Ok(limit as usize)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ))
    }
}

impl EventsParams {
    /// The query these parameters ask for, or 422.
    pub fn query(&self) -> Result<EventsQuery, ApiError> {
        Ok(EventsQuery {
            from: instant("from", self.from.as_deref())?,
            to: instant("to", self.to.as_deref())?,
            after: GlobalPosition(position_cursor(self.cursor.as_deref())?.unwrap_or(0)),
            limit: limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
        })
    }
}

impl From<AuditError> for ApiError {
    fn from(error: AuditError) -> Self {
        match error {
            AuditError::UnknownAccount => {
                ApiError::NotFound("account_not_found", "no account has this id".into())
            }
            AuditError::Failed(message) => ApiError::Internal(message),
        }
    }
}

/// An auditor over the service's log and audit index.
pub(crate) fn auditor(core: &Core) -> Auditor {
    Auditor::new(core.db.clone(), core.log.clone(), core.codec.clone())
        .with_session_idle_timeout(core.http.sessions.idle_timeout)
}

/// Every event of every stream that belongs to the account (its account, sign-ins,
/// credits, purchases, checkouts, subscription, invoices, tokens, usage, preferences,
/// provider keys, Telegram link, and its workspaces while it was a member), in log order,
/// with their envelope; personal fields opened, or `{"erased": true}` once the account's
/// key is destroyed; secrets `{"redacted": true}` (operator tokens: auditors and admins).
#[utoipa::path(get, path = "/admin/audit/accounts/{id}/events", tag = "admin", security(("operator" = [])),
    params(AccountPath, EventsParams),
    responses((status = 200, body = EventsPage),
        (status = 403, description = "`insufficient_role`: a `service` token", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `from` or `to` not an RFC 3339 instant, a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn account_events(
    State(core): State<Core>,
    operator: Operator,
    ApiPath(path): ApiPath<AccountPath>,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> Result<Json<EventsPage>, ApiError> {
    let query = params.query()?;
    tracing::info!(token_id = %operator.token_id, account = %path.id, "audit: events");
    Ok(Json(
        auditor(&core).events(AccountId(path.id), query).await?,
    ))
}

/// The account as it was at `as_of` (events recorded until then, inclusive), folded by the
/// domain's rules: profile, 2FA, live sessions, credits (available, held, lots), plan,
/// invoices, live tokens, notification toggles, provider keys present, workspaces and
/// roles (operator tokens: auditors and admins).
#[utoipa::path(get, path = "/admin/audit/accounts/{id}/state", tag = "admin", security(("operator" = [])),
    params(AccountPath, StateParams),
    responses((status = 200, body = AccountState),
        (status = 403, description = "`insufficient_role`: a `service` token", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: `as_of` is not an RFC 3339 instant", body = ErrorBody)))]
pub async fn account_state(
    State(core): State<Core>,
    operator: Operator,
    ApiPath(path): ApiPath<AccountPath>,
    ApiQuery(params): ApiQuery<StateParams>,
) -> Result<Json<AccountState>, ApiError> {
    let as_of = as_of(params.as_of.as_deref())?;
    tracing::info!(token_id = %operator.token_id, account = %path.id, %as_of, "audit: state");
    Ok(Json(auditor(&core).state(AccountId(path.id), as_of).await?))
}

/// The caller's own security events, newest first: sign-ins and refused sign-ins, new
/// devices, re-authentication, sessions revoked, password and 2FA changes, tokens created,
/// rotated and revoked, provider keys saved, removed and read; with device and place.
#[utoipa::path(get, path = "/me/security-log", tag = "security", security(("session" = [])),
    params(SecurityLogParams),
    responses((status = 200, body = SecurityLogPage),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn security_log(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(params): ApiQuery<SecurityLogParams>,
) -> Result<Json<SecurityLogPage>, ApiError> {
    let before = position_cursor(params.cursor.as_deref())?;
    let limit = limit(params.limit, 50, 100)?;
    Ok(Json(
        auditor(&core)
            .security_log(session.account_id, before, limit)
            .await?,
    ))
}
