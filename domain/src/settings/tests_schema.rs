//! given a schema / when it is described as JSON Schema or checked / then what a form needs,
//! and every mistake named.

use super::tests_normalise::SAMPLE;
use super::*;
use serde_json::json;

#[test]
fn the_document_is_a_draft_2020_12_object_with_its_version() {
    let s = json_schema(&SAMPLE);
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert_eq!(s["type"], "object");
    assert_eq!(s["title"], "Sample");
    assert_eq!(s["x-schema-name"], "sample");
    assert_eq!(s["x-schema-version"], 2);
    assert!(s["$comment"].as_str().unwrap().starts_with("Version 2."));
    assert_eq!(s["additionalProperties"], true);
    let keys: Vec<_> = s["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut fields: Vec<_> = SAMPLE.fields.iter().map(|f| f.key.to_owned()).collect();
    fields.sort();
    assert_eq!(keys, fields);
}

#[test]
fn each_kind_is_described_with_its_constraints_and_default() {
    let p = &json_schema(&SAMPLE)["properties"];
    assert_eq!(
        p["flag"],
        json!({ "type": "boolean", "default": false, "description": "A flag.", "x-kind": "boolean" })
    );
    assert_eq!(
        p["count"],
        json!({ "type": "integer", "minimum": 1, "maximum": 10, "x-unit": "items",
                "default": 5, "description": "A count.", "x-kind": "integer" })
    );
    assert_eq!(
        p["mode"],
        json!({ "type": "string", "enum": ["fast", "Slow-Mode"], "default": "fast",
                "description": "A mode.", "x-kind": "enum" })
    );
    assert_eq!(
        p["tint"],
        json!({ "type": "string", "pattern": "^#[0-9a-fA-F]{6}$", "default": "#112233",
                "description": "A colour.", "x-kind": "colour" })
    );
    assert_eq!(
        p["palette"],
        json!({ "type": "array", "items": { "type": "string", "pattern": "^#[0-9a-fA-F]{6}$" },
                "maxItems": 2, "default": ["#000000"], "description": "Colours.",
                "x-kind": "colour_list" })
    );
    assert_eq!(
        p["label"],
        json!({ "type": "string", "maxLength": 5, "default": "", "description": "A label.",
                "x-kind": "text" })
    );
    let entry = json!({ "type": "string", "minLength": 1, "maxLength": 5 });
    assert_eq!(
        p["voice"],
        json!({ "type": "object", "properties": { "openai": entry, "elevenlabs": entry },
                "additionalProperties": false, "default": { "openai": "alloy" },
                "description": "Voices.", "x-kind": "text_map" })
    );
    assert_eq!(
        p["group.size"]["x-fallback"],
        json!({ "take": "field", "key": "size" })
    );
    assert!(p["count"].get("x-fallback").is_none());
}

static BROKEN: Schema = Schema {
    name: "broken",
    title: "Broken",
    description: "Every mistake.",
    version: 3,
    fields: &[
        Field::new("Bad Key", Kind::Boolean { default: true }, ""),
        Field::new(VERSION_KEY, Kind::Boolean { default: true }, ""),
        Field::new("twice", Kind::Boolean { default: true }, ""),
        Field::new("twice", Kind::Boolean { default: true }, ""),
        Field::new(
            "far",
            Kind::Integer {
                min: 0,
                max: 5,
                unit: None,
                default: 9,
            },
            "",
        ),
        Field::new("shouty", Kind::Colour { default: "#ABCDEF" }, ""),
        Field::new(
            "cased",
            Kind::Enum {
                values: &["a", "A"],
                default: "a",
            },
            "",
        ),
        Field::new("lost", Kind::Boolean { default: true }, "")
            .falls_back_to(Fallback::Field("nowhere")),
        Field::new("mismatched", Kind::Boolean { default: true }, "")
            .falls_back_to(Fallback::Field("count")),
        Field::new("first", Kind::Boolean { default: true }, "")
            .falls_back_to(Fallback::FirstItem("palette")),
    ],
    migrations: &[Migration {
        from: 2,
        steps: &[],
    }],
};

#[test]
fn a_broken_schema_names_every_mistake() {
    let problems = BROKEN.problems(Some(&SAMPLE));
    let expected = [
        "version 3 needs 2 migrations",
        "migration 0 must upgrade from version 1",
        "`Bad Key` is not a valid key",
        "`schema_version` is not a valid key",
        "`twice` is declared twice",
        "`far`: the default is not a canonical value",
        "`shouty`: the default is not a canonical value",
        "`cased`: values empty or equal but for case",
        "`lost` falls back to unknown `nowhere`",
        "`mismatched` falls back to a field of another kind",
        "`first`: a first item is a colour of a colour list",
    ];
    let expected: Vec<_> = expected.iter().map(|p| format!("broken: {p}")).collect();
    assert_eq!(problems, expected);
    assert!(
        BROKEN
            .problems(None)
            .contains(&"broken: `lost` has a fallback but no fallback schema".to_owned())
    );
}

/// The layer `SAMPLE`'s `group.size` falls back to.
static LAYER: Schema = Schema {
    name: "layer",
    title: "Layer",
    description: "What `sample` falls back to.",
    version: 1,
    fields: &[Field::new(
        "size",
        Kind::Integer {
            min: 0,
            max: 9,
            unit: None,
            default: 0,
        },
        "",
    )],
    migrations: &[],
};

#[test]
fn the_sample_schema_is_sound() {
    assert_eq!(SAMPLE.problems(Some(&LAYER)), Vec::<String>::new());
    assert_eq!(LAYER.problems(None), Vec::<String>::new());
}
