//! The mapping onto KurrentDB, and the URLs the backend takes, without a server.

use super::*;
use crate::envelope::Actor;
use crate::kurrentdb::is_kurrentdb_url;
use kurrentdb::ClientSettings;

fn new_event(n: u32) -> NewEvent {
    NewEvent {
        event_id: Uuid::from_u128(u128::from(n) + 1),
        event_type: "EmailChanged".into(),
        schema_version: 2,
        data: serde_json::json!({ "n": n, "email": "sealed:…" }),
        metadata: Metadata {
            correlation_id: Uuid::from_u128(0xc0),
            causation_id: Some(Uuid::from_u128(0xca)),
            actor: Actor::System {
                component: "test".into(),
            },
            occurred_at: Timestamp::from_unix_micros(1_800_000_000_123_456),
            idempotency_key: Some("key-1".into()),
            data_subject: Some(Uuid::from_u128(0xac)),
        },
    }
}

fn recorded(n: u32, position: u64) -> RecordedEvent {
    let e = new_event(n);
    RecordedEvent {
        position: GlobalPosition(position),
        stream: "account-1".into(),
        revision: u64::from(n),
        event_id: e.event_id,
        event_type: e.event_type,
        schema_version: e.schema_version,
        data: e.data,
        metadata: e.metadata,
        recorded_at: Timestamp::from_unix_micros(0),
    }
}

#[test]
fn expected_revisions_map_exactly() {
    assert_eq!(stream_state(ExpectedRevision::Any), StreamState::Any);
    assert_eq!(
        stream_state(ExpectedRevision::NoStream),
        StreamState::NoStream
    );
    assert_eq!(
        stream_state(ExpectedRevision::Exact(0)),
        StreamState::StreamRevision(0)
    );
    assert_eq!(
        stream_state(ExpectedRevision::Exact(41)),
        StreamState::StreamRevision(41)
    );
    // A stream holding n events is at revision n - 1 on both sides.
    assert_eq!(
        stream_state(ExpectedRevision::after(3)),
        StreamState::StreamRevision(2)
    );
}

#[test]
fn a_wrong_expected_version_is_the_typed_conflict() {
    let e = classify(
        "account-1",
        ExpectedRevision::Exact(5),
        kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(5),
            current: CurrentRevision::Current(0),
        },
    );
    assert!(e.is_conflict());
    assert!(matches!(
        e,
        StoreError::WrongExpectedRevision {
            ref stream,
            expected: ExpectedRevision::Exact(5),
            actual: Some(0),
        } if stream == "account-1"
    ));
    let missing = classify(
        "account-2",
        ExpectedRevision::Exact(0),
        kurrentdb::Error::WrongExpectedVersion {
            expected: StreamState::StreamRevision(0),
            current: CurrentRevision::NoStream,
        },
    );
    assert!(matches!(
        missing,
        StoreError::WrongExpectedRevision { actual: None, .. }
    ));
}

#[test]
fn other_errors_are_failures_not_conflicts() {
    for error in [
        kurrentdb::Error::AccessDenied,
        kurrentdb::Error::DeadlineExceeded,
        kurrentdb::Error::ConnectionClosed,
        kurrentdb::Error::ResourceDeleted,
    ] {
        let e = classify("account-1", ExpectedRevision::Any, error);
        assert!(!e.is_conflict(), "{e:?}");
        assert!(matches!(e, StoreError::EventStore(_)), "{e:?}");
    }
}

#[test]
fn positions_are_commit_positions() {
    let p = |commit, prepare| Position { commit, prepare };
    assert_eq!(position_of(p(4096, 4096)), GlobalPosition(4096));
    assert_eq!(position_of(p(4096, 4000)), GlobalPosition(4096));
    // A stream read on an older server has no commit position.
    assert_eq!(position_of(p(u64::MAX, 777)), GlobalPosition(777));

    assert_eq!(written_position(p(1234, 1234)), Some(GlobalPosition(1234)));
    // "No position" in an append's answer arrives as (0, 0).
    assert_eq!(written_position(p(0, 0)), None);
    assert_eq!(written_position(p(u64::MAX, u64::MAX)), None);

    assert!(matches!(
        all_position(GlobalPosition::START),
        StreamPosition::Start
    ));
    assert!(matches!(
        all_position(GlobalPosition(99)),
        StreamPosition::Position(Position {
            commit: 99,
            prepare: 99
        })
    ));
}

#[test]
fn system_events_are_not_the_services() {
    assert!(is_system("$stats-127.0.0.1:2113", "$statsCollected"));
    assert!(is_system("$$account-1", "$metadata"));
    assert!(is_system("account-by-email", "$>"));
    assert!(!is_system("account-1", "EmailChanged"));
}

