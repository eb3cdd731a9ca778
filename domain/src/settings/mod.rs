//! Typed, versioned settings documents: a workspace's studio configuration
//! ([`studio`]) and a user's editor preferences ([`editor`]), both described by a static
//! [`Schema`] and handled by the same pure machinery.
//!
//! **Shape.** A settings document is one flat JSON object. Keys are snake_case; a dot
//! groups related settings (`notifications.toasts`) but is part of the name, never a
//! nested object. Values are booleans, integers, strings, lists of colours or, for a
//! [`Kind::TextMap`], an object of short texts keyed by a fixed set of names.
//!
//! **Patch semantics.** A client sends some keys: [`normalise`] checks each against its
//! field and answers the canonical values to set, the keys whose value is `null` (reset to
//! the default), and warnings for unknown keys, which are dropped. Every error is
//! collected, each naming its key and, where it helps, what is allowed. Input declared at
//! an older version of the schema is first brought to the current one by the schema's
//! [`Migration`]s ([`migrate`]).
//!
//! **Layers.** What applies ([`effective`]) is the stored value, else the fallback layer (a
//! field may name a field of another document, e.g. the workspace's studio configuration),
//! else the built-in default. [`apply`] folds a change into stored values, for aggregates.
//!
//! **Forms.** [`json_schema`] describes a schema as a JSON Schema (draft 2020-12).

mod check;
mod effective;
mod normalise;
mod schema;

pub mod editor;
pub mod studio;

#[cfg(test)]
mod tests_effective;
#[cfg(test)]
mod tests_normalise;
#[cfg(test)]
mod tests_schema;
#[cfg(test)]
mod tests_shipped;

pub use effective::{apply, effective};
pub use normalise::{migrate, normalise};
pub use schema::json_schema;

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The key of a [`FieldError`] about the version an input declares (no field may use it).
pub const VERSION_KEY: &str = "schema_version";

/// Every shipped schema.
pub static SCHEMAS: [&Schema; 2] = [&studio::SCHEMA, &editor::SCHEMA];

/// The shipped schema called `name` (`studio`, `editor`).
pub fn schema(name: &str) -> Option<&'static Schema> {
    SCHEMAS.into_iter().find(|s| s.name == name)
}

/// A settings document's description: its fields, current version and how older versions
/// map to it.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Its name (`studio`, `editor`).
    pub name: &'static str,
    /// A human title, for forms.
    pub title: &'static str,
    /// What it configures.
    pub description: &'static str,
    /// The current version, from 1.
    pub version: u32,
    /// The fields, in display order.
    pub fields: &'static [Field],
    /// `migrations[i]` upgrades version `i + 1` to `i + 2`; there are `version - 1`.
    pub migrations: &'static [Migration],
}

impl Schema {
    /// The field called `key`.
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// Every field's built-in default.
    pub fn defaults(&self) -> BTreeMap<String, Value> {
        self.fields
            .iter()
            .map(|f| (f.key.to_owned(), f.default_value()))
            .collect()
    }
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Its key in the document (snake_case, dots allowed).
    pub key: &'static str,
    /// What it holds, its constraints and its default.
    pub kind: Kind,
    /// What it does, for forms.
    pub description: &'static str,
    /// Where its value comes from when none is stored, before the default.
    pub fallback: Option<Fallback>,
}

impl Field {
    /// A field without a fallback.
    pub const fn new(key: &'static str, kind: Kind, description: &'static str) -> Self {
        Self {
            key,
            kind,
            description,
            fallback: None,
        }
    }

    /// The same field, falling back to `fallback` when no value is stored.
    pub const fn falls_back_to(self, fallback: Fallback) -> Self {
        Self {
            fallback: Some(fallback),
            ..self
        }
    }

    /// Its built-in default, as stored.
    pub fn default_value(&self) -> Value {
        match self.kind {
            Kind::Boolean { default } => Value::Bool(default),
            Kind::Integer { default, .. } => Value::from(default),
            Kind::Enum { default, .. } | Kind::Colour { default } | Kind::Text { default, .. } => {
                Value::from(default)
            }
            Kind::ColourList { default, .. } => Value::from(default.to_vec()),
            Kind::TextMap { default, .. } => Value::Object(
                default
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect(),
            ),
        }
    }
}

