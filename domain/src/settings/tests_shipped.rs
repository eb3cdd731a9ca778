//! The shipped schemas, `studio` and `editor`: sound, every field checked over its whole
//! kind, their migrations, and their JSON Schema.

use super::*;
use serde_json::{Map, json};

fn one(schema: &Schema, key: &str, value: Value) -> Result<Value, Vec<FieldError>> {
    normalise(schema, &json!({ key: value }), None).map(|mut n| n.set.remove(key).unwrap())
}

fn code(result: Result<Value, Vec<FieldError>>) -> &'static str {
    let errors = result.expect_err("refused");
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].code
}

#[test]
fn both_schemas_are_sound_and_found_by_name() {
    assert_eq!(studio::SCHEMA.problems(None), Vec::<String>::new());
    assert_eq!(
        editor::SCHEMA.problems(Some(&studio::SCHEMA)),
        Vec::<String>::new()
    );
    assert_eq!(schema("studio").unwrap().name, "studio");
    assert_eq!(schema("editor").unwrap().version, 3);
    assert!(schema("billing").is_none());
}

/// A property over every field of both schemas: its default normalises to itself, the
/// whole document of defaults is a valid patch, and each kind's edges hold.
#[test]
fn every_field_of_both_schemas_behaves_as_its_kind_says() {
    for schema in SCHEMAS {
        let defaults = json!(schema.defaults());
        let n = normalise(schema, &defaults, None).expect("defaults are a valid patch");
        assert_eq!(json!(n.set), defaults);
        assert!(n.warnings.is_empty() && n.resets.is_empty());
        for field in schema.fields {
            let (s, k) = (schema, field.key);
            assert_eq!(
                one(s, k, field.default_value()),
                Ok(field.default_value()),
                "{k}"
            );
            assert!(!field.description.is_empty(), "{k}");
            let reset = normalise(s, &json!({ k: null }), None).unwrap();
            assert_eq!(reset.resets, [k]);
            match field.kind {
                Kind::Boolean { .. } => {
                    assert_eq!(one(s, k, json!(true)), Ok(json!(true)));
                    assert_eq!(code(one(s, k, json!("true"))), "invalid_type", "{k}");
                }
                Kind::Integer { min, max, .. } => {
                    assert_eq!(one(s, k, json!(min)), Ok(json!(min)), "{k}");
                    assert_eq!(one(s, k, json!(max as f64)), Ok(json!(max)), "{k}");
                    for outside in [min - 1, max + 1] {
                        let errors = one(s, k, json!(outside)).unwrap_err();
                        assert_eq!(errors[0].code, "out_of_range", "{k}");
                        assert_eq!(errors[0].allowed, Some(json!({ "min": min, "max": max })));
                    }
                    assert_eq!(code(one(s, k, json!(min as f64 + 0.5))), "invalid_type");
                }
                Kind::Enum { values, .. } => {
                    for v in values {
                        for spelling in [v.to_uppercase(), v.to_lowercase()] {
                            assert_eq!(one(s, k, json!(spelling)), Ok(json!(v)), "{k}");
                        }
                    }
                    assert_eq!(code(one(s, k, json!("nope"))), "invalid_value", "{k}");
                    assert_eq!(code(one(s, k, json!(1))), "invalid_type", "{k}");
                }
                Kind::Colour { .. } => {
                    assert_eq!(one(s, k, json!("#ABCDEF")), Ok(json!("#abcdef")));
                    assert_eq!(code(one(s, k, json!("blue"))), "invalid_value", "{k}");
                }
                Kind::ColourList { max_items, .. } => {
                    let full = vec!["#ABCDEF"; max_items];
                    let lower = vec!["#abcdef"; max_items];
                    assert_eq!(one(s, k, json!(full)), Ok(json!(lower)), "{k}");
                    let over = vec!["#abcdef"; max_items + 1];
                    assert_eq!(code(one(s, k, json!(over))), "too_many_items", "{k}");
                }
                Kind::Text { max_length, .. } => {
                    let full = "x".repeat(max_length);
                    assert_eq!(one(s, k, json!(full)), Ok(json!(full)), "{k}");
                    assert_eq!(code(one(s, k, json!(full + "x"))), "too_long", "{k}");
                }
                Kind::TextMap { keys, .. } => {
                    let upper: Map<_, _> = keys
                        .iter()
                        .map(|p| (p.to_uppercase(), json!("v")))
                        .collect();
                    let canonical: Map<_, _> =
                        keys.iter().map(|p| (p.to_string(), json!("v"))).collect();
                    assert_eq!(one(s, k, json!(upper)), Ok(json!(canonical)), "{k}");
                    assert_eq!(code(one(s, k, json!({ "mistral": "v" }))), "invalid_value");
                }
            }
            if !matches!(field.kind, Kind::Boolean { .. }) {
                assert_eq!(code(one(s, k, json!(true))), "invalid_type", "{k}");
            }
        }
    }
}

