//! given a schema / when a patch is normalised / then canonical values, resets, warnings or
//! every error. Uses a synthetic schema holding one field of each kind.

use super::*;
use serde_json::json;

/// One field of each kind, version 2 (v1 called `flag` `old_flag` and `fast` `quick`).
pub(super) static SAMPLE: Schema = Schema {
    name: "sample",
    title: "Sample",
    description: "One field of each kind.",
    version: 2,
    fields: &[
        Field::new("flag", Kind::Boolean { default: false }, "A flag."),
        Field::new(
            "count",
            Kind::Integer {
                min: 1,
                max: 10,
                unit: Some("items"),
                default: 5,
            },
            "A count.",
        ),
        Field::new(
            "mode",
            Kind::Enum {
                values: &["fast", "Slow-Mode"],
                default: "fast",
            },
            "A mode.",
        ),
        Field::new("tint", Kind::Colour { default: "#112233" }, "A colour."),
        Field::new(
            "palette",
            Kind::ColourList {
                max_items: 2,
                default: &["#000000"],
            },
            "Colours.",
        ),
        Field::new(
            "label",
            Kind::Text {
                max_length: 5,
                default: "",
            },
            "A label.",
        ),
        Field::new(
            "voice",
            Kind::TextMap {
                keys: &["openai", "elevenlabs"],
                max_length: 5,
                default: &[("openai", "alloy")],
            },
            "Voices.",
        ),
        Field::new(
            "group.size",
            Kind::Integer {
                min: 0,
                max: 3,
                unit: None,
                default: 1,
            },
            "A size, from the other layer's `size`.",
        )
        .falls_back_to(Fallback::Field("size")),
    ],
    migrations: &[Migration {
        from: 1,
        steps: &[
            Step::RenameKey {
                from: "old_flag",
                to: "flag",
            },
            Step::RenameValue {
                key: "mode",
                from: "quick",
                to: "fast",
            },
        ],
    }],
};

pub(super) fn ok(input: Value) -> Normalised {
    normalise(&SAMPLE, &input, None).expect("accepted")
}

pub(super) fn refused(input: Value) -> Vec<FieldError> {
    normalise(&SAMPLE, &input, None).expect_err("refused")
}

fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
    errors.iter().map(|e| (e.key.as_str(), e.code)).collect()
}

#[test]
fn a_valid_patch_is_made_canonical() {
    let n = ok(json!({
        "flag": true,
        "count": 7.0,
        "mode": "SLOW-MODE",
        "tint": "#ABCDEF",
        "palette": ["#FFFFFF", "#00aa00"],
        "label": "  hi  ",
        "voice": {"OpenAI": "nova", "elevenlabs": null, "ElevenLabs": " "},
        "group.size": 3,
    }));
    let expected = json!({
        "flag": true,
        "count": 7,
        "mode": "Slow-Mode",
        "tint": "#abcdef",
        "palette": ["#ffffff", "#00aa00"],
        "label": "hi",
        "voice": {"openai": "nova"},
        "group.size": 3,
    });
    assert_eq!(json!(n.set), expected);
    assert!(n.resets.is_empty() && n.warnings.is_empty());
}

#[test]
fn enums_match_without_regard_to_case_and_refuse_others_with_their_values() {
    for spelling in ["fast", "FAST", "Fast"] {
        assert_eq!(ok(json!({ "mode": spelling })).set["mode"], json!("fast"));
    }
    let errors = refused(json!({ "mode": "slow" }));
    assert_eq!(codes(&errors), [("mode", "invalid_value")]);
    assert_eq!(errors[0].allowed, Some(json!(["fast", "Slow-Mode"])));
}

