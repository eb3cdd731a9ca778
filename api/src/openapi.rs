//! The OpenAPI document, built from the routes themselves.
//!
//! Each resource module's `router()` returns [`Routes`]: a route enters the router only
//! together with its handler's `#[utoipa::path]` (through `utoipa_axum::routes!`), so no
//! route is served undocumented. [`ApiDoc`] holds what is not a route (info, tags,
//! security schemes, the error schema); [`complete`] then adds to every operation the
//! errors its class of route can return ([`errors`]), the values the catalog allows
//! ([`catalog`]), the configured limits ([`limits`]) and the rules across fields
//! ([`rules`]); [`patterns`] holds the server's validations as regular expressions.
//!
//! To add a route: annotate its handler with `#[utoipa::path(…)]` (method, path, tag,
//! `security(("session" = []))` or the scheme it takes, the request body and parameters
//! with their constraints, the success response and the errors only this route returns,
//! each with its codes), then add `.routes(routes!(handler))` to its module's `router()`
//! (handlers of one path in one `routes!`). The errors every route of its class returns
//! (malformed input, authentication, `Idempotency-Key`, timeouts) are added for it;
//! `tests/api/openapi.rs` and `.ci/schemathesis` check the result against the server.

pub mod catalog;
pub mod errors;
pub mod limits;
pub mod patterns;
pub mod rules;

use crate::error::{ErrorBody, ErrorDetail};
use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::Route;
use domain::Timestamp;
use domain::catalog::Catalog;
use std::convert::Infallible;
use tower::{Layer, Service};
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter, UtoipaMethodRouterExt};

/// What the document says besides its operations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Accounts", description = "Account settings of the video studio: sign-in, sessions, security, credits and billing.\n\n\
        Every error is `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}` (the `ErrorBody` schema) with a fitting status. \
        A method a path does not have is answered 405 with `Allow`; a path that does not exist, 404 `not_found`."),
    // Named in `WebhookData`'s description of its object, not derived from a field.
    components(schemas(ErrorBody, ErrorDetail, crate::routes::payments::CheckoutSessionBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Registration and sign-in"),
        (name = "account", description = "The signed-in account"),
        (name = "sessions", description = "Signed-in devices"),
        (name = "security", description = "Two-factor authentication and re-authentication"),
        (name = "credits", description = "Balance, generations, purchases and claims"),
        (name = "billing", description = "Plans and their entitlements, subscription, invoices and payments"),
        (name = "sandbox", description = "The sandbox payment provider's pages, served by this service in the embedded default"),
        (name = "admin", description = "Operator reports (operator tokens only)"),
        (name = "notifications", description = "E-mail preferences and one-click unsubscribe"),
        (name = "tokens", description = "API and CLI tokens of the signed-in account"),
        (name = "public api", description = "The public API, authenticated by API tokens with scopes"),
        (name = "cli", description = "What the studio CLI calls, authenticated by CLI tokens"),
        (name = "operations", description = "Health and documentation"),
        (name = "provider keys", description = "Bring-your-own AI provider keys of the account and its workspaces"),
        (name = "internal", description = "What the studio's workers call, authenticated by `service` operator tokens only"),
    )
)]
pub struct ApiDoc;

/// Binary content (an image, a PDF), in request and response bodies.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(pub Vec<u8>);

/// The security scheme of a session token (`ses_…`, from `POST /auth/login`).
pub const SESSION: &str = "session";
/// The security scheme of an API token (`vsk_…`); operations name the scope they need.
pub const API_TOKEN: &str = "api_token";
/// The security scheme of a CLI token (`vcli_…`).
pub const CLI_TOKEN: &str = "cli_token";
/// The security scheme of an operator token (`adm_…`, from `accounts admin-token create`).
pub const OPERATOR: &str = "operator";

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (scheme, description) in [
            (SESSION, "A session token (`ses_…`) from `POST /auth/login`"),
            (
                API_TOKEN,
                "An API token (`vsk_…`) from `POST /me/api-tokens`; each operation names the scope it needs",
            ),
            (
                CLI_TOKEN,
                "A CLI token (`vcli_…`) from `POST /me/cli-tokens`",
            ),
            (
                OPERATOR,
                "An operator token (`adm_…`) from `accounts admin-token create`",
            ),
        ] {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            components.add_security_scheme(scheme, SecurityScheme::Http(http));
        }
    }
}

