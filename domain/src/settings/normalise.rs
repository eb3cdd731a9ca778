//! Checking input against a schema: migrating it to the current version, then turning each
//! value into its canonical form or saying, for every key at once, why not.

use super::{Field, FieldError, Kind, Normalised, Schema, Step, VERSION_KEY, Warning};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The pattern of a colour, as the JSON Schema states it.
pub(super) const COLOUR_PATTERN: &str = "^#[0-9a-fA-F]{6}$";

/// Checks a patch (`input`, a JSON object) against `schema`, declared at `from_version`
/// (the current version when `None`): unknown keys are dropped with a warning, `null`
/// resets a key, every other value is checked and made canonical. All errors are returned.
pub fn normalise(
    schema: &Schema,
    input: &Value,
    from_version: Option<u32>,
) -> Result<Normalised, Vec<FieldError>> {
    let Value::Object(object) = input else {
        return Err(vec![FieldError::new(
            "",
            "invalid_type",
            "settings must be a JSON object".into(),
            None,
        )]);
    };
    let values = object.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let values =
        migrate(schema, values, from_version.unwrap_or(schema.version)).map_err(|e| vec![e])?;
    let mut normalised = Normalised::default();
    let mut errors = Vec::new();
    for (key, value) in values {
        let Some(field) = schema.field(&key) else {
            normalised.warnings.push(Warning {
                message: format!("`{key}` is not a setting of {}; ignored", schema.name),
                key,
                code: "unknown_key",
            });
            continue;
        };
        if value.is_null() {
            normalised.resets.push(key);
            continue;
        }
        match field.normalise(&value) {
            Ok(value) => {
                normalised.set.insert(key, value);
            }
            Err(mut refused) => errors.append(&mut refused),
        }
    }
    if errors.is_empty() {
        Ok(normalised)
    } else {
        Err(errors)
    }
}

/// Brings values written at version `from` to the schema's current version, applying each
/// migration in turn. Also for stored values (an event recording an older version).
/// Refuses a version below 1 or above the current one.
pub fn migrate(
    schema: &Schema,
    mut values: BTreeMap<String, Value>,
    from: u32,
) -> Result<BTreeMap<String, Value>, FieldError> {
    if from == 0 || from > schema.version {
        return Err(FieldError::new(
            VERSION_KEY,
            "unsupported_version",
            format!(
                "{} settings are at version {}; version {from} is not known",
                schema.name, schema.version
            ),
            Some(json!({ "min": 1, "max": schema.version })),
        ));
    }
    for migration in schema.migrations.iter().filter(|m| m.from >= from) {
        for step in migration.steps {
            match *step {
                Step::RenameKey { from, to } => {
                    if let Some(value) = values.remove(from) {
                        values.insert(to.to_owned(), value);
                    }
                }
                Step::RenameValue { key, from, to } => {
                    if let Some(value) = values.get_mut(key)
                        && value.as_str().is_some_and(|s| s.eq_ignore_ascii_case(from))
                    {
                        *value = Value::from(to);
                    }
                }
            }
        }
    }
    Ok(values)
}

