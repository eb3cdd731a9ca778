//! Operations: liveness, readiness, the OpenAPI document and its interactive page.

use crate::error::ErrorBody;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_scalar::{Scalar, Servable};

/// The OpenAPI description of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Accounts", description = "Account settings of the video studio: sign-in, sessions, security, credits and billing."),
    paths(
        crate::routes::auth::register,
        crate::routes::auth::login,
        crate::routes::auth::logout,
        crate::routes::me::me,
        crate::routes::me::change_password,
        crate::routes::me::delete_account,
        crate::routes::security::enroll,
        crate::routes::security::confirm,
        crate::routes::security::regenerate,
        crate::routes::security::disable,
        crate::routes::security::reauthenticate,
        crate::routes::profile::update,
        crate::routes::profile::upload,
        crate::routes::profile::my_avatar,
        crate::routes::profile::remove,
        crate::routes::profile::public_profile,
        crate::routes::profile::public_avatar,
        crate::routes::sessions::list,
        crate::routes::sessions::revoke,
        crate::routes::sessions::revoke_others,
        crate::routes::credits::credits,
        crate::routes::credits::transactions,
        crate::routes::credits::purchase,
        crate::routes::credits::packs,
        crate::routes::credits::plans,
        crate::routes::generations::hold,
        crate::routes::generations::complete,
        crate::routes::generations::fail,
        crate::routes::billing::subscription,
        crate::routes::billing::change_plan,
        crate::routes::billing::cancel,
        crate::routes::billing::resume,
        crate::routes::billing::invoices,
        crate::routes::billing::invoice,
        crate::routes::billing::portal,
        crate::routes::claims::list,
        crate::routes::claims::claim,
        crate::routes::payments::webhook,
        crate::routes::operators::reconciliation,
        crate::routes::operators::metrics,
        crate::routes::operators::dead_letters,
        crate::routes::notifications::preferences,
        crate::routes::notifications::update,
        crate::routes::notifications::history,
        crate::routes::notifications::unsubscribe_page,
        crate::routes::notifications::unsubscribe,
        crate::routes::tokens::create_api_token,
        crate::routes::tokens::list_api_tokens,
        crate::routes::tokens::rotate_api_token,
        crate::routes::tokens::revoke_api_token,
        crate::routes::tokens::api_token_usage,
        crate::routes::tokens::create_cli_token,
        crate::routes::tokens::list_cli_tokens,
        crate::routes::tokens::revoke_cli_token,
        crate::routes::public_api::me,
        crate::routes::public_api::credits,
        crate::routes::public_api::transactions,
        crate::routes::public_api::hold,
        crate::routes::public_api::complete,
        crate::routes::public_api::fail,
        crate::routes::public_api::usage,
        crate::routes::public_api::cli_me,
        healthz,
        readyz,
    ),
    components(schemas(ErrorBody)),
    modifiers(&SessionAuth),
    tags(
        (name = "auth", description = "Registration and sign-in"),
        (name = "account", description = "The signed-in account"),
        (name = "sessions", description = "Signed-in devices"),
        (name = "security", description = "Two-factor authentication and re-authentication"),
        (name = "credits", description = "Balance, generations, purchases and claims"),
        (name = "billing", description = "Plans, subscription, invoices and payments"),
        (name = "admin", description = "Operator reports (operator tokens only)"),
        (name = "notifications", description = "E-mail preferences and one-click unsubscribe"),
        (name = "tokens", description = "API and CLI tokens of the signed-in account"),
        (name = "public api", description = "The public API, authenticated by API tokens with scopes"),
        (name = "cli", description = "What the studio CLI calls, authenticated by CLI tokens"),
        (name = "operations", description = "Health and documentation"),
    )
)]
pub struct ApiDoc;

struct SessionAuth;

impl Modify for SessionAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for scheme in ["session", "api_token", "cli_token", "operator"] {
            components.add_security_scheme(
                scheme,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .merge(Scalar::with_url("/docs", ApiDoc::openapi()))
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// One read model's progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectionStatus {
    /// Its name.
    pub name: &'static str,
    /// The last log position it applied.
    pub checkpoint: u64,
    /// Whether it has applied everything in the log.
    pub caught_up: bool,
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    /// The last position in the log.
    pub log_head: u64,
    /// Each read model.
    pub projections: Vec<ProjectionStatus>,
}

/// The database answers and the read models are known.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let check = async {
        state.db.ping().await.map_err(|e| e.to_string())?;
        let head = state.log.head().await.map_err(|e| e.to_string())?;
        let mut projections = Vec::new();
        for name in state.projections.names() {
            let checkpoint = state
                .projections
                .checkpoint(name)
                .await
                .map_err(|e| e.to_string())?;
            projections.push(ProjectionStatus {
                name: name.key(),
                checkpoint: checkpoint.0,
                caught_up: checkpoint >= head,
            });
        }
        Ok::<_, String>(Readiness {
            status: "ready",
            log_head: head.0,
            projections,
        })
    };
    match check.await {
        Ok(ready) => (
            StatusCode::OK,
            Json(serde_json::to_value(ready).unwrap_or_default()),
        ),
        Err(cause) => {
            tracing::warn!(%cause, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({"error": {"code": "not_ready", "message": "the database is not reachable"}}),
                ),
            )
        }
    }
}