#[test]
fn studio_version_1_input_is_migrated() {
    let patch = json!({ "fps": 24.0, "resolution": "HD", "aspect_ratio": "1:1" });
    let n = normalise(&studio::SCHEMA, &patch, Some(1)).unwrap();
    assert_eq!(
        json!(n.set),
        json!({ "frame_rate": 24, "resolution": "1080p", "aspect_ratio": "1:1" })
    );
    let n = normalise(&studio::SCHEMA, &json!({ "resolution": "4k" }), Some(1)).unwrap();
    assert_eq!(n.set["resolution"], "2160p");
    // At version 2 the old names are unknown or invalid.
    let n = normalise(&studio::SCHEMA, &json!({ "fps": 24 }), Some(2)).unwrap();
    assert_eq!(n.warnings[0].key, "fps");
    assert_eq!(
        code(one(&studio::SCHEMA, "resolution", json!("hd"))),
        "invalid_value"
    );
}

#[test]
fn editor_input_of_versions_1_and_2_is_migrated_step_by_step() {
    let patch = json!({ "snap_to_grid": false, "keyboard_preset": "FCPX" });
    let n = normalise(&editor::SCHEMA, &patch, Some(1)).unwrap();
    assert_eq!(
        json!(n.set),
        json!({ "timeline_snapping": false, "keyboard_preset": "final-cut" })
    );
    // From version 2 only the later step applies: `snap_to_grid` was already gone.
    let n = normalise(&editor::SCHEMA, &patch, Some(2)).unwrap();
    assert_eq!(json!(n.set), json!({ "keyboard_preset": "final-cut" }));
    assert_eq!(n.warnings[0].key, "snap_to_grid");
    let errors = normalise(&editor::SCHEMA, &patch, Some(4)).unwrap_err();
    assert_eq!(errors[0].code, "unsupported_version");
    assert_eq!(errors[0].allowed, Some(json!({ "min": 1, "max": 3 })));
}

#[test]
fn the_studio_json_schema_describes_its_fields() {
    let s = json_schema(&studio::SCHEMA);
    assert_eq!(s["x-schema-version"], 2);
    let p = &s["properties"];
    assert_eq!(p.as_object().unwrap().len(), studio::SCHEMA.fields.len());
    assert_eq!(
        p["aspect_ratio"]["enum"],
        json!(["16:9", "9:16", "1:1", "4:5", "4:3", "21:9"])
    );
    assert_eq!(p["aspect_ratio"]["default"], "16:9");
    assert_eq!(
        p["resolution"]["enum"],
        json!(["720p", "1080p", "1440p", "2160p"])
    );
    assert_eq!(p["resolution"]["default"], "1080p");
    let frame_rate = &p["frame_rate"];
    assert_eq!(
        (
            &frame_rate["type"],
            &frame_rate["minimum"],
            &frame_rate["maximum"]
        ),
        (&json!("integer"), &json!(12), &json!(120))
    );
    assert_eq!(
        (&frame_rate["default"], &frame_rate["x-unit"]),
        (&json!(30), &json!("fps"))
    );
    assert_eq!(
        p["export_format"]["enum"],
        json!(["mp4", "mov", "webm", "gif"])
    );
    assert_eq!(p["watermark.enabled"]["default"], false);
    assert_eq!(p["watermark.text"]["maxLength"], 64);
    assert_eq!(p["brand_colours"]["maxItems"], 8);
    assert_eq!(p["brand_colours"]["items"]["pattern"], "^#[0-9a-fA-F]{6}$");
    for key in ["default_voice", "default_model"] {
        let providers: Vec<_> = p[key]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(providers, ["anthropic", "elevenlabs", "google", "openai"]);
        assert_eq!(p[key]["additionalProperties"], false);
        assert_eq!(p[key]["properties"]["openai"]["maxLength"], 100);
        assert_eq!(p[key]["default"], json!({}));
    }
}

#[test]
fn the_editor_json_schema_describes_its_fields() {
    let s = json_schema(&editor::SCHEMA);
    assert_eq!(s["x-schema-version"], 3);
    let p = &s["properties"];
    assert_eq!(p.as_object().unwrap().len(), editor::SCHEMA.fields.len());
    assert_eq!(p["theme"]["enum"], json!(["light", "dark", "system"]));
    assert_eq!(p["accent_colour"]["pattern"], "^#[0-9a-fA-F]{6}$");
    assert_eq!(
        p["accent_colour"]["x-fallback"],
        json!({ "take": "first_item", "key": "brand_colours" })
    );
    assert_eq!(p["timeline_snapping"]["type"], "boolean");
    let autosave = &p["autosave_interval_seconds"];
    assert_eq!(
        (&autosave["minimum"], &autosave["maximum"]),
        (&json!(10), &json!(600))
    );
    assert_eq!(
        (&autosave["default"], &autosave["x-unit"]),
        (&json!(30), &json!("seconds"))
    );
    let zoom = &p["default_zoom_percent"];
    assert_eq!(
        (&zoom["minimum"], &zoom["maximum"]),
        (&json!(10), &json!(400))
    );
    assert_eq!(zoom["default"], 100);
    assert_eq!(
        p["playback_quality"]["enum"],
        json!(["auto", "low", "medium", "high", "full"])
    );
    assert_eq!(
        p["keyboard_preset"]["enum"],
        json!(["default", "premiere", "final-cut", "davinci"])
    );
    assert_eq!(p["notifications.toasts"]["default"], true);
    assert_eq!(p["notifications.sounds"]["default"], false);
    assert_eq!(
        p["notifications.mentions"]["enum"],
        json!(["all", "direct", "none"])
    );
    assert_eq!(p["collaborator_cursors"]["default"], true);
}