impl Field {
    /// `value` in canonical form if this field accepts it (`null` is not a value).
    pub fn normalise(&self, value: &Value) -> Result<Value, Vec<FieldError>> {
        let key = self.key;
        let one =
            |code, message: String, allowed| vec![FieldError::new(key, code, message, allowed)];
        match self.kind {
            Kind::Boolean { .. } => match value {
                Value::Bool(_) => Ok(value.clone()),
                _ => Err(one("invalid_type", "must be true or false".into(), None)),
            },
            Kind::Integer { min, max, unit, .. } => {
                let range = json!({ "min": min, "max": max });
                let unit = unit.map(|u| format!(" {u}")).unwrap_or_default();
                let between = format!("between {min} and {max}{unit}");
                match integer(value) {
                    None => Err(one(
                        "invalid_type",
                        format!("must be an integer {between}"),
                        Some(range),
                    )),
                    Some(n) if n < i128::from(min) || n > i128::from(max) => Err(one(
                        "out_of_range",
                        format!("must be {between}"),
                        Some(range),
                    )),
                    Some(n) => Ok(Value::from(n as i64)),
                }
            }
            Kind::Enum { values, .. } => {
                let canonical = value
                    .as_str()
                    .and_then(|s| values.iter().find(|v| v.eq_ignore_ascii_case(s)));
                match (value, canonical) {
                    (_, Some(canonical)) => Ok(Value::from(*canonical)),
                    (Value::String(_), None) => Err(one(
                        "invalid_value",
                        format!("must be one of {}", values.join(", ")),
                        Some(json!(values)),
                    )),
                    _ => Err(one(
                        "invalid_type",
                        format!("must be a string, one of {}", values.join(", ")),
                        Some(json!(values)),
                    )),
                }
            }
            Kind::Colour { .. } => colour(value)
                .map(Value::from)
                .map_err(|(code, message)| one(code, message, Some(colour_allowed()))),
            Kind::ColourList { max_items, .. } => {
                let Value::Array(items) = value else {
                    return Err(one(
                        "invalid_type",
                        "must be a list of colours #RRGGBB".into(),
                        None,
                    ));
                };
                let mut errors = Vec::new();
                if items.len() > max_items {
                    errors.extend(one(
                        "too_many_items",
                        format!("at most {max_items} colours, not {}", items.len()),
                        Some(json!({ "max_items": max_items })),
                    ));
                }
                let mut colours = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match colour(item) {
                        Ok(c) => colours.push(Value::from(c)),
                        Err((code, message)) => errors.extend(one(
                            code,
                            format!("item {i}: {message}"),
                            Some(colour_allowed()),
                        )),
                    }
                }
                if errors.is_empty() {
                    Ok(Value::Array(colours))
                } else {
                    Err(errors)
                }
            }
            Kind::Text { max_length, .. } => text(value, max_length)
                .map(Value::from)
                .map_err(|(code, message, allowed)| one(code, message, allowed)),
            Kind::TextMap {
                keys, max_length, ..
            } => text_map(key, value, keys, max_length),
        }
    }
}

/// The integer `value` holds (an integral float counts), widened so no bound overflows.
fn integer(value: &Value) -> Option<i128> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    // `as` saturates: a huge integral float is simply out of range.
    n.as_f64()
        .filter(|f| f.is_finite() && f.fract() == 0.0)
        .map(|f| f as i128)
}

fn colour_allowed() -> Value {
    json!({ "pattern": COLOUR_PATTERN })
}

/// The colour in lowercase, or the error's code and message.
fn colour(value: &Value) -> Result<String, (&'static str, String)> {
    let Value::String(s) = value else {
        return Err(("invalid_type", "must be a colour string #RRGGBB".into()));
    };
    let hex = s.strip_prefix('#').unwrap_or_default();
    if s.len() == 7 && hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(("invalid_value", format!("`{s}` is not a colour #RRGGBB")))
    }
}

type TextError = (&'static str, String, Option<Value>);

/// The text trimmed, or the error's code, message and what is allowed.
fn text(value: &Value, max_length: usize) -> Result<String, TextError> {
    let Value::String(s) = value else {
        return Err(("invalid_type", "must be a string".into(), None));
    };
    let s = s.trim();
    if s.chars().any(char::is_control) {
        return Err((
            "invalid_value",
            "must not contain control characters".into(),
            None,
        ));
    }
    let length = s.chars().count();
    if length > max_length {
        return Err((
            "too_long",
            format!("at most {max_length} characters, not {length}"),
            Some(json!({ "max_length": max_length })),
        ));
    }
    Ok(s.to_owned())
}

fn text_map(
    key: &str,
    value: &Value,
    keys: &[&'static str],
    max_length: usize,
) -> Result<Value, Vec<FieldError>> {
    let Value::Object(entries) = value else {
        return Err(vec![FieldError::new(
            key,
            "invalid_type",
            format!("must be an object keyed by {}", keys.join(", ")),
            Some(json!(keys)),
        )]);
    };
    let mut map = Map::new();
    let mut errors = Vec::new();
    for (name, entry) in entries {
        let Some(canonical) = keys.iter().find(|k| k.eq_ignore_ascii_case(name)) else {
            errors.push(FieldError::new(
                key,
                "invalid_value",
                format!("`{name}` is not one of {}", keys.join(", ")),
                Some(json!(keys)),
            ));
            continue;
        };
        let entry = match entry {
            Value::Null => continue,
            entry => text(entry, max_length),
        };
        match entry {
            Ok(text) if text.is_empty() => {}
            Ok(text) => {
                if map
                    .insert((*canonical).to_owned(), Value::from(text))
                    .is_some()
                {
                    errors.push(FieldError::new(
                        key,
                        "invalid_value",
                        format!("{canonical}: given twice"),
                        None,
                    ));
                }
            }
            Err((code, message, allowed)) => errors.push(FieldError::new(
                key,
                code,
                format!("{canonical}: {message}"),
                allowed,
            )),
        }
    }
    if errors.is_empty() {
        Ok(Value::Object(map))
    } else {
        Err(errors)
    }
}
