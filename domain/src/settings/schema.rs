//! A schema as JSON Schema (draft 2020-12), from which a client renders a form.
//!
//! The document describes the settings object: every property optional, with its type,
//! `default`, constraints (`minimum`/`maximum`, `enum`, `pattern`, `maxItems`,
//! `maxLength`) and `description`, plus the extensions `x-kind` (the field's [`Kind`]
//! name), `x-unit` and `x-fallback`. The version is `x-schema-version`. What the server also
//! accepts beyond the document: `null` to reset a property, enum values and map keys in any
//! case, unknown properties (dropped with a warning) — hence `additionalProperties: true`.

use super::normalise::COLOUR_PATTERN;
use super::{Field, Kind, Schema};
use serde_json::{Map, Value, json};

/// The JSON Schema of `schema`.
pub fn json_schema(schema: &Schema) -> Value {
    let properties: Map<String, Value> = schema
        .fields
        .iter()
        .map(|field| (field.key.to_owned(), property(field)))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": schema.title,
        "description": schema.description,
        "type": "object",
        "x-schema-name": schema.name,
        "x-schema-version": schema.version,
        "$comment": format!(
            "Version {}. A patch: every property is optional, null resets one to its \
             default, enum values and map keys match without regard to case, unknown \
             properties are ignored with a warning.",
            schema.version
        ),
        "properties": properties,
        "additionalProperties": true,
    })
}

fn colour() -> Value {
    json!({ "type": "string", "pattern": COLOUR_PATTERN })
}

fn property(field: &Field) -> Value {
    let mut p = match field.kind {
        Kind::Boolean { .. } => json!({ "type": "boolean" }),
        Kind::Integer { min, max, unit, .. } => {
            let mut p = json!({ "type": "integer", "minimum": min, "maximum": max });
            if let Some(unit) = unit {
                p["x-unit"] = Value::from(unit);
            }
            p
        }
        Kind::Enum { values, .. } => json!({ "type": "string", "enum": values }),
        Kind::Colour { .. } => colour(),
        Kind::ColourList { max_items, .. } => {
            json!({ "type": "array", "items": colour(), "maxItems": max_items })
        }
        Kind::Text { max_length, .. } => json!({ "type": "string", "maxLength": max_length }),
        Kind::TextMap {
            keys, max_length, ..
        } => {
            let entry = json!({ "type": "string", "minLength": 1, "maxLength": max_length });
            let entries: Map<String, Value> = keys
                .iter()
                .map(|k| ((*k).to_owned(), entry.clone()))
                .collect();
            json!({ "type": "object", "properties": entries, "additionalProperties": false })
        }
    };
    p["description"] = Value::from(field.description);
    p["default"] = field.default_value();
    p["x-kind"] = Value::from(field.kind.name());
    if let Some(fallback) = field.fallback {
        p["x-fallback"] = json!(fallback);
    }
    p
}