/// Routes with their documentation, registered together: the only way in is
/// [`Routes::routes`] with what `utoipa_axum::routes!` makes of `#[utoipa::path]`
/// handlers, so a route cannot exist undocumented. A route may carry a body limit of its
/// own ([`Routes::routes_with_body_limit`]).
#[derive(Default)]
pub struct Routes(Vec<(UtoipaMethodRouter<AppState>, Option<usize>)>);

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the handlers of one path, as `routes!(a, b)` lists them.
    ///
    /// # Panics
    ///
    /// If the handlers do not share one path: `routes!` would serve each of them on
    /// every path listed, which the document would not say.
    pub fn routes(mut self, handlers: UtoipaMethodRouter<AppState>) -> Self {
        let paths: Vec<&String> = handlers.1.paths.keys().collect();
        assert_eq!(
            paths.len(),
            1,
            "one routes!(…) per path, got handlers for {paths:?}"
        );
        self.0.push((handlers, None));
        self
    }

    /// Adds the handlers of one path, as [`Routes::routes`] does, refusing a body over
    /// `max_bytes` with 413 before anything reads it: the limit wraps every other layer
    /// added with [`Routes::route_layer`] (the `Idempotency-Key` check reads bodies too).
    pub fn routes_with_body_limit(
        self,
        handlers: UtoipaMethodRouter<AppState>,
        max_bytes: usize,
    ) -> Self {
        let mut routes = self.routes(handlers);
        if let Some(last) = routes.0.last_mut() {
            last.1 = Some(max_bytes);
        }
        routes
    }

    /// Adds every route of `other`.
    pub fn merge(mut self, other: Routes) -> Self {
        self.0.extend(other.0);
        self
    }

    /// Runs `layer` around the handlers of every route added so far: not around the 405
    /// answer to a method a path does not have (nor the 404 of a path that does not exist).
    pub fn route_layer<L>(self, layer: L) -> Self
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        Self(
            self.0
                .into_iter()
                .map(|(handlers, limit)| {
                    (
                        handlers.map(|router| router.route_layer(layer.clone())),
                        limit,
                    )
                })
                .collect(),
        )
    }

    /// The router and the complete document of its routes (see [`complete`]).
    pub fn split(
        self,
        catalog: &Catalog,
        now: Timestamp,
        limits: &limits::Limits,
    ) -> (Router<AppState>, OpenApi) {
        let router = self.0.into_iter().fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            |router, (handlers, limit)| match limit {
                Some(max) => {
                    router.routes(handlers.map(|r| r.route_layer(RequestBodyLimitLayer::new(max))))
                }
                None => router.routes(handlers),
            },
        );
        let (router, mut document) = router.split_for_parts();
        complete(&mut document, catalog, now, limits);
        (router, document)
    }
}

/// Adds what each operation's class of route can answer ([`errors::document`]), the
/// catalog's values ([`catalog::document`]), the configured limits
/// ([`limits::document`]) and the rules across fields ([`rules::document`]).
pub fn complete(
    document: &mut OpenApi,
    catalog: &Catalog,
    now: Timestamp,
    limits: &limits::Limits,
) {
    errors::document(document);
    catalog::document(document, catalog, now);
    limits::document(document, limits);
    if let Some(components) = document.components.as_mut() {
        rules::document(components);
    }
}

/// The document as JSON. utoipa 5 writes the fields of a response's links in snake case
/// (`operation_id`); OpenAPI names them in camel case (`operationId`), so they are renamed.
pub fn to_json(document: &OpenApi) -> serde_json::Value {
    let mut json = serde_json::to_value(document).unwrap_or_default();
    let operations = json["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation["responses"]
            .as_object_mut()
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links"))
            .filter_map(serde_json::Value::as_object_mut)
            .flat_map(|links| links.values_mut())
            .filter_map(serde_json::Value::as_object_mut);
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
    json
}

#[cfg(test)]
mod tests {
    /// The resource modules add routes only through [`super::Routes`]: none calls axum's
    /// `route`, `route_service`, `nest` or `merge` of a plain router, which would serve a
    /// route the document does not have.
    #[test]
    fn routes_are_added_only_with_their_documentation() {
        let mut folders = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes")];
        let mut checked = 0;
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    // A resource split into a folder of files (routes/provider_keys/) is read too.
                    folders.push(path);
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                for forbidden in [
                    ".route(",
                    ".route_service(",
                    ".nest(",
                    ".nest_service(",
                    "Router::new()",
                ] {
                    assert!(
                        !source.contains(forbidden),
                        "{} calls {forbidden}",
                        path.display()
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 15, "{checked} route modules");
    }
}
