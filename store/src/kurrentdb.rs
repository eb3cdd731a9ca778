//! The KurrentDB event log: streams and `$all` of a KurrentDB (formerly EventStoreDB) server
//! or cluster, reached with the `kurrentdb` gRPC client.
//!
//! How the [`EventLog`] contract maps onto KurrentDB:
//!
//! - **Revisions.** KurrentDB numbers a stream's events from 0 like we do, so
//!   [`ExpectedRevision`] maps one to one: `NoStream` → `StreamState::NoStream`, `Exact(n)` →
//!   `StreamState::StreamRevision(n)`, `Any` → `StreamState::Any`. A wrong-expected-version
//!   answer becomes [`StoreError::WrongExpectedRevision`] with the stream's actual revision.
//! - **Global positions.** An event's [`GlobalPosition`] is its `$all` commit position. Every
//!   append writes one record per event and commits each at its own log position (the commit
//!   and prepare positions of an event written by a normal append are equal), so positions
//!   are unique and grow in `$all` order, but they are byte offsets: far from dense. Where a
//!   server leaves the commit position out (stream reads on older servers answer `u64::MAX`),
//!   the prepare position stands in for it.
//! - **Retries.** Our event id is sent as KurrentDB's event id. KurrentDB itself answers an
//!   identical append (same ids, same expectation) with success and writes nothing, but its
//!   answer does not say whether it wrote, and its check for `Any` is best-effort. So before
//!   writing, [`KurrentLog`] looks where the events would go (the revision after the
//!   expectation, or the stream's tail for `Any`): if they are already there it answers
//!   `already_appended: true` with their original positions, as the SQL logs do. An event id
//!   reused in *another* stream is not detected: KurrentDB keeps no index by event id, and the
//!   service never reuses one (ids are fresh UUIDv7s).
//! - **Reading the whole log.** [`EventLog::read_all`] reads `$all` forwards from a position
//!   with a server-side filter that leaves out system streams (`$…`); system events that slip
//!   through (links, `$metadata`) are skipped too. `$all` is gapless: a reader that has seen
//!   position P never later finds an event below it.
//! - **Waking.** A catch-up subscription to `$all` (same filter) bumps the log's
//!   `AppendSignal` on every new event, so other processes' appends wake projectors and
//!   workers at once; it resubscribes after a dropped connection, waking readers so they look
//!   for anything missed, and a 5 s fallback covers the time it is down.
//! - **Envelope.** Our event type is KurrentDB's event type; the data is the JSON payload
//!   (content type `application/json`); the custom metadata is a JSON object holding
//!   `schema_version`, our [`Metadata`] fields, and `$correlationId`/`$causationId` (the names
//!   KurrentDB's own `$by_correlation_id` projection reads). `recorded_at` is the server's
//!   `created` timestamp (100 ns ticks since the Unix epoch, kept to the microsecond).
//! - **A missing stream** reads as empty.
//!
//! The mapping lives in plain functions (`stream_state`, `conflict`, `position_of`,
//! `StoredMetadata`, `decode`) tested without a server; `store/tests/contract.rs` runs the
//! backend contract against a real server when `KURRENTDB_URL` is set.

use crate::envelope::{
    AppendResult, ExpectedRevision, GlobalPosition, Metadata, NewEvent, RecordedEvent,
};
use crate::error::StoreError;
use crate::log::{AppendSignal, EventLog, LogWatch, check_append};
use async_trait::async_trait;
use domain::Timestamp;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, Position,
    ReadAllOptions, ReadStreamOptions, StreamPosition, StreamState, SubscribeToAllOptions,
    SubscriptionEvent, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// URL schemes the `kurrentdb` client accepts (`+discover`: DNS discovery of a cluster).
pub const SCHEMES: &[&str] = &[
    "kurrentdb",
    "kurrentdb+discover",
    "kurrent",
    "kurrent+discover",
    "kdb",
    "kdb+discover",
    "esdb",
    "esdb+discover",
];

/// Whether `url` names a KurrentDB server or cluster (by its scheme).
pub fn is_kurrentdb_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// How long opening the log waits for the server to answer a first read.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The wake-up fallback of [`LogWatch`]: the subscription wakes readers at once; this only
/// covers the time it is being re-established.
const WATCH_FALLBACK: Duration = Duration::from_secs(5);

/// Pause before resubscribing to `$all` after the subscription dropped.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// The longest pause between attempts to resubscribe while the server stays unreachable.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(30);

/// How far back from the end of `$all` [`EventLog::head`] looks for an event of the
/// service's (the server-side filter normally leaves none of KurrentDB's own in the way).
const HEAD_SCAN: usize = 1_000;