#[test]
fn connection_strings_are_recognised_by_scheme() {
    assert!(is_kurrentdb_url("kurrentdb://127.0.0.1:2113?tls=false"));
    assert!(is_kurrentdb_url(
        "kurrentdb+discover://admin:changeit@cluster.local:2113"
    ));
    assert!(is_kurrentdb_url("esdb://localhost:2113"));
    assert!(is_kurrentdb_url("KurrentDB://localhost:2113"));
    assert!(!is_kurrentdb_url("postgres://db/accounts"));
    assert!(!is_kurrentdb_url("sqlite://data/accounts.db"));
    assert!(!is_kurrentdb_url("kurrentdb"));
    for url in [
        "kurrentdb://127.0.0.1:2113?tls=false",
        "kurrentdb+discover://admin:changeit@cluster.local:2113",
        "esdb://a:2113,b:2113,c:2113?tls=true",
    ] {
        assert!(url.parse::<ClientSettings>().is_ok(), "{url}");
    }
    let e = "kurrentdb://admin:s3cret@host:2113/some/path"
        .parse::<ClientSettings>()
        .unwrap_err();
    assert!(!e.message().contains("s3cret"), "{}", e.message());
}

#[test]
fn the_envelope_travels_in_the_custom_metadata() {
    let event = new_event(7);
    let json = serde_json::to_value(StoredMetadata::of(&event)).unwrap();
    assert_eq!(json["schema_version"], 2);
    assert_eq!(json["$correlationId"], Uuid::from_u128(0xc0).to_string());
    assert_eq!(json["$causationId"], Uuid::from_u128(0xca).to_string());
    assert_eq!(json["correlation_id"], Uuid::from_u128(0xc0).to_string());
    assert_eq!(json["idempotency_key"], "key-1");
    assert_eq!(json["actor"]["kind"], "system");
    let back: StoredMetadata = serde_json::from_value(json).unwrap();
    assert_eq!(back.schema_version, 2);
    assert_eq!(back.metadata, event.metadata);
    // The client builds the event without complaint.
    event_data(&event).unwrap();
}

#[test]
fn a_stored_event_decodes_to_ours() {
    let event = new_event(3);
    let data = serde_json::to_vec(&event.data).unwrap();
    let meta = serde_json::to_vec(&StoredMetadata::of(&event)).unwrap();
    // 2027-01-15T08:00:00.123456Z in 100 ns ticks, plus 7 ticks below the microsecond.
    let micros: i64 = 1_800_000_000_123_456;
    let ticks = (micros * 10 + 7).to_string();
    let raw = RawEvent {
        stream: "account-1",
        revision: 3,
        id: event.event_id,
        event_type: "EmailChanged",
        data: &data,
        custom_metadata: &meta,
        created_ticks: Some(&ticks),
        created_micros: 1_800_000_000_000_000,
        position: Position {
            commit: 8192,
            prepare: 8192,
        },
    };
    let decoded = decode(&raw).unwrap();
    assert_eq!(decoded.position, GlobalPosition(8192));
    assert_eq!(decoded.stream, "account-1");
    assert_eq!(decoded.revision, 3);
    assert_eq!(decoded.event_id, event.event_id);
    assert_eq!(decoded.event_type, event.event_type);
    assert_eq!(decoded.schema_version, 2);
    assert_eq!(decoded.data, event.data);
    assert_eq!(decoded.metadata, event.metadata);
    assert_eq!(decoded.recorded_at, Timestamp::from_unix_micros(micros));

    let seconds_only = RawEvent {
        created_ticks: None,
        ..raw
    };
    assert_eq!(
        decode(&seconds_only).unwrap().recorded_at,
        Timestamp::from_unix_micros(1_800_000_000_000_000)
    );
    let foreign = RawEvent {
        custom_metadata: b"{}",
        ..seconds_only
    };
    assert!(matches!(decode(&foreign), Err(StoreError::Corrupt(_))));
}

#[test]
fn a_retry_is_recognised_where_the_append_would_go() {
    let sent = vec![new_event(0), new_event(1)];
    // Nothing there, or someone else's events: append (the server decides).
    assert_eq!(match_retry("s", &sent, &[]).unwrap(), None);
    assert_eq!(
        match_retry("s", &sent, &[recorded(5, 10), recorded(6, 20)]).unwrap(),
        None
    );
    // Exactly ours: the original positions.
    assert_eq!(
        match_retry("s", &sent, &[recorded(0, 100), recorded(1, 180)]).unwrap(),
        Some(vec![GlobalPosition(100), GlobalPosition(180)])
    );
    // Some of ours beside others: an id reused.
    assert!(matches!(
        match_retry("s", &sent, &[recorded(0, 100), recorded(6, 180)]),
        Err(StoreError::EventIdReused { .. })
    ));
    assert!(matches!(
        match_retry("s", &sent, &[recorded(0, 100)]),
        Err(StoreError::EventIdReused { .. })
    ));
}
