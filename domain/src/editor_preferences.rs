//! A user's editor preferences (`editorprefs-<account>`): typed values of
//! [`crate::settings::editor`]. Setting a value and resetting it are different events, so a
//! value set equal to the default stays set. Every change is decided against the version
//! the writer read (`If-Match`), so two devices never overwrite each other silently.

use crate::Timestamp;
use crate::event::Event;
use crate::workspace::SettingValues;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happened to an account's editor preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "editorprefs")]
pub enum EditorPreferencesEvent {
    /// Values set (normalised, at `schema_version`).
    #[event(no_personal_data)]
    EditorPreferencesSet {
        /// The values.
        set: SettingValues,
        /// Their schema version.
        schema_version: u32,
        /// When.
        at: Timestamp,
    },
    /// Keys back to their defaults.
    #[event(no_personal_data)]
    EditorPreferencesReset {
        /// The keys.
        keys: Vec<String>,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked.
#[derive(Debug, Clone, PartialEq)]
pub enum EditorPreferencesCommand {
    /// Set some values and reset some keys, if the version read is still current.
    Change {
        /// The version the writer read.
        if_match: u64,
        /// Values to set (normalised).
        set: BTreeMap<String, serde_json::Value>,
        /// Keys to reset.
        resets: Vec<String>,
        /// Their schema version.
        schema_version: u32,
        /// Now.
        at: Timestamp,
    },
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditorPreferencesError {
    /// Another write came first.
    #[error("the preferences changed since version {read} (now {current}); read them again")]
    Stale {
        /// The version the writer read.
        read: u64,
        /// The version now.
        current: u64,
    },
}

/// The state: values set, and the version (events so far).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EditorPreferences {
    /// Values set.
    pub values: BTreeMap<String, serde_json::Value>,
    /// How many changes were made: what `If-Match` names.
    pub version: u64,
}

impl crate::Aggregate for EditorPreferences {
    type Event = EditorPreferencesEvent;
    type Command = EditorPreferencesCommand;
    type Error = EditorPreferencesError;

    fn decide(
        &self,
        command: &EditorPreferencesCommand,
    ) -> Result<Vec<EditorPreferencesEvent>, EditorPreferencesError> {
        let EditorPreferencesCommand::Change {
            if_match,
            set,
            resets,
            schema_version,
            at,
        } = command;
        if *if_match != self.version {
            return Err(EditorPreferencesError::Stale {
                read: *if_match,
                current: self.version,
            });
        }
        let mut events = Vec::new();
        let keys: Vec<String> = resets
            .iter()
            .filter(|k| self.values.contains_key(*k))
            .cloned()
            .collect();
        if !keys.is_empty() {
            events.push(EditorPreferencesEvent::EditorPreferencesReset { keys, at: *at });
        }
        let set: BTreeMap<_, _> = set
            .iter()
            .filter(|(k, v)| self.values.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !set.is_empty() {
            events.push(EditorPreferencesEvent::EditorPreferencesSet {
                set: SettingValues(set),
                schema_version: *schema_version,
                at: *at,
            });
        }
        Ok(events)
    }

    fn evolve(&mut self, event: &EditorPreferencesEvent) {
        self.version += 1;
        match event {
            EditorPreferencesEvent::EditorPreferencesSet { set, .. } => {
                crate::settings::apply(&mut self.values, &set.0, &[]);
            }
            EditorPreferencesEvent::EditorPreferencesReset { keys, .. } => {
                crate::settings::apply(&mut self.values, &BTreeMap::new(), keys);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use serde_json::json;

    fn at(n: i64) -> Timestamp {
        Timestamp::from_unix_micros(n)
    }

    fn change(
        if_match: u64,
        set: &[(&str, serde_json::Value)],
        resets: &[&str],
    ) -> EditorPreferencesCommand {
        EditorPreferencesCommand::Change {
            if_match,
            set: set
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            resets: resets.iter().map(|k| (*k).to_owned()).collect(),
            schema_version: 3,
            at: at(1),
        }
    }

    #[test]
    fn a_value_set_equal_to_the_default_stays_set_and_a_reset_is_its_own_event() {
        let state = given::<EditorPreferences>([])
            .when(change(0, &[("theme", json!("system"))], &[]))
            .then([EditorPreferencesEvent::EditorPreferencesSet {
                set: SettingValues(
                    [("theme".to_owned(), json!("system"))]
                        .into_iter()
                        .collect(),
                ),
                schema_version: 3,
                at: at(1),
            }]);
        assert_eq!(state.values["theme"], "system");
        assert_eq!(state.version, 1);
        let history = [EditorPreferencesEvent::EditorPreferencesSet {
            set: SettingValues(
                [("theme".to_owned(), json!("system"))]
                    .into_iter()
                    .collect(),
            ),
            schema_version: 3,
            at: at(1),
        }];
        let state = given::<EditorPreferences>(history)
            .when(change(1, &[], &["theme"]))
            .then([EditorPreferencesEvent::EditorPreferencesReset {
                keys: vec!["theme".into()],
                at: at(1),
            }]);
        assert!(state.values.is_empty());
    }

    #[test]
    fn a_stale_version_is_refused() {
        let history = [EditorPreferencesEvent::EditorPreferencesReset {
            keys: vec![],
            at: at(1),
        }];
        given::<EditorPreferences>(history)
            .when(change(0, &[("theme", json!("dark"))], &[]))
            .then_error(EditorPreferencesError::Stale {
                read: 0,
                current: 1,
            });
    }
}
