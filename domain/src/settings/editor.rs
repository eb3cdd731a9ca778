//! A user's editor preferences: appearance, timeline, autosave, playback, shortcuts,
//! in-editor notifications and collaboration.
//!
//! The accent colour falls back to the workspace's primary brand colour (the first of the
//! studio configuration's `brand_colours`) when the user has chosen none.
//!
//! Version 3. From version 1: `snap_to_grid` became `timeline_snapping`. From version 2:
//! the keyboard presets `fcpx` and `resolve` became `final-cut` and `davinci`.

use super::{Fallback, Field, Kind, Migration, Schema, Step};

/// The editor preferences' schema.
pub static SCHEMA: Schema = Schema {
    name: "editor",
    title: "Editor preferences",
    description: "A user's preferences for the video editor.",
    version: 3,
    fields: FIELDS,
    migrations: &[
        Migration {
            from: 1,
            steps: &[Step::RenameKey {
                from: "snap_to_grid",
                to: "timeline_snapping",
            }],
        },
        Migration {
            from: 2,
            steps: &[
                Step::RenameValue {
                    key: "keyboard_preset",
                    from: "fcpx",
                    to: "final-cut",
                },
                Step::RenameValue {
                    key: "keyboard_preset",
                    from: "resolve",
                    to: "davinci",
                },
            ],
        },
    ],
};

const FIELDS: &[Field] = &[
    Field::new(
        "theme",
        Kind::Enum {
            values: &["light", "dark", "system"],
            default: "system",
        },
        "Colour theme; `system` follows the operating system.",
    ),
    Field::new(
        "accent_colour",
        Kind::Colour { default: "#7c3aed" },
        "Accent colour of the interface; the workspace's primary brand colour unless chosen.",
    )
    .falls_back_to(Fallback::FirstItem("brand_colours")),
    Field::new(
        "timeline_snapping",
        Kind::Boolean { default: true },
        "Whether clips snap to each other and to the playhead on the timeline.",
    ),
    Field::new(
        "autosave_interval_seconds",
        Kind::Integer {
            min: 10,
            max: 600,
            unit: Some("seconds"),
            default: 30,
        },
        "How often the project is saved, in seconds.",
    ),
    Field::new(
        "default_zoom_percent",
        Kind::Integer {
            min: 10,
            max: 400,
            unit: Some("percent"),
            default: 100,
        },
        "Zoom of the timeline when a project opens, in percent.",
    ),
    Field::new(
        "playback_quality",
        Kind::Enum {
            values: &["auto", "low", "medium", "high", "full"],
            default: "auto",
        },
        "Quality of the preview while playing.",
    ),
    Field::new(
        "keyboard_preset",
        Kind::Enum {
            values: &["default", "premiere", "final-cut", "davinci"],
            default: "default",
        },
        "Keyboard shortcuts, after another editor's.",
    ),
    Field::new(
        "notifications.toasts",
        Kind::Boolean { default: true },
        "Whether notifications show as toasts in the editor.",
    ),
    Field::new(
        "notifications.sounds",
        Kind::Boolean { default: false },
        "Whether notifications play a sound in the editor.",
    ),
    Field::new(
        "notifications.mentions",
        Kind::Enum {
            values: &["all", "direct", "none"],
            default: "all",
        },
        "Which mentions notify: all, only direct ones, or none.",
    ),
    Field::new(
        "collaborator_cursors",
        Kind::Boolean { default: true },
        "Whether collaborators' cursors are visible.",
    ),
];
