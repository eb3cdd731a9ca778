//! The chain's links and canonical bytes, and the chainer following a log.

use super::*;
use domain::Timestamp;
use serde_json::json;
use store::{Actor, Metadata};
use uuid::Uuid;

fn event(position: u64, data: serde_json::Value) -> RecordedEvent {
    RecordedEvent {
        position: GlobalPosition(position),
        stream: "account-0b1f7a4e-5d1c-4a7b-9a51-8c1c2a9d0e11".into(),
        revision: position - 1,
        event_id: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0 + position as u128),
        event_type: "ProfileChanged".into(),
        schema_version: 1,
        data,
        metadata: Metadata {
            correlation_id: Uuid::from_u128(7),
            causation_id: None,
            actor: Actor::System {
                component: "test".into(),
            },
            occurred_at: Timestamp::from_unix_micros(1_700_000_000_123_456),
            idempotency_key: None,
            data_subject: None,
        },
        recorded_at: Timestamp::from_unix_micros(1_700_000_000_654_321),
    }
}

#[test]
fn canonical_bytes_sort_keys_at_every_depth_without_whitespace() {
    let e = event(3, json!({"z": 1, "a": {"y": [true, null, "é"], "b": 2.5}}));
    let text = String::from_utf8(canonical_bytes(&e)).unwrap();
    assert!(
        text.starts_with(r#"{"data":{"a":{"b":2.5,"y":[true,null,"é"]},"z":1},"event_id":"#),
        "{text}"
    );
    assert!(text.contains(r#""position":3,"recorded_at":1700000000654321,"revision":2,"schema_version":1,"stream":"account-"#), "{text}");
    assert!(text.ends_with(r#""type":"ProfileChanged"}"#), "{text}");
    assert!(!text.contains(": ") && !text.contains(", "), "{text}");
}

#[test]
fn canonical_bytes_do_not_depend_on_the_order_keys_arrive_in() {
    let one: serde_json::Value =
        serde_json::from_str(r#"{"b": 1, "a": {"d": 2, "c": 3}}"#).unwrap();
    let two: serde_json::Value =
        serde_json::from_str(r#"{"a": {"c": 3, "d": 2}, "b": 1}"#).unwrap();
    assert_eq!(
        canonical_bytes(&event(1, one)),
        canonical_bytes(&event(1, two))
    );
}

#[test]
fn every_stored_field_is_covered() {
    let base = event(5, json!({"name": "sealed:abc"}));
    let original = link(&ChainHash::GENESIS, &base);
    let mut changes: Vec<RecordedEvent> = Vec::new();
    let mut e = base.clone();
    e.position = GlobalPosition(6);
    changes.push(e);
    let mut e = base.clone();
    e.stream.push('x');
    changes.push(e);
    let mut e = base.clone();
    e.revision += 1;
    changes.push(e);
    let mut e = base.clone();
    e.event_id = Uuid::nil();
    changes.push(e);
    let mut e = base.clone();
    e.event_type = "ProfileChangee".into();
    changes.push(e);
    let mut e = base.clone();
    e.schema_version = 2;
    changes.push(e);
    let mut e = base.clone();
    e.data = json!({"name": "sealed:abd"});
    changes.push(e);
    let mut e = base.clone();
    e.metadata.idempotency_key = Some("k".into());
    changes.push(e);
    let mut e = base.clone();
    e.recorded_at = Timestamp::from_unix_micros(1);
    changes.push(e);
    for changed in &changes {
        assert_ne!(link(&ChainHash::GENESIS, changed), original, "{changed:?}");
    }
    assert_ne!(
        link(&ChainHash([1; 32]), &base),
        original,
        "the previous hash"
    );
}

/// The format is fixed: a change here means every chain already stored stops
/// verifying, which needs a new `DOMAIN` version, not a new expected value.
#[test]
fn the_hash_of_a_known_event_is_pinned() {
    let e = event(
        1,
        json!({"email": "sealed:v1:AAAA", "at": "2023-11-14T22:13:20Z"}),
    );
    let mut hasher = Sha256::new();
    hasher.update(b"accounts.event-chain.v1\n");
    hasher.update([0u8; 32]);
    hasher.update(canonical_bytes(&e));
    let expected: [u8; 32] = hasher.finalize().into();
    assert_eq!(link(&ChainHash::GENESIS, &e).0, expected);
    assert_eq!(
        String::from_utf8(canonical_bytes(&e)).unwrap(),
        concat!(
            r#"{"data":{"at":"2023-11-14T22:13:20Z","email":"sealed:v1:AAAA"},"#,
            r#""event_id":"12345678-9abc-def0-1234-56789abcdef1","#,
            r#""metadata":{"actor":{"component":"test","kind":"system"},"causation_id":null,"#,
            r#""correlation_id":"00000000-0000-0000-0000-000000000007","#,
            r#""occurred_at":"2023-11-14T22:13:20.123456Z"},"#,
            r#""position":1,"recorded_at":1700000000654321,"revision":0,"schema_version":1,"#,
            r#""stream":"account-0b1f7a4e-5d1c-4a7b-9a51-8c1c2a9d0e11","type":"ProfileChanged"}"#
        )
    );
}

#[test]
fn the_fold_links_each_event_to_the_one_before() {
    let events: Vec<_> = (1..=4).map(|p| event(p, json!({"n": p}))).collect();
    let links = fold(ChainHash::GENESIS, &events);
    assert_eq!(links.len(), 4);
    let mut previous = ChainHash::GENESIS;
    for ((position, hash), event) in links.iter().zip(&events) {
        assert_eq!(*position, event.position);
        assert_eq!(*hash, link(&previous, event));
        previous = *hash;
    }
    // Folding in two batches gives the same chain as one.
    let (first, rest) = events.split_at(2);
    let mut twice = fold(ChainHash::GENESIS, first);
    twice.extend(fold(twice[1].1, rest));
    assert_eq!(twice, links);
    // Editing one event changes its link and every later one, none before.
    let mut edited = events.clone();
    edited[1].data = json!({"n": 20});
    let relinked = fold(ChainHash::GENESIS, &edited);
    assert_eq!(relinked[0], links[0]);
    for n in 1..4 {
        assert_ne!(relinked[n].1, links[n].1);
    }
}

#[test]
fn hashes_and_anchors_parse() {
    let hash = link(&ChainHash::GENESIS, &event(1, json!({})));
    assert_eq!(hash.to_hex().parse::<ChainHash>().unwrap(), hash);
    assert!("abc".parse::<ChainHash>().is_err());
    let anchor: Anchor = format!("42:{hash}").parse().unwrap();
    assert_eq!(anchor.position, GlobalPosition(42));
    assert_eq!(anchor.hash, hash);
    assert!(format!("0:{hash}").parse::<Anchor>().is_err());
    assert!(hash.to_hex().parse::<Anchor>().is_err());
    assert!("x:00".parse::<Anchor>().is_err());
}
