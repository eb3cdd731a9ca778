//! Typed settings documents over HTTP (the studio configuration, editor preferences): a
//! patch's body, its errors, and the view answered. The rules are `domain::settings`'.

use crate::error::ApiError;
use domain::settings::{
    EffectiveValue, Normalised, Schema, Source, VERSION_KEY, Warning, normalise,
};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Checks a patch: a JSON object of settings, with an optional `schema_version` (the
/// version the client knows; older keys are migrated). Every refused value is named in
/// the 422 `invalid_settings`, with what is allowed.
pub fn patch(schema: &Schema, body: Value) -> Result<Normalised, ApiError> {
    let Value::Object(mut object) = body else {
        return Err(ApiError::Unprocessable(
            "invalid_settings",
            "settings must be a JSON object".into(),
        ));
    };
    let version = match object.remove(VERSION_KEY) {
        None | Some(Value::Null) => None,
        // An integer in any JSON spelling (`2`, `2.0`), as every integer field takes.
        Some(v) => Some(
            crate::integers::u64(v)
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| {
                    ApiError::Unprocessable(
                        "invalid_settings",
                        format!("{VERSION_KEY}: must be a positive integer"),
                    )
                })?,
        ),
    };
    normalise(schema, &Value::Object(object), version).map_err(|errors| {
        let message = errors
            .iter()
            .map(|e| match &e.allowed {
                Some(allowed) => format!("{}: {} (allowed: {allowed})", e.key, e.message),
                None => format!("{}: {}", e.key, e.message),
            })
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::Unprocessable("invalid_settings", message)
    })
}

/// A warning about a key the server dropped.
#[derive(Debug, Serialize, ToSchema)]
pub struct WarningView {
    /// The key.
    pub key: String,
    /// `unknown_key`.
    pub code: String,
    /// For people.
    pub message: String,
}

impl From<&Warning> for WarningView {
    fn from(w: &Warning) -> Self {
        Self {
            key: w.key.clone(),
            code: w.code.to_owned(),
            message: w.message.clone(),
        }
    }
}

/// A settings document as it applies.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// The schema version of the values.
    pub schema_version: u32,
    /// Every setting's effective value.
    #[schema(value_type = Object)]
    pub values: Map<String, Value>,
    /// Where each value comes from: `user` (set), `fallback` (a wider layer) or `default`.
    #[schema(value_type = Object)]
    pub sources: Map<String, Value>,
    /// Keys the last change dropped (unknown), if any.
    pub warnings: Vec<WarningView>,
}

impl SettingsView {
    /// The view of `effective` values at `schema`'s version, with `warnings`.
    pub fn new(schema: &Schema, effective: Vec<EffectiveValue>, warnings: &[Warning]) -> Self {
        let mut values = Map::new();
        let mut sources = Map::new();
        for entry in effective {
            let source = match entry.source {
                Source::User => "user",
                Source::Fallback => "fallback",
                Source::Default => "default",
            };
            sources.insert(entry.key.clone(), Value::from(source));
            values.insert(entry.key, entry.value);
        }
        Self {
            schema_version: schema.version,
            values,
            sources,
            warnings: warnings.iter().map(Into::into).collect(),
        }
    }
}

/// Stored values as a map.
pub fn stored(values: &Map<String, Value>) -> BTreeMap<String, Value> {
    values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}
