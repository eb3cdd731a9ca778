//! Extractors: JSON bodies, path parameters, query strings and raw bodies whose rejections
//! are JSON errors, the request context, the client's network origin, and the
//! authenticated session.

mod client;
mod operator;

pub use client::{ClientInfo, forwarded_ip};
pub use operator::{
    Admin, AnyRole, LiveOperator, Operator, RoleRequirement, Service, live_operator,
};

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use commands::CommandContext;
use commands::tokens::{SESSION_TOKEN_PREFIX, hash_token};
use domain::{AccountId, SessionId};
use projections::sessions::LiveSession;
use serde::de::DeserializeOwned;
use std::any::TypeId;
use std::sync::{Arc, Mutex};
use store::Actor;
use uuid::Uuid;

/// A JSON body whose rejections are answered in the API's error format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + 'static,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Read as JSON first, then as `T`: serde reads a struct from an array of its fields
        // in order too (`[null, null]` for two optional fields), which the document does not
        // allow; a typed body must be an object. A free-form body (`serde_json::Value`) may
        // be any JSON. Read as a `Value`, the body fails only on its syntax, its content
        // type or its size; what does not fit `T` is found below.
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => {
                let free_form = TypeId::of::<T>() == TypeId::of::<serde_json::Value>();
                if !free_form && !value.is_object() {
                    return Err(ApiError::Unprocessable(
                        "invalid_body",
                        "the body must be a JSON object".into(),
                    ));
                }
                // With the path of the field at fault, as axum's own `Json` gives it.
                serde_path_to_error::deserialize(value)
                    .map(Self)
                    .map_err(|e| ApiError::Unprocessable("invalid_body", e.to_string()))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => {
                Err(ApiError::BadRequest("malformed_json", e.body_text()))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json".into(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge)
            }
            Err(other) => Err(ApiError::BadRequest("invalid_body", other.body_text())),
        }
    }
}

/// A path parameter whose rejections are answered in the API's error format (400
/// `invalid_path`, e.g. a token id that is not a UUID).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            // A route whose parameters do not fit its extractor is a bug, not a bad request.
            Err(e) if e.status().is_server_error() => Err(ApiError::Internal(e.body_text())),
            Err(e) => Err(ApiError::BadRequest("invalid_path", e.body_text())),
        }
    }
}

/// A query string whose rejections are answered in the API's error format (400
/// `invalid_query`, e.g. `limit=abc`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))
    }
}

/// A raw body whose rejections are answered in the API's error format (413 when it is
/// over the limit).
#[derive(Debug, Clone, Default)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(e) => Err(ApiError::BadRequest("invalid_body", e.body_text())),
        }
    }
}

/// Identifies the request across the events it causes; set by the request-context
/// middleware.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// This request (the causation of its events).
    pub request_id: Uuid,
    /// From `X-Request-Id` when given, else the request id.
    pub correlation_id: Uuid,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

impl RequestContext {
    /// The command context for `actor`.
    pub fn command(&self, actor: Actor) -> CommandContext {
        CommandContext {
            correlation_id: self.correlation_id,
            causation_id: Some(self.request_id),
            actor,
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("request context middleware missing".into()))
    }
}

/// Filled by [`CurrentSession`] with the caller's account, so that the idempotency
/// middleware can record whose response it keeps (and forget it when the account is
/// erased).
#[derive(Debug, Clone, Default)]
pub struct AccountSlot(Arc<Mutex<Option<AccountId>>>);

impl AccountSlot {
    /// Records the caller's account.
    pub fn set(&self, account_id: AccountId) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(account_id);
    }

    /// The account, if an authenticated extractor ran.
    pub fn get(&self) -> Option<AccountId> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The session presenting the request's bearer token: valid, not revoked, not expired.
#[derive(Debug, Clone, Copy)]
pub struct CurrentSession {
    /// Its account.
    pub account_id: AccountId,
    /// The session.
    pub session_id: SessionId,
}

impl CurrentSession {
    /// The actor for commands this session issues.
    pub fn actor(&self) -> Actor {
        Actor::Session {
            account_id: self.account_id,
            session_id: self.session_id,
        }
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The live session holding `token`: well formed, not revoked, not past its expiry or
/// idle timeout. Read through the session cache ([`crate::session_cache`]): no round trip
/// while it holds the session; a session the cache shows idle is read again before it is
/// refused (its last-active time may have moved on another node).
pub async fn live_session(state: &AppState, token: &str) -> Result<LiveSession, ApiError> {
    let invalid =
        || ApiError::Unauthorized("invalid_session", "the session token is not valid".into());
    // Refuse malformed tokens before touching the database.
    if !token.starts_with(SESSION_TOKEN_PREFIX) || token.len() > 128 {
        return Err(invalid());
    }
    let hash = hash_token(token);
    let sessions = &state.auth.sessions;
    let load = || projections::sessions::find_by_token_hash(&state.core.db, &hash);
    let mut session = sessions.get(&hash, load()).await?.ok_or_else(invalid)?;
    let now = state.core.clock.now();
    if now < session.expires_at && is_idle(state, &session, now) {
        session = sessions.reload(&hash, load()).await?.ok_or_else(invalid)?;
    }
    if now >= session.expires_at || is_idle(state, &session, now) {
        return Err(ApiError::Unauthorized(
            "session_expired",
            "the session has expired; sign in again".into(),
        ));
    }
    Ok(LiveSession::clone(&session))
}

/// Whether `session` has been idle for the idle timeout at `now`, by its row and by what
/// this process saw since the row's last-active time was written.
fn is_idle(state: &AppState, session: &LiveSession, now: domain::Timestamp) -> bool {
    let last_active = state
        .auth
        .activity
        .last_seen(session.session_id)
        .map_or(session.last_active_at, |seen| {
            seen.max(session.last_active_at)
        });
    now.since(last_active) >= state.core.http.sessions.idle_timeout
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized(
                "missing_token",
                "send the session token as Authorization: Bearer <token>".into(),
            )
        })?;
        let session = live_session(state, token).await?;
        state.auth.activity.touch(
            session.account_id,
            session.session_id,
            state.core.clock.now(),
        );
        if let Some(slot) = parts.extensions.get::<AccountSlot>() {
            slot.set(session.account_id);
        }
        Ok(Self {
            account_id: session.account_id,
            session_id: session.session_id,
        })
    }
}

/// An optional JSON body: nothing (or only whitespace, or `null`) is `None`. As `ApiJson`
/// answers: not JSON is 400 `malformed_json`, JSON of another shape 422 `invalid_body`.
pub fn optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<Option<T>>(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ApiError::BadRequest("malformed_json", e.to_string())
        }
        _ => ApiError::Unprocessable("invalid_body", e.to_string()),
    })
}
