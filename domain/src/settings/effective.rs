//! What applies, layer by layer, and folding changes into stored values.

use super::{EffectiveValue, Normalised, Schema, Source};
use serde_json::Value;
use std::collections::BTreeMap;

/// Every field's value as it applies, in the schema's order: the `stored` value (a
/// document's own, at the current version), else the field's [`Fallback`](super::Fallback)
/// read from `fallback` (another document's stored values: the workspace's studio
/// configuration for editor preferences), else the built-in default. A stored or fallback
/// value the field no longer accepts is skipped; keys of no field are ignored.
pub fn effective(
    schema: &Schema,
    stored: &BTreeMap<String, Value>,
    fallback: &BTreeMap<String, Value>,
) -> Vec<EffectiveValue> {
    schema
        .fields
        .iter()
        .map(|field| {
            let user = stored
                .get(field.key)
                .and_then(|v| field.normalise(v).ok())
                .map(|v| (v, Source::User));
            let layered = || {
                field
                    .fallback
                    .and_then(|f| f.pick(fallback))
                    .and_then(|v| field.normalise(&v).ok())
                    .map(|v| (v, Source::Fallback))
            };
            let (value, source) = user
                .or_else(layered)
                .unwrap_or_else(|| (field.default_value(), Source::Default));
            EffectiveValue {
                key: field.key.to_owned(),
                value,
                source,
            }
        })
        .collect()
}

/// Folds a change into stored values: `set` replaces, `resets` removes (so the fallback or
/// default applies again). What an aggregate's `evolve` does with a settings event.
pub fn apply(
    stored: &mut BTreeMap<String, Value>,
    set: &BTreeMap<String, Value>,
    resets: &[String],
) {
    for key in resets {
        stored.remove(key);
    }
    for (key, value) in set {
        stored.insert(key.clone(), value.clone());
    }
}

impl Normalised {
    /// Whether it changes nothing (warnings aside).
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.resets.is_empty()
    }

    /// Only what would change `stored`: values that differ from the stored ones and resets
    /// of keys that are stored. Warnings are kept. What an aggregate's `decide` records.
    pub fn changes(&self, stored: &BTreeMap<String, Value>) -> Normalised {
        Normalised {
            set: self
                .set
                .iter()
                .filter(|(key, value)| stored.get(*key) != Some(*value))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
            resets: self
                .resets
                .iter()
                .filter(|key| stored.contains_key(*key))
                .cloned()
                .collect(),
            warnings: self.warnings.clone(),
        }
    }

    /// Folds it into `stored` (see [`apply`]).
    pub fn apply_to(&self, stored: &mut BTreeMap<String, Value>) {
        apply(stored, &self.set, &self.resets);
    }
}
