//! The event catalogue against the codec and a real (SQLite) log: every event type has a
//! sample, every sample is stored and read back unchanged, every declared personal field
//! is sealed (no plain-text trace of it in the stored JSON), and every stream category
//! decodes to events.

mod samples;
mod workspace_samples;

use commands::codec::{EventCodec, SEALED_FIELD};
use commands::{Clock, Payload, SystemClock};
use domain::{DomainEvent, StreamCategory};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use store::testkit::TestSqlite;
use store::{Actor, Database, ExpectedRevision, Metadata, RecordedEvent};
use uuid::Uuid;
use vault::{DataKeys, MasterKey};

/// A sample as the log holds it.
struct Stored {
    sample: DomainEvent,
    recorded: RecordedEvent,
}

/// Appends every sample, each to a stream of its own category, and reads them back.
async fn store_every_sample() -> (EventCodec, Vec<Stored>, TestSqlite) {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 2).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let codec = EventCodec::new(Arc::new(DataKeys::new(db, &MasterKey::generate())));
    let subject = Uuid::new_v4();
    codec
        .keys()
        .create(subject, SystemClock.now())
        .await
        .unwrap();

    let mut stored = Vec::new();
    for sample in samples::all() {
        let stream = sample.category().stream(Uuid::new_v4());
        let metadata = Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: "catalogue-test".into(),
            },
            occurred_at: SystemClock.now(),
            idempotency_key: None,
            data_subject: Some(subject),
        };
        let new = codec
            .encode(&stream, Uuid::new_v4(), &sample, metadata)
            .await
            .unwrap();
        log.append(&stream, ExpectedRevision::NoStream, vec![new])
            .await
            .unwrap();
        let mut read = log.read_stream_to_end(&stream).await.unwrap();
        assert_eq!(read.len(), 1, "{stream}");
        stored.push(Stored {
            sample,
            recorded: read.remove(0),
        });
    }
    (codec, stored, file)
}

/// Every string inside a JSON value.
fn string_leaves(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| string_leaves(item, into)),
        Value::Object(fields) => fields.values().for_each(|field| string_leaves(field, into)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[test]
fn every_event_type_has_a_sample_tagged_with_its_declared_name() {
    let declared: BTreeSet<(&str, &str)> = StreamCategory::ALL
        .into_iter()
        .flat_map(|category| {
            category
                .declarations()
                .iter()
                .map(move |declaration| (category.prefix(), declaration.event_type))
        })
        .collect();
    let mut sampled = BTreeSet::new();
    for sample in samples::all() {
        let key = (sample.category().prefix(), sample.event_type());
        assert!(sampled.insert(key), "two samples of {key:?}");
        let json = serde_json::to_value(&sample).unwrap();
        assert_eq!(
            json["type"],
            sample.event_type(),
            "serde's tag is the type name"
        );
    }
    let missing: Vec<_> = declared.difference(&sampled).collect();
    assert!(
        missing.is_empty(),
        "event types without a sample in commands/tests/catalogue/samples.rs: {missing:?}"
    );
    assert_eq!(declared, sampled);
}

#[tokio::test]
async fn every_event_type_round_trips_through_the_codec_and_the_log() {
    let (codec, stored, _file) = store_every_sample().await;
    for Stored { sample, recorded } in stored {
        assert_eq!(recorded.event_type, sample.event_type());
        assert_eq!(recorded.schema_version, sample.schema_version());
        assert!(
            recorded.data.get("type").is_none(),
            "the type is stored beside the data: {}",
            recorded.data
        );
        let decoded = codec.decode(recorded).await.unwrap();
        assert_eq!(decoded.payload, Payload::Event(sample));
    }
}

#[tokio::test]
async fn declared_personal_fields_leave_no_plain_text_trace_and_open_again() {
    let (codec, stored, _file) = store_every_sample().await;
    let mut checked = 0;
    for Stored { sample, recorded } in stored {
        let event_type = sample.event_type();
        let plain = serde_json::to_value(&sample).unwrap();
        let text = recorded.data.to_string();
        let personal = sample.personal_fields();
        assert_eq!(
            recorded.data.get(SEALED_FIELD).is_some(),
            !personal.is_empty(),
            "{event_type} is sealed exactly when it declares personal fields: {text}"
        );
        let mut leaves = Vec::new();
        for field in personal {
            assert!(
                recorded.data.get(*field).is_none(),
                "{field} stored: {text}"
            );
            let value = plain.get(*field).filter(|value| !value.is_null());
            let value = value.unwrap_or_else(|| panic!("the {event_type} sample sets {field}"));
            let before = leaves.len();
            string_leaves(value, &mut leaves);
            assert!(
                leaves.len() > before,
                "the {event_type} sample gives {field} a string to search for"
            );
        }
        let decoded = codec.decode(recorded).await.unwrap();
        let Payload::Event(opened) = decoded.payload else {
            panic!("{event_type} opens: {decoded:?}")
        };
        let opened = serde_json::to_value(&opened).unwrap().to_string();
        for leaf in leaves {
            assert!(
                leaf.chars().count() >= 8,
                "{leaf:?} is too short to search for"
            );
            assert!(!text.contains(&leaf), "{leaf:?} stored in clear: {text}");
            assert!(opened.contains(&leaf), "{leaf:?} missing once opened");
            checked += 1;
        }
    }
    let declared: usize = StreamCategory::ALL
        .into_iter()
        .flat_map(|category| category.declarations())
        .map(|declaration| declaration.personal_fields.len())
        .sum();
    assert!(
        checked >= declared,
        "{checked} strings for {declared} fields"
    );
}

#[tokio::test]
async fn every_stream_category_decodes_to_its_events() {
    let (codec, stored, _file) = store_every_sample().await;
    let mut decoded_categories = BTreeSet::new();
    for Stored { sample, recorded } in stored {
        let category = StreamCategory::of_stream(&recorded.stream);
        assert_eq!(category, Some(sample.category()), "{}", recorded.stream);
        let decoded = codec.decode(recorded).await.unwrap();
        let Payload::Event(event) = decoded.payload else {
            panic!(
                "{} decodes as {:?}",
                decoded.envelope.stream, decoded.payload
            )
        };
        assert_eq!(event.category(), sample.category());
        decoded_categories.insert(event.category().prefix());
    }
    let all: BTreeSet<_> = StreamCategory::ALL.iter().map(|c| c.prefix()).collect();
    assert_eq!(decoded_categories, all);
}
