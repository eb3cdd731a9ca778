//! A schema's self-check, so a mistake in a static description fails a test rather than a
//! request: keys, defaults, constraints, the chain of migrations and fallbacks.

use super::{Fallback, Kind, Schema, VERSION_KEY};
use std::collections::BTreeSet;
use std::mem::discriminant;

impl Schema {
    /// What is wrong with this schema, empty when nothing. `fallback` is the schema its
    /// fields' [`Fallback`]s read (the studio configuration for editor preferences).
    pub fn problems(&self, fallback: Option<&Schema>) -> Vec<String> {
        let mut problems = Vec::new();
        let mut say = |p: String| problems.push(format!("{}: {p}", self.name));
        if self.version == 0 {
            say("versions start at 1".into());
        }
        if self.migrations.len() + 1 != self.version as usize {
            say(format!(
                "version {} needs {} migrations",
                self.version,
                self.version.saturating_sub(1)
            ));
        }
        for (i, m) in self.migrations.iter().enumerate() {
            if m.from as usize != i + 1 {
                say(format!("migration {i} must upgrade from version {}", i + 1));
            }
        }
        let mut keys = BTreeSet::new();
        for field in self.fields {
            let key = field.key;
            let well_formed = !key.is_empty()
                && !key.starts_with('.')
                && !key.ends_with('.')
                && !key.contains("..")
                && key.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.'
                });
            if !well_formed || key == VERSION_KEY {
                say(format!("`{key}` is not a valid key"));
            }
            if !keys.insert(key) {
                say(format!("`{key}` is declared twice"));
            }
            let default = field.default_value();
            if field.normalise(&default).as_ref() != Ok(&default) {
                say(format!("`{key}`: the default is not a canonical value"));
            }
            match field.kind {
                Kind::Integer { min, max, .. } if min > max => say(format!("`{key}`: empty range")),
                Kind::Enum { values, .. } | Kind::TextMap { keys: values, .. } => {
                    let lower: BTreeSet<_> =
                        values.iter().map(|v| v.to_ascii_lowercase()).collect();
                    if values.is_empty() || lower.len() != values.len() {
                        say(format!("`{key}`: values empty or equal but for case"));
                    }
                }
                _ => {}
            }
            match (field.fallback, fallback) {
                (None, _) => {}
                (Some(_), None) => say(format!("`{key}` has a fallback but no fallback schema")),
                (Some(f), Some(other)) => match (f, other.field(f.key()).map(|o| o.kind)) {
                    (_, None) => say(format!("`{key}` falls back to unknown `{}`", f.key())),
                    (Fallback::Field(_), Some(kind))
                        if discriminant(&kind) != discriminant(&field.kind) =>
                    {
                        say(format!("`{key}` falls back to a field of another kind"))
                    }
                    (Fallback::FirstItem(_), Some(kind))
                        if !matches!(kind, Kind::ColourList { .. })
                            || !matches!(field.kind, Kind::Colour { .. }) =>
                    {
                        say(format!(
                            "`{key}`: a first item is a colour of a colour list"
                        ))
                    }
                    _ => {}
                },
            }
        }
        problems
    }
}