/// The event log in a KurrentDB server or cluster.
pub struct KurrentLog {
    client: Client,
    signal: AppendSignal,
    follower: JoinHandle<()>,
}

impl Drop for KurrentLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl KurrentLog {
    /// Connects to `url` (`kurrentdb://host:2113?tls=false`, `kurrentdb+discover://…`,
    /// `esdb://…`; credentials as `user:password@`), checks that the server answers a read
    /// of `$all`, and starts following `$all` for [`EventLog::watch`]. Errors never repeat
    /// the URL, which may hold a password.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings =
            url.parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    StoreError::Invalid(format!("the KurrentDB connection string: {}", e.message()))
                })?;
        let client = Client::new(settings)
            .map_err(|e| StoreError::EventStore(format!("creating the KurrentDB client: {e}")))?;
        let signal = AppendSignal::new();
        let follower = tokio::spawn(follow(client.clone(), signal.clone()));
        let log = Self {
            client,
            signal,
            follower,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, log.head()).await {
            Ok(Ok(head)) => {
                tracing::info!(%head, "KurrentDB event log opened");
                Ok(log)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::EventStore(format!(
                "KurrentDB did not answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Up to `count` events of `stream` from revision `from` on (forwards), or the last
    /// `count` events in stream order (`from` = `None`).
    async fn read_raw(
        &self,
        stream: &str,
        from: Option<u64>,
        count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let options = match from {
            Some(from) => ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(from)),
            None => ReadStreamOptions::default()
                .backwards()
                .position(StreamPosition::End),
        }
        .max_count(count);
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(backend(e)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    if let Some(event) = resolved.event.as_ref() {
                        events.push(decode(&RawEvent::of(event))?);
                    }
                }
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => break,
                Err(e) => return Err(backend(e)),
            }
            if events.len() >= count {
                break;
            }
        }
        if from.is_none() {
            events.reverse();
        }
        Ok(events)
    }

    /// If `events` are already in `stream` where this append would put them (a retry),
    /// what the original append committed.
    async fn find_retry(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        let found = match expected {
            ExpectedRevision::NoStream => self.read_raw(stream, Some(0), events.len()).await?,
            ExpectedRevision::Exact(n) => self.read_raw(stream, Some(n + 1), events.len()).await?,
            ExpectedRevision::Any => self.read_raw(stream, None, events.len()).await?,
        };
        match match_retry(stream, events, &found)? {
            None => Ok(None),
            Some(positions) => {
                let current = self.read_raw(stream, None, 1).await?;
                let next_expected = current.last().map_or(ExpectedRevision::NoStream, |e| {
                    ExpectedRevision::Exact(e.revision)
                });
                Ok(Some(AppendResult {
                    positions,
                    next_expected,
                    already_appended: true,
                }))
            }
        }
    }
}

#[async_trait]
impl EventLog for KurrentLog {
    #[tracing::instrument(skip_all, fields(stream = %stream, events = events.len(), ?expected))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(&events)?;
        if let Some(retry) = self.find_retry(stream, expected, &events).await? {
            return Ok(retry);
        }
        let data = events
            .iter()
            .map(event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options = AppendToStreamOptions::default().stream_state(stream_state(expected));
        let written = self
            .client
            .append_to_stream(stream, &options, data)
            .await
            .map_err(|e| classify(stream, expected, e))?;
        let last = written.next_expected_version;
        let positions = match written_position(written.position) {
            Some(position) if events.len() == 1 => vec![position],
            _ => {
                // One position per event: read the events back where they were written.
                let first = (last + 1).checked_sub(events.len() as u64).ok_or_else(|| {
                    StoreError::EventStore(format!(
                        "KurrentDB answered revision {last} for {} events",
                        events.len()
                    ))
                })?;
                let back = self.read_raw(stream, Some(first), events.len()).await?;
                match_retry(stream, &events, &back)?.ok_or_else(|| {
                    StoreError::EventStore(
                        "the appended events are not where KurrentDB said it wrote them".into(),
                    )
                })?
            }
        };
        self.signal.notify();
        Ok(AppendResult {
            positions,
            next_expected: ExpectedRevision::Exact(last),
            // No position in a successful answer: KurrentDB recognised a retry itself.
            already_appended: written_position(written.position).is_none(),
        })
    }

