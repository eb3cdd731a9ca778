//! Request-wide middleware: the request context (ids, `X-Request-Id`), idempotency keys, and
//! JSON for every error.

use crate::error::{ApiError, error_response};
use crate::extract::{AccountSlot, RequestContext, bearer_token, live_operator, live_session};
use crate::state::AppState;
use crate::token_auth::live_token;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use commands::access_tokens::well_formed;
use commands::idempotency::{Claim, StoredResponse};
use commands::tokens::{OPERATOR_TOKEN_PREFIX, SESSION_TOKEN_PREFIX};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The header carrying a client's request id, echoed on the response.
pub const REQUEST_ID: &str = "x-request-id";
/// The header making a POST/PUT/PATCH/DELETE safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response replayed for a retried idempotency key.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";
/// Largest request body hashed for a key (an avatar upload is the largest request).
pub const MAX_BODY: usize = 6 << 20;

/// Gives every request its ids and echoes `X-Request-Id`.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let request_id = Uuid::new_v4();
    let given = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128);
    let correlation_id = match given {
        Some(text) => Uuid::parse_str(text)
            .unwrap_or_else(|_| Uuid::new_v5(&Uuid::NAMESPACE_OID, text.as_bytes())),
        None => request_id,
    };
    let echo = given.map_or_else(|| request_id.to_string(), str::to_owned);
    let idempotency_key = request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    request.extensions_mut().insert(RequestContext {
        request_id,
        correlation_id,
        idempotency_key,
    });
    let span = tracing::info_span!("request", %request_id, %correlation_id);
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    if let Ok(value) = HeaderValue::from_str(&echo) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Replays the stored response of a retried `Idempotency-Key`; refuses the same key with a
/// different request (422) or while the first is still running (409).
pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    if !matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()) => {
            k.to_owned()
        }
        _ => {
            return ApiError::Unprocessable(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            )
            .into_response();
        }
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        // The avatar, the one route whose bodies come near the cap, keeps its own answer.
        if path == crate::routes::profile::AVATAR_PATH {
            return crate::routes::profile::avatar_too_large().into_response();
        }
        return ApiError::PayloadTooLarge.into_response();
    };
    // Keys are scoped to the credential presented: one client's key never replays
    // another client's response.
    let credential = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let scope = sha256_hex(&[
        &credential,
        method.as_str().as_bytes(),
        path.as_bytes(),
        key.as_bytes(),
    ]);
    let fingerprint =
        state
            .idempotency
            .fingerprint(&[method.as_str().as_bytes(), path.as_bytes(), &body]);

    let claim = match state
        .idempotency
        .claim(&scope, &fingerprint, state.core.clock.now())
        .await
    {
        Ok(claim) => claim,
        Err(error) => return ApiError::from(error).into_response(),
    };
    match claim {
        // A response with a body (personal data, a secret shown once) is replayed only to
        // a credential that is still valid; a revoked or expired one goes to the route,
        // which refuses it. An empty answer reveals nothing and is replayed regardless (a
        // retried sign-out still gets its 204).
        Claim::Replay(stored)
            if !stored.body.is_empty() && !credential_is_live(&state, &parts.headers).await =>
        {
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Claim::Replay(stored) => replay(stored),
        Claim::Mismatch => ApiError::Unprocessable(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request".into(),
        )
        .into_response(),
        Claim::InProgress => ApiError::Conflict(
            "idempotency_request_in_progress",
            "a request with this Idempotency-Key is still being processed".into(),
        )
        .into_response(),
        Claim::Run => {
            let slot = AccountSlot::default();
            let mut request = Request::from_parts(parts, Body::from(body));
            request.extensions_mut().insert(slot.clone());
            let response = next.run(request).await;
            let (mut parts, body) = response.into_parts();
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                let _ = state.idempotency.release(&scope).await;
                return error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred",
                );
            };
            // Failures worth retrying are not stored: the key stays usable. Nor are
            // responses a route marks as not replayable.
            let retryable = parts.status.is_server_error()
                || parts.status == StatusCode::TOO_MANY_REQUESTS
                || parts.status == StatusCode::CONFLICT;
            let not_replayable = parts.extensions.get::<NotReplayable>().is_some();
            let outcome = if retryable || not_replayable {
                state.idempotency.release(&scope).await.map_err(Into::into)
            } else {
                let stored = StoredResponse {
                    status: parts.status.as_u16(),
                    content_type: parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: bytes.to_vec(),
                };
                state
                    .idempotency
                    .complete(&scope, &stored, slot.get(), state.core.clock.now())
                    .await
            };
            if let Err(error) = outcome {
                tracing::error!(%error, "could not record the idempotency key outcome");
            }
            parts
                .headers
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("false"));
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// Marks a response that must never be replayed, e.g. a sign-in's new session token: a
/// retry with the same key runs again.
#[derive(Debug, Clone, Copy)]
pub struct NotReplayable;

/// Whether the credential of a retried request is still valid (no credential: yes).
async fn credential_is_live(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = bearer_token(headers) else {
        return headers.get(header::AUTHORIZATION).is_none();
    };
    let live = if token.starts_with(SESSION_TOKEN_PREFIX) {
        live_session(state, token).await.map(drop)
    } else if token.starts_with(OPERATOR_TOKEN_PREFIX) {
        live_operator(state, token).await.map(drop)
    } else {
        match well_formed(token) {
            Some(family) => live_token(state, token, family).await.map(drop),
            None => return false,
        }
    };
    live.is_ok()
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    if let Some(value) = stored
        .content_type
        .and_then(|ct| HeaderValue::from_str(&ct).ok())
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    response
}

/// Answers in the API's error format any error the framework would answer in plain text
/// (a rejection no extractor of this crate maps), keeping its status and headers: every
/// error is `{"error": {"code", "message"}}`.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let code = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "internal_error".to_owned(),
        _ => reason
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
    };
    let message = if status.is_server_error() {
        // Never detailed to the client, as for every server error.
        tracing::error!(%status, body = %text, "a plain-text error reached the client");
        "an internal error occurred".to_owned()
    } else if text.is_empty() {
        reason.to_owned()
    } else {
        text
    };
    let json = error_response(status, &code, message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, json.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn answer(router: Router, path: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (
            status,
            content_type,
            serde_json::from_slice(&body).unwrap_or_default(),
        )
    }

    #[tokio::test]
    async fn plain_text_errors_become_json_and_the_rest_is_untouched() {
        let router = Router::new()
            .route(
                "/text",
                get(|| async { (StatusCode::BAD_REQUEST, "not like this") }),
            )
            .route(
                "/boom",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "db at 10.0.0.1") }),
            )
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(json_errors));

        let (status, content_type, body) = answer(router.clone(), "/text").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "not like this");

        let (status, _, body) = answer(router.clone(), "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(!body.to_string().contains("10.0.0.1"), "{body}");

        let (status, content_type, _) = answer(router, "/ok").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    }
}
