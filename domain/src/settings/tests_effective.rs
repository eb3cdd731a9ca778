//! given stored values and a fallback layer / when the effective settings are computed or a
//! change is folded / then each value and where it comes from.

use super::tests_normalise::SAMPLE;
use super::*;
use serde_json::json;

fn values(v: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).unwrap()
}

fn lookup(entries: &[EffectiveValue], key: &str) -> (Value, Source) {
    let e = entries.iter().find(|e| e.key == key).expect(key);
    (e.value.clone(), e.source)
}

#[test]
fn stored_beats_fallback_beats_default() {
    let fallback = values(json!({ "size": 2 }));
    let none = effective(&SAMPLE, &BTreeMap::new(), &fallback);
    assert_eq!(lookup(&none, "group.size"), (json!(2), Source::Fallback));
    assert_eq!(lookup(&none, "count"), (json!(5), Source::Default));
    let stored = values(json!({ "group.size": 0, "count": 9 }));
    let mine = effective(&SAMPLE, &stored, &fallback);
    assert_eq!(lookup(&mine, "group.size"), (json!(0), Source::User));
    assert_eq!(lookup(&mine, "count"), (json!(9), Source::User));
    let keys: Vec<_> = mine.iter().map(|e| e.key.as_str()).collect();
    let fields: Vec<_> = SAMPLE.fields.iter().map(|f| f.key).collect();
    assert_eq!(keys, fields, "every field, in the schema's order");
}

#[test]
fn values_a_field_does_not_accept_are_skipped_layer_by_layer() {
    // A stored value out of today's range, a fallback value out of this field's range.
    let stored = values(json!({ "count": 99, "stray": true }));
    let fallback = values(json!({ "size": 7 }));
    let entries = effective(&SAMPLE, &stored, &fallback);
    assert_eq!(lookup(&entries, "count"), (json!(5), Source::Default));
    assert_eq!(lookup(&entries, "group.size"), (json!(1), Source::Default));
    assert!(entries.iter().all(|e| e.key != "stray"));
}

#[test]
fn the_editor_accent_falls_back_to_the_workspace_primary_brand_colour() {
    let studio = values(json!({ "brand_colours": ["#ff0066", "#000000"] }));
    let entries = effective(&editor::SCHEMA, &BTreeMap::new(), &studio);
    assert_eq!(
        lookup(&entries, "accent_colour"),
        (json!("#ff0066"), Source::Fallback)
    );
    assert_eq!(
        lookup(&entries, "theme"),
        (json!("system"), Source::Default)
    );
    // No brand colour: the built-in accent.
    let studio = values(json!({ "brand_colours": [] }));
    let entries = effective(&editor::SCHEMA, &BTreeMap::new(), &studio);
    assert_eq!(
        lookup(&entries, "accent_colour"),
        (json!("#7c3aed"), Source::Default)
    );
    // The user's own choice wins.
    let mine = values(json!({ "accent_colour": "#123456" }));
    let entries = effective(&editor::SCHEMA, &mine, &studio);
    assert_eq!(
        lookup(&entries, "accent_colour"),
        (json!("#123456"), Source::User)
    );
}

#[test]
fn effective_values_serialise_with_their_source() {
    let entries = effective(&SAMPLE, &values(json!({ "flag": true })), &BTreeMap::new());
    assert_eq!(
        json!(entries[0]),
        json!({ "key": "flag", "value": true, "source": "user" })
    );
    assert_eq!(json!(entries[1].source), json!("default"));
    assert_eq!(json!(Source::Fallback), json!("fallback"));
}

#[test]
fn a_change_folds_into_stored_values() {
    let mut stored = values(json!({ "flag": true, "count": 3 }));
    let n = normalise(
        &SAMPLE,
        &json!({ "count": null, "mode": "SLOW-MODE" }),
        None,
    )
    .unwrap();
    n.apply_to(&mut stored);
    assert_eq!(json!(stored), json!({ "flag": true, "mode": "Slow-Mode" }));
    apply(
        &mut stored,
        &values(json!({ "flag": false })),
        &["mode".to_owned()],
    );
    assert_eq!(json!(stored), json!({ "flag": false }));
}

#[test]
fn changes_keep_only_what_differs_from_the_stored_values() {
    let stored = values(json!({ "flag": true, "count": 3 }));
    let n = normalise(
        &SAMPLE,
        &json!({ "flag": true, "count": 4, "tint": null, "mode": null, "x": 1 }),
        None,
    )
    .unwrap();
    let changes = n.changes(&stored);
    assert_eq!(json!(changes.set), json!({ "count": 4 }));
    assert!(changes.resets.is_empty(), "nothing stored to reset");
    assert_eq!(changes.warnings, n.warnings);
    assert!(!changes.is_empty());
    let again = normalise(&SAMPLE, &json!({ "flag": true, "count": 3 }), None).unwrap();
    assert!(again.changes(&stored).is_empty());
    let reset = normalise(&SAMPLE, &json!({ "flag": null }), None).unwrap();
    assert_eq!(reset.changes(&stored).resets, ["flag"]);
}

#[test]
fn the_full_cycle_patch_fold_and_read_back() {
    let mut stored = BTreeMap::new();
    let patch = json!({ "snap_to_grid": false, "keyboard_preset": "Resolve", "theme": "DARK" });
    let n = normalise(&editor::SCHEMA, &patch, Some(1)).unwrap();
    n.changes(&stored).apply_to(&mut stored);
    let entries = effective(&editor::SCHEMA, &stored, &BTreeMap::new());
    assert_eq!(
        lookup(&entries, "timeline_snapping"),
        (json!(false), Source::User)
    );
    assert_eq!(
        lookup(&entries, "keyboard_preset"),
        (json!("davinci"), Source::User)
    );
    assert_eq!(lookup(&entries, "theme"), (json!("dark"), Source::User));
    let n = normalise(&editor::SCHEMA, &json!({ "theme": null }), None).unwrap();
    n.changes(&stored).apply_to(&mut stored);
    let entries = effective(&editor::SCHEMA, &stored, &BTreeMap::new());
    assert_eq!(
        lookup(&entries, "theme"),
        (json!("system"), Source::Default)
    );
}

#[test]
fn stored_values_of_an_older_version_migrate_like_input() {
    let old = values(json!({ "fps": 25, "resolution": "4K", "gone": 1 }));
    let now = migrate(&studio::SCHEMA, old, 1).unwrap();
    assert_eq!(
        json!(now),
        json!({ "frame_rate": 25, "resolution": "2160p", "gone": 1 })
    );
}