    #[tracing::instrument(skip_all, fields(stream = %stream, from = from, limit = limit))]
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_raw(stream, Some(from), limit).await
    }

    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError> {
        let last = self.read_raw(stream, None, 1).await?;
        Ok(last.last().map(|e| e.position))
    }

    #[tracing::instrument(skip_all, fields(after = after.0, limit = limit))]
    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut kept = Vec::new();
        let mut cursor = after;
        // Until `limit` events are kept or the end of `$all` is reached: an empty answer
        // must mean "nothing after `after`", or a reader would stop short of later events.
        loop {
            if kept.len() >= limit {
                break;
            }
            // One more than asked: a read from a position may start with the event at it.
            let asked = limit - kept.len() + 1;
            let options = ReadAllOptions::default()
                .forwards()
                .position(all_position(cursor))
                .filter(service_filter())
                .max_count(asked);
            let mut read = self.client.read_all(&options).await.map_err(backend)?;
            let mut returned = 0;
            while let Some(resolved) = read.next().await.map_err(backend)? {
                returned += 1;
                let Some(event) = resolved.event.as_ref() else {
                    continue;
                };
                let raw = RawEvent::of(event);
                let position = position_of(raw.position);
                if position <= cursor {
                    continue;
                }
                cursor = position;
                if is_system(raw.stream, raw.event_type) {
                    continue;
                }
                kept.push(decode(&raw)?);
                if kept.len() >= limit {
                    break;
                }
            }
            if returned < asked {
                break;
            }
        }
        Ok(kept)
    }

    #[tracing::instrument(skip_all)]
    async fn head(&self) -> Result<GlobalPosition, StoreError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .filter(service_filter())
            .max_count(HEAD_SCAN);
        let mut read = self.client.read_all(&options).await.map_err(backend)?;
        while let Some(resolved) = read.next().await.map_err(backend)? {
            if let Some(event) = resolved.event.as_ref() {
                let raw = RawEvent::of(event);
                if !is_system(raw.stream, raw.event_type) {
                    return Ok(position_of(raw.position));
                }
            }
        }
        Ok(GlobalPosition::START)
    }

    fn watch(&self) -> LogWatch {
        self.signal.watch(WATCH_FALLBACK)
    }
}

/// Follows `$all` (the service's streams) from its end and bumps `signal` for every new
/// event, resubscribing whenever the subscription drops (waiting longer each time it fails
/// again, up to [`MAX_RESUBSCRIBE_DELAY`]).
async fn follow(client: Client, signal: AppendSignal) {
    let mut delay = RESUBSCRIBE_DELAY;
    loop {
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(service_filter());
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            match subscription.next_subscription_event().await {
                Ok(SubscriptionEvent::EventAppeared(_)) => signal.notify(),
                // (Re)subscribed: events may have been appended while it was down.
                Ok(SubscriptionEvent::Confirmed(_)) => {
                    delay = RESUBSCRIBE_DELAY;
                    signal.notify();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        retry_in_s = delay.as_secs(),
                        "the subscription to $all dropped; resubscribing"
                    );
                    break;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
    }
}

/// The server-side filter for reading and following the service's streams: every stream
/// whose name does not start with `$`.
fn service_filter() -> SubscriptionFilter {
    SubscriptionFilter::on_stream_name().exclude_system_events()
}

/// Whether an event belongs to KurrentDB itself (system streams, `$metadata`, links), not
/// to the service.
fn is_system(stream: &str, event_type: &str) -> bool {
    stream.starts_with('$') || event_type.starts_with('$')
}

/// The client's expectation for ours.
fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::Any => StreamState::Any,
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::Exact(n) => StreamState::StreamRevision(n),
    }
}

/// The typed conflict for KurrentDB's wrong-expected-version answer.
fn conflict(stream: &str, expected: ExpectedRevision, current: CurrentRevision) -> StoreError {
    StoreError::WrongExpectedRevision {
        stream: stream.into(),
        expected,
        actual: match current {
            CurrentRevision::Current(n) => Some(n),
            CurrentRevision::NoStream => None,
        },
    }
}

/// A failed append as a [`StoreError`]: a conflict, or the server's failure.
fn classify(stream: &str, expected: ExpectedRevision, error: kurrentdb::Error) -> StoreError {
    match error {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => {
            conflict(stream, expected, current)
        }
        other => backend(other),
    }
}

/// Any other client error.
fn backend(error: kurrentdb::Error) -> StoreError {
    StoreError::EventStore(format!("KurrentDB: {error}"))
}

/// The global position of an event: its commit position, or its prepare position where the
/// server left the commit position out (`u64::MAX`, i.e. -1 on the wire).
fn position_of(position: Position) -> GlobalPosition {
    if position.commit == u64::MAX {
        GlobalPosition(position.prepare)
    } else {
        GlobalPosition(position.commit)
    }
}

