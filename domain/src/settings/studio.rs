//! A workspace's studio configuration: the defaults of the video studio for everyone in
//! the workspace (format, export, watermark, brand colours, voices and models).
//!
//! Version 2. From version 1: `fps` became `frame_rate`, and the resolutions `hd` and `4k`
//! became `1080p` and `2160p`.

use super::{Field, Kind, Migration, Schema, Step};

/// The AI providers a default voice or model can be chosen for.
pub const PROVIDERS: &[&str] = &["openai", "anthropic", "google", "elevenlabs"];

/// The studio configuration's schema.
pub static SCHEMA: Schema = Schema {
    name: "studio",
    title: "Studio configuration",
    description: "The workspace's defaults for the video studio.",
    version: 2,
    fields: FIELDS,
    migrations: &[Migration {
        from: 1,
        steps: &[
            Step::RenameKey {
                from: "fps",
                to: "frame_rate",
            },
            Step::RenameValue {
                key: "resolution",
                from: "hd",
                to: "1080p",
            },
            Step::RenameValue {
                key: "resolution",
                from: "4k",
                to: "2160p",
            },
        ],
    }],
};

const FIELDS: &[Field] = &[
    Field::new(
        "aspect_ratio",
        Kind::Enum {
            values: &["16:9", "9:16", "1:1", "4:5", "4:3", "21:9"],
            default: "16:9",
        },
        "Aspect ratio of a new project.",
    ),
    Field::new(
        "resolution",
        Kind::Enum {
            values: &["720p", "1080p", "1440p", "2160p"],
            default: "1080p",
        },
        "Resolution of a new project.",
    ),
    Field::new(
        "frame_rate",
        Kind::Integer {
            min: 12,
            max: 120,
            unit: Some("fps"),
            default: 30,
        },
        "Frame rate of a new project, in frames per second.",
    ),
    Field::new(
        "export_format",
        Kind::Enum {
            values: &["mp4", "mov", "webm", "gif"],
            default: "mp4",
        },
        "File format of exports.",
    ),
    Field::new(
        "watermark.enabled",
        Kind::Boolean { default: false },
        "Whether exports carry the watermark.",
    ),
    Field::new(
        "watermark.text",
        Kind::Text {
            max_length: 64,
            default: "",
        },
        "The watermark's text.",
    ),
    Field::new(
        "brand_colours",
        Kind::ColourList {
            max_items: 8,
            default: &[],
        },
        "The workspace's brand colours, the first being the primary one.",
    ),
    Field::new(
        "default_voice",
        Kind::TextMap {
            keys: PROVIDERS,
            max_length: 100,
            default: &[],
        },
        "Default voice per provider.",
    ),
    Field::new(
        "default_model",
        Kind::TextMap {
            keys: PROVIDERS,
            max_length: 100,
            default: &[],
        },
        "Default model per provider.",
    ),
];
