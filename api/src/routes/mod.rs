//! The HTTP routes: one `router()` per resource, each returning its routes with their
//! documentation ([`Routes`]), merged here with the middleware.

pub mod audit;
pub mod auth;
pub mod billing;
pub mod claims;
pub mod credits;
pub mod docs;
pub mod editor_preferences;
pub mod email_change;
pub mod email_verification;
pub mod entitlements;
pub mod export;
pub mod generations;
pub mod invitation_links;
pub mod invitations;
pub mod me;
pub mod members;
pub mod notifications;
pub mod operators;
pub mod ops;
pub mod password_reset;
pub mod payments;
pub mod profile;
pub mod provider_keys;
pub mod public_api;
pub mod sandbox;
pub mod security;
pub mod sessions;
pub mod storage;
pub mod studio;
pub mod telegram;
pub mod token_views;
pub mod tokens;
pub mod workspaces;

use crate::error::{ApiError, error_response};
use crate::middleware;
use crate::openapi::Routes;
use crate::state::AppState;
use axum::error_handling::HandleErrorLayer;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Extension, Router};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;

/// Every documented route: the one place the resource modules are merged. The sandbox
/// provider's pages exist only while it is the provider.
pub fn routes(state: &AppState) -> Routes {
    let routes = Routes::new()
        .merge(auth::router())
        .merge(me::router())
        .merge(email_change::router())
        .merge(email_verification::router())
        .merge(export::router())
        .merge(password_reset::router())
        .merge(security::router())
        .merge(profile::router())
        .merge(sessions::router())
        .merge(credits::router())
        .merge(generations::router())
        .merge(billing::router())
        .merge(entitlements::router())
        .merge(claims::router())
        .merge(payments::router())
        .merge(operators::router())
        .merge(audit::router())
        .merge(tokens::router())
        .merge(notifications::router())
        .merge(workspaces::router())
        .merge(members::router())
        .merge(invitations::router())
        .merge(invitation_links::router())
        .merge(studio::router())
        .merge(storage::router())
        .merge(editor_preferences::router())
        .merge(provider_keys::router())
        .merge(telegram::router())
        .merge(public_api::router(state.clone()))
        .merge(ops::router())
        .merge(docs::router());
    if state.payments.sandbox {
        routes.merge(sandbox::router())
    } else {
        routes
    }
}

/// The routes, each behind the idempotency-key check, and their OpenAPI document as this
/// service's catalog and clock make it.
pub fn parts(state: &AppState) -> (Router<AppState>, OpenApi) {
    routes(state)
        // Only around handlers: an unknown path or method is 404/405 whatever its headers.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency,
        ))
        .split(
            state.payments.billing.catalog(),
            state.core.clock.now(),
            &crate::openapi::limits::Limits {
                api_token_max_days: state.tokens.access_tokens.policy().api_max_days,
            },
        )
}

/// Every route with its middleware; `/openapi.json` and `/docs` serve the document of
/// exactly these routes.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let (routes, document) = parts(&state);
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(ops::Published::new(&document)))
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    error_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "an internal error occurred",
                    )
                }))
                .layer(axum::middleware::from_fn(middleware::json_errors))
                // No response is to be read as another type than it says.
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                // Spans name the route's template: a path or query can hold a token.
                .layer(TraceLayer::new_for_http().make_span_with(crate::request_span::request_span))
                .layer(axum::middleware::from_fn(middleware::request_context))
                .layer(HandleErrorLayer::new(timed_out))
                .timeout(request_timeout),
        )
        // Outside every layer that may answer before reading a body.
        .layer(axum::middleware::from_fn(crate::linger::drain_unread))
        // Outermost, so a request's time and status are what the client saw.
        .layer(axum::middleware::from_fn(crate::metrics::record_request))
        .with_state(state)
}

async fn timed_out(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        )
    } else {
        ApiError::Internal(error.to_string()).into_response()
    }
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// axum adds `Allow` with the methods the path has.
async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