#[test]
fn unknown_keys_are_dropped_with_a_warning() {
    let n = ok(json!({ "flag": true, "shiny": 1, "other": null }));
    assert_eq!(json!(n.set), json!({ "flag": true }));
    assert!(n.resets.is_empty(), "null for an unknown key is no reset");
    let warned: Vec<_> = n
        .warnings
        .iter()
        .map(|w| (w.key.as_str(), w.code))
        .collect();
    assert_eq!(warned, [("other", "unknown_key"), ("shiny", "unknown_key")]);
    assert!(n.warnings[1].message.contains("shiny"));
}

#[test]
fn null_resets_a_key_distinctly() {
    let n = ok(json!({ "count": null, "tint": null, "flag": false }));
    assert_eq!(n.resets, ["count", "tint"]);
    assert_eq!(json!(n.set), json!({ "flag": false }));
}

#[test]
fn integers_are_inclusive_and_out_of_range_names_the_range() {
    assert_eq!(ok(json!({ "count": 1 })).set["count"], json!(1));
    assert_eq!(ok(json!({ "count": 10 })).set["count"], json!(10));
    for outside in [
        json!(0),
        json!(11),
        json!(-3),
        json!(1e300),
        json!(u64::MAX),
    ] {
        let errors = refused(json!({ "count": outside }));
        assert_eq!(codes(&errors), [("count", "out_of_range")]);
        assert_eq!(errors[0].allowed, Some(json!({ "min": 1, "max": 10 })));
        assert!(errors[0].message.contains("between 1 and 10 items"));
    }
}

#[test]
fn integral_floats_are_integers_and_fractions_are_not() {
    assert_eq!(ok(json!({ "count": 7.0 })).set["count"], json!(7));
    assert!(ok(json!({ "count": 7.0 })).set["count"].is_i64());
    for wrong in [json!(7.5), json!("7"), json!(true), json!([7])] {
        assert_eq!(
            codes(&refused(json!({ "count": wrong }))),
            [("count", "invalid_type")]
        );
    }
}

#[test]
fn wrong_types_are_refused_for_every_kind_and_all_errors_are_collected() {
    let errors = refused(json!({
        "flag": "true",
        "count": "5",
        "mode": 1,
        "tint": 0x112233,
        "palette": "#000000",
        "label": 5,
        "voice": ["nova"],
        "unknown": "still only a warning",
    }));
    assert_eq!(
        codes(&errors),
        [
            ("count", "invalid_type"),
            ("flag", "invalid_type"),
            ("label", "invalid_type"),
            ("mode", "invalid_type"),
            ("palette", "invalid_type"),
            ("tint", "invalid_type"),
            ("voice", "invalid_type"),
        ]
    );
}

#[test]
fn colours_are_hash_and_six_hex_digits_stored_in_lowercase() {
    assert_eq!(
        ok(json!({ "tint": "#A0b1C2" })).set["tint"],
        json!("#a0b1c2")
    );
    for wrong in [
        "#abc", "abcdef", "#gggggg", "#abcdef0", "##bcdef", "", "#ÄÄÄ",
    ] {
        let errors = refused(json!({ "tint": wrong }));
        assert_eq!(codes(&errors), [("tint", "invalid_value")], "{wrong}");
        assert_eq!(
            errors[0].allowed,
            Some(json!({ "pattern": "^#[0-9a-fA-F]{6}$" }))
        );
    }
}

#[test]
fn colour_lists_have_a_maximum_and_every_bad_item_is_named() {
    assert_eq!(ok(json!({ "palette": [] })).set["palette"], json!([]));
    let errors = refused(json!({ "palette": ["#000000", "#111111", "#222222"] }));
    assert_eq!(codes(&errors), [("palette", "too_many_items")]);
    assert_eq!(errors[0].allowed, Some(json!({ "max_items": 2 })));
    let errors = refused(json!({ "palette": ["red", "#000000", 3] }));
    assert_eq!(
        codes(&errors),
        [
            ("palette", "too_many_items"),
            ("palette", "invalid_value"),
            ("palette", "invalid_type")
        ]
    );
    assert!(errors[1].message.starts_with("item 0"));
    assert!(errors[2].message.starts_with("item 2"));
}