/// The position in an append's answer, `None` when the server sent none (it answers so for
/// an append it recognised as a retry).
fn written_position(position: Position) -> Option<GlobalPosition> {
    let position = position_of(position);
    (position != GlobalPosition::START && position.0 != u64::MAX).then_some(position)
}

/// Where a read of `$all` after `after` starts.
fn all_position(after: GlobalPosition) -> StreamPosition<Position> {
    if after == GlobalPosition::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(Position {
            commit: after.0,
            prepare: after.0,
        })
    }
}

/// Compares the events found where an append would go with the append: `None` if none of
/// them is there (append), their positions if all of them are, in order (a retry), and
/// [`StoreError::EventIdReused`] if only some are.
fn match_retry(
    stream: &str,
    events: &[NewEvent],
    found: &[RecordedEvent],
) -> Result<Option<Vec<GlobalPosition>>, StoreError> {
    let ours = |e: &RecordedEvent| events.iter().any(|n| n.event_id == e.event_id);
    if !found.iter().any(ours) {
        return Ok(None);
    }
    let same = found.len() == events.len()
        && found
            .iter()
            .zip(events)
            .all(|(found, sent)| found.event_id == sent.event_id);
    if !same {
        return Err(StoreError::EventIdReused {
            stream: stream.into(),
        });
    }
    Ok(Some(found.iter().map(|e| e.position).collect()))
}

/// The custom metadata stored with every event, as JSON: the schema version of the data,
/// our envelope, and the correlation and causation ids under the names KurrentDB's own
/// projections read.
#[derive(Debug, Serialize, Deserialize)]
struct StoredMetadata {
    schema_version: u32,
    #[serde(rename = "$correlationId", default, skip_deserializing)]
    correlation: Option<String>,
    #[serde(
        rename = "$causationId",
        default,
        skip_deserializing,
        skip_serializing_if = "Option::is_none"
    )]
    causation: Option<String>,
    #[serde(flatten)]
    metadata: Metadata,
}

impl StoredMetadata {
    fn of(event: &NewEvent) -> Self {
        Self {
            schema_version: event.schema_version,
            correlation: Some(event.metadata.correlation_id.to_string()),
            causation: event.metadata.causation_id.map(|id| id.to_string()),
            metadata: event.metadata.clone(),
        }
    }
}

/// The client's event for ours: same id, type, JSON data and [`StoredMetadata`].
fn event_data(event: &NewEvent) -> Result<EventData, StoreError> {
    Ok(EventData::json(&event.event_type, &event.data)?
        .id(event.event_id)
        .metadata_as_json(&StoredMetadata::of(event))?)
}

/// The parts of a stored event [`decode`] reads (the client's own type cannot be built
/// outside the client, so tests build this).
struct RawEvent<'a> {
    stream: &'a str,
    revision: u64,
    id: Uuid,
    event_type: &'a str,
    data: &'a [u8],
    custom_metadata: &'a [u8],
    /// `created` from the server's metadata: 100 ns ticks since the Unix epoch.
    created_ticks: Option<&'a str>,
    /// The client's `created`, whole seconds: used if the ticks are missing.
    created_micros: i64,
    position: Position,
}

impl<'a> RawEvent<'a> {
    fn of(event: &'a kurrentdb::RecordedEvent) -> Self {
        Self {
            stream: event.stream_id(),
            revision: event.revision,
            id: event.id,
            event_type: &event.event_type,
            data: &event.data,
            custom_metadata: &event.custom_metadata,
            created_ticks: created_ticks(&event.metadata),
            created_micros: event.created.timestamp_micros(),
            position: event.position,
        }
    }
}

fn created_ticks(metadata: &HashMap<String, String>) -> Option<&str> {
    metadata.get("created").map(String::as_str)
}

/// Our event from a stored one.
fn decode(raw: &RawEvent<'_>) -> Result<RecordedEvent, StoreError> {
    let stored: StoredMetadata = serde_json::from_slice(raw.custom_metadata).map_err(|e| {
        StoreError::Corrupt(format!(
            "{} @{}: metadata is not the service's: {e}",
            raw.stream, raw.revision
        ))
    })?;
    let recorded_micros = raw
        .created_ticks
        .and_then(|ticks| ticks.parse::<i64>().ok())
        .map_or(raw.created_micros, |ticks| ticks / 10);
    Ok(RecordedEvent {
        position: position_of(raw.position),
        stream: raw.stream.to_owned(),
        revision: raw.revision,
        event_id: raw.id,
        event_type: raw.event_type.to_owned(),
        schema_version: stored.schema_version,
        data: serde_json::from_slice(raw.data)?,
        metadata: stored.metadata,
        recorded_at: Timestamp::from_unix_micros(recorded_micros),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Actor;

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
}
