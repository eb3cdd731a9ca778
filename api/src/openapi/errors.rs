//! The errors every operation of a class of routes can return, added to the document by
//! what the operation declares (its method, body, parameters and security scheme), so
//! no handler repeats them and none forgets them. Route-specific errors (404, 409, 422
//! with their codes…) stay in each handler's `#[utoipa::path]`; a generic error of the
//! same status is appended to their description.

use super::{API_TOKEN, CLI_TOKEN, OPERATOR, SESSION};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, ObjectBuilder, OpenApi, Ref, Required, ResponseBuilder, Schema,
    Type,
};

/// The header making a mutating request safe to retry (see [`crate::middleware::idempotency`]).
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Adds the generic errors to every operation of `document`.
pub fn document(document: &mut OpenApi) {
    for item in document.paths.paths.values_mut() {
        for (mutating, operation) in operations(item) {
            add_generic_errors(operation, mutating);
        }
    }
}

/// The operations of a path, each with whether its method changes anything.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (bool, &mut Operation)> {
    [
        (false, &mut item.get),
        (false, &mut item.head),
        (false, &mut item.options),
        (false, &mut item.trace),
        (true, &mut item.post),
        (true, &mut item.put),
        (true, &mut item.patch),
        (true, &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(mutating, operation)| operation.as_mut().map(|o| (mutating, o)))
}

fn add_generic_errors(operation: &mut Operation, mutating: bool) {
    let schemes = security_schemes(operation);
    let has = |name: &str| schemes.iter().any(|s| s == name);
    let parameters = operation.parameters.clone().unwrap_or_default();
    let takes = |place: ParameterIn| parameters.iter().any(|p| p.parameter_in == place);
    // A route that documents a 413 itself (`payload_too_large`, `avatar_too_large`) states
    // its own body limit.
    let own_limit = match operation.responses.responses.get("413") {
        Some(utoipa::openapi::RefOr::T(response)) => response.description.contains("_too_large"),
        _ => false,
    };
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|body| body.content.contains_key("application/json"));

    if takes(ParameterIn::Path) {
        add(
            operation,
            400,
            "`invalid_path`: a path parameter is not of its type",
        );
    }
    if takes(ParameterIn::Query) {
        add(
            operation,
            400,
            "`invalid_query`: the query string does not parse (a parameter of the wrong type, a required one missing)",
        );
    }
    if json_body {
        add(operation, 400, "`malformed_json`: the body is not JSON");
        if !own_limit {
            add(
                operation,
                413,
                "`payload_too_large`: the body is over 2 MiB",
            );
        }
        add(
            operation,
            415,
            "`unsupported_media_type`: the body is not sent as `Content-Type: application/json`",
        );
        add(
            operation,
            422,
            "`invalid_body`: the JSON does not fit the schema (a field missing or of the wrong type)",
        );
    }
    if has(SESSION) {
        add(
            operation,
            401,
            "`missing_token`, `invalid_session` or `session_expired`: no valid session token",
        );
    }
    if has(API_TOKEN) {
        add(
            operation,
            401,
            "`missing_token`, `invalid_token` or `token_expired`: no valid API token",
        );
        add(
            operation,
            403,
            "`insufficient_scope`: the token lacks the scope this operation needs, or the account is no longer offered it; \
             `api_access_disabled`: the account's plan or the deployment leaves out API access (the token stays listed, and works again when access returns)",
        );
    }
    if has(CLI_TOKEN) {
        add(
            operation,
            401,
            "`missing_token`, `invalid_token` or `token_expired`: no valid CLI token",
        );
    }
    if has(API_TOKEN) || has(CLI_TOKEN) {
        add(
            operation,
            429,
            "`too_many_attempts`: the token's rate limit is reached; see `Retry-After`",
        );
    }
    if has(OPERATOR) {
        add(
            operation,
            401,
            "`invalid_admin_token` (no valid operator token) or `admin_token_expired`",
        );
    }
    if mutating {
        document_idempotency_key(operation);
        add(
            operation,
            409,
            "`idempotency_request_in_progress`: a request with this `Idempotency-Key` is still running",
        );
        if !own_limit {
            add(
                operation,
                413,
                "`payload_too_large`: a body over 6 MiB sent with an `Idempotency-Key`",
            );
        }
        add(
            operation,
            422,
            "`invalid_idempotency_key` (not 1 to 255 visible ASCII characters) or `idempotency_key_reused` (the key was used for a different request)",
        );
        add(
            operation,
            503,
            "`timeout`: the request took longer than the configured limit; `projection_lag`: the change was saved but is not visible yet",
        );
    } else {
        add(
            operation,
            503,
            "`timeout`: the request took longer than the configured limit",
        );
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        let utoipa::openapi::RefOr::T(response) = response else {
            continue;
        };
        match status.as_str() {
            "401" => {
                response
                    .headers
                    .entry("WWW-Authenticate".into())
                    .or_insert_with(|| header("`Bearer`", Type::String));
            }
            "429" => {
                response
                    .headers
                    .entry("Retry-After".into())
                    .or_insert_with(|| {
                        header("Seconds to wait before trying again", Type::Integer)
                    });
            }
            _ => {}
        }
    }
}

/// The names of the security schemes `operation` accepts.
fn security_schemes(operation: &Operation) -> Vec<String> {
    operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| serde_json::to_value(requirement).ok())
        .filter_map(|value| {
            value
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

fn header(description: &str, kind: Type) -> utoipa::openapi::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(kind))
        .description(Some(description))
        .build()
}

/// Documents `status` with the error schema, or appends `description` to the status
/// the handler documents already.
fn add(operation: &mut Operation, status: u16, description: &str) {
    let responses = &mut operation.responses.responses;
    let key = status.to_string();
    let error_content = || {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build()
    };
    match responses.get_mut(&key) {
        Some(utoipa::openapi::RefOr::T(response)) => {
            if !response.description.contains(description) {
                response.description = if response.description.trim().is_empty() {
                    description.to_owned()
                } else {
                    format!("{}; {description}", response.description)
                };
            }
            response
                .content
                .entry("application/json".into())
                .or_insert_with(error_content);
        }
        Some(utoipa::openapi::RefOr::Ref(_)) => {}
        None => {
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/json", error_content())
                .build();
            responses.insert(key, response.into());
        }
    }
}

fn document_idempotency_key(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if parameters.iter().any(|p| p.name == IDEMPOTENCY_KEY) {
        return;
    }
    let schema: Schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some(r"^[!-~]+$"))
        .into();
    let parameter: Parameter = ParameterBuilder::new()
        .name(IDEMPOTENCY_KEY)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: a unique key per request (1 to 255 visible ASCII characters). \
             A retry with the same key and body gets the first answer back (`Idempotent-Replayed: true`); \
             the same key with another body is refused (422).",
        ))
        .schema(Some(schema))
        .build();
    parameters.push(parameter);
}