#[test]
fn texts_are_trimmed_counted_in_characters_and_free_of_control_characters() {
    assert_eq!(ok(json!({ "label": "ééééé" })).set["label"], json!("ééééé"));
    let errors = refused(json!({ "label": "sixsix" }));
    assert_eq!(codes(&errors), [("label", "too_long")]);
    assert_eq!(errors[0].allowed, Some(json!({ "max_length": 5 })));
    assert_eq!(
        codes(&refused(json!({ "label": "a\u{7}b" }))),
        [("label", "invalid_value")]
    );
}

#[test]
fn maps_take_only_their_keys_in_any_case() {
    let errors = refused(json!({ "voice": { "mistral": "x", "azure": "y", "openai": "nova" } }));
    assert_eq!(
        codes(&errors),
        [("voice", "invalid_value"), ("voice", "invalid_value")]
    );
    assert_eq!(errors[0].allowed, Some(json!(["openai", "elevenlabs"])));
    assert!(errors[0].message.contains("azure") && errors[1].message.contains("mistral"));
    let errors = refused(json!({ "voice": { "openai": "toolong", "elevenlabs": 3 } }));
    assert_eq!(
        codes(&errors),
        [("voice", "invalid_type"), ("voice", "too_long")]
    );
    let errors = refused(json!({ "voice": { "openai": "a", "OPENAI": "b" } }));
    assert_eq!(codes(&errors), [("voice", "invalid_value")]);
    assert_eq!(ok(json!({ "voice": {} })).set["voice"], json!({}));
}

#[test]
fn a_document_that_is_not_an_object_is_refused_as_a_whole() {
    for wrong in [json!([]), json!(null), json!("x")] {
        assert_eq!(codes(&refused(wrong)), [("", "invalid_type")]);
    }
}

#[test]
fn input_of_an_older_version_is_migrated_first() {
    let n = normalise(
        &SAMPLE,
        &json!({ "old_flag": true, "mode": "Quick" }),
        Some(1),
    )
    .unwrap();
    assert_eq!(json!(n.set), json!({ "flag": true, "mode": "fast" }));
    assert!(n.warnings.is_empty());
    // A renamed key given as null resets the new key.
    let n = normalise(&SAMPLE, &json!({ "old_flag": null }), Some(1)).unwrap();
    assert_eq!(n.resets, ["flag"]);
    // At the current version the old names mean nothing.
    let n = ok(json!({ "old_flag": true }));
    assert_eq!(n.warnings[0].key, "old_flag");
    assert_eq!(
        codes(&refused(json!({ "mode": "quick" }))),
        [("mode", "invalid_value")]
    );
}

#[test]
fn a_version_unknown_to_the_schema_is_refused() {
    for version in [0, 3, u32::MAX] {
        let errors = normalise(&SAMPLE, &json!({ "flag": true }), Some(version)).unwrap_err();
        assert_eq!(codes(&errors), [(VERSION_KEY, "unsupported_version")]);
        assert_eq!(errors[0].allowed, Some(json!({ "min": 1, "max": 2 })));
    }
    assert!(normalise(&SAMPLE, &json!({ "flag": true }), Some(2)).is_ok());
}

#[test]
fn results_serialise_as_the_api_answers_them() {
    let n = ok(json!({ "flag": true, "count": null, "x": 1 }));
    assert_eq!(
        json!(n),
        json!({
            "set": { "flag": true },
            "resets": ["count"],
            "warnings": [{ "key": "x", "code": "unknown_key", "message": "`x` is not a setting of sample; ignored" }],
        })
    );
    let errors = refused(json!({ "count": 11, "flag": 1 }));
    assert_eq!(
        json!(errors),
        json!([
            { "key": "count", "code": "out_of_range", "message": "must be between 1 and 10 items", "allowed": { "min": 1, "max": 10 } },
            { "key": "flag", "code": "invalid_type", "message": "must be true or false" },
        ])
    );
}
