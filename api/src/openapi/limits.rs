//! The configured limits in the document: bounds of request fields that come from a flag
//! rather than a constant (the longest lifetime of an API token), written into the schema
//! so that it states what the running server accepts.

use utoipa::openapi::{OpenApi, RefOr, Schema};

/// The limits the server was started with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--api-token-max-days`.
    pub api_token_max_days: u32,
}

/// Writes `limits` into `document`.
pub fn document(document: &mut OpenApi, limits: &Limits) {
    let Some(components) = document.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut("CreateApiToken")
    else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(days))) = object.properties.get_mut("expires_in_days") {
        days.maximum = Some(limits.api_token_max_days.into());
        days.description = Some(format!(
            "Days the token lives: 1 to {max}; {default} when absent.",
            max = limits.api_token_max_days,
            default = crate::limits::DEFAULT_API_TOKEN_DAYS.min(limits.api_token_max_days),
        ));
    }
}