/// What a field holds. Each kind carries its default, so a default always has its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` or `false`.
    Boolean {
        /// The default.
        default: bool,
    },
    /// An integer in `min..=max`; `7.0` is accepted as `7`, `7.5` is not.
    Integer {
        /// The smallest allowed.
        min: i64,
        /// The largest allowed.
        max: i64,
        /// Its unit, for forms (`seconds`, `percent`).
        unit: Option<&'static str>,
        /// The default.
        default: i64,
    },
    /// One of `values`, matched without regard to case and stored as spelled here.
    Enum {
        /// The allowed values, canonical spelling.
        values: &'static [&'static str],
        /// The default.
        default: &'static str,
    },
    /// A colour `#RRGGBB`, stored in lowercase.
    Colour {
        /// The default (lowercase).
        default: &'static str,
    },
    /// A list of at most `max_items` colours.
    ColourList {
        /// The longest list allowed.
        max_items: usize,
        /// The default.
        default: &'static [&'static str],
    },
    /// A short text without control characters, trimmed, at most `max_length` characters.
    Text {
        /// The longest allowed, in characters.
        max_length: usize,
        /// The default.
        default: &'static str,
    },
    /// An object from some of `keys` (matched without regard to case) to a non-empty short
    /// text; an entry `null` or blank is left out. Set as a whole.
    TextMap {
        /// The allowed keys, canonical spelling.
        keys: &'static [&'static str],
        /// The longest text allowed, in characters.
        max_length: usize,
        /// The default entries.
        default: &'static [(&'static str, &'static str)],
    },
}

impl Kind {
    /// Its name in the JSON Schema's `x-kind`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Boolean { .. } => "boolean",
            Self::Integer { .. } => "integer",
            Self::Enum { .. } => "enum",
            Self::Colour { .. } => "colour",
            Self::ColourList { .. } => "colour_list",
            Self::Text { .. } => "text",
            Self::TextMap { .. } => "text_map",
        }
    }
}

/// Where a field's value comes from when the document stores none: a field of the
/// fallback layer (another document's stored values), used only if valid for this field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "take", content = "key", rename_all = "snake_case")]
pub enum Fallback {
    /// That field's value.
    Field(&'static str),
    /// The first item of that field's list (e.g. a workspace's first brand colour).
    FirstItem(&'static str),
}

impl Fallback {
    /// The key of the field it reads.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Field(key) | Self::FirstItem(key) => key,
        }
    }

    /// Its value in `layer`, if any.
    pub fn pick(&self, layer: &BTreeMap<String, Value>) -> Option<Value> {
        let value = layer.get(self.key())?;
        match self {
            Self::Field(_) => Some(value.clone()),
            Self::FirstItem(_) => value.as_array()?.first().cloned(),
        }
    }
}

/// Upgrades input of version `from` to `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The version it upgrades from.
    pub from: u32,
    /// What changes, applied in order.
    pub steps: &'static [Step],
}

/// One change between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The key `from` is now `to` (its value replaces one given under `to`).
    RenameKey {
        /// The old key.
        from: &'static str,
        /// The new key.
        to: &'static str,
    },
    /// The string value `from` (any case) of `key` is now `to`.
    RenameValue {
        /// The key, as named in the version upgraded from.
        key: &'static str,
        /// The old value.
        from: &'static str,
        /// The new value.
        to: &'static str,
    },
}

/// A valid patch: what to set, what to reset, and what was ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Normalised {
    /// Canonical values to store, by key.
    pub set: BTreeMap<String, Value>,
    /// Keys given as `null`: back to the fallback or default, in key order.
    pub resets: Vec<String>,
    /// Keys dropped (unknown), in key order.
    pub warnings: Vec<Warning>,
}

/// An input key that was ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// The key as given.
    pub key: String,
    /// Why: `unknown_key`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

/// Why a key's value was refused.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// The field's key; [`VERSION_KEY`] for the declared version; empty for the document.
    pub key: String,
    /// `invalid_type`, `out_of_range`, `invalid_value`, `too_long`, `too_many_items`,
    /// `unsupported_version`.
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// What is allowed: `{min, max}`, the enum's values or the map's keys, `{pattern}`,
    /// `{max_length}`, `{max_items}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Value>,
}

impl FieldError {
    fn new(key: &str, code: &'static str, message: String, allowed: Option<Value>) -> Self {
        Self {
            key: key.to_owned(),
            code,
            message,
            allowed,
        }
    }
}

/// Where an effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Stored in the document.
    User,
    /// The fallback layer (e.g. the workspace's studio configuration).
    Fallback,
    /// The built-in default.
    Default,
}

/// A field's value as it applies.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveValue {
    /// The field's key.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// Where it comes from.
    pub source: Source,
}
