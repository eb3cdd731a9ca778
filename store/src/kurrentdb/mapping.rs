//! How the [`EventLog`](crate::log::EventLog) contract's values map onto KurrentDB's and
//! back (the module header of [`super`] gives the rules): expected revisions, conflicts and
//! errors, positions, the stored metadata and the decoding of a read event. Plain
//! functions, tested without a server.

use crate::envelope::{ExpectedRevision, GlobalPosition, Metadata, NewEvent, RecordedEvent};
use crate::error::StoreError;
use domain::Timestamp;
use kurrentdb::{CurrentRevision, EventData, Position, StreamPosition, StreamState};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use uuid::Uuid;

/// Whether an event belongs to KurrentDB itself (system streams, `$metadata`, links), not
/// to the service.
pub(super) fn is_system(stream: &str, event_type: &str) -> bool {
    stream.starts_with('$') || event_type.starts_with('$')
}

/// The client's expectation for ours.
pub(super) fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::Any => StreamState::Any,
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::Exact(n) => StreamState::StreamRevision(n),
    }
}

/// The typed conflict for KurrentDB's wrong-expected-version answer.
pub(super) fn conflict(
    stream: &str,
    expected: ExpectedRevision,
    current: CurrentRevision,
) -> StoreError {
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
pub(super) fn classify(
    stream: &str,
    expected: ExpectedRevision,
    error: kurrentdb::Error,
) -> StoreError {
    match error {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => {
            conflict(stream, expected, current)
        }
        other => backend(other),
    }
}

/// Any other client error.
pub(super) fn backend(error: kurrentdb::Error) -> StoreError {
    StoreError::EventStore(format!("KurrentDB: {error}"))
}

/// The global position of an event: its commit position, or its prepare position where the
/// server left the commit position out (`u64::MAX`, i.e. -1 on the wire).
pub(super) fn position_of(position: Position) -> GlobalPosition {
    if position.commit == u64::MAX {
        GlobalPosition(position.prepare)
    } else {
        GlobalPosition(position.commit)
    }
}

/// The position in an append's answer, `None` when the server sent none (it answers so for
/// an append it recognised as a retry).
pub(super) fn written_position(position: Position) -> Option<GlobalPosition> {
    let position = position_of(position);
    (position != GlobalPosition::START && position.0 != u64::MAX).then_some(position)
}

/// Where a read of `$all` after `after` starts.
pub(super) fn all_position(after: GlobalPosition) -> StreamPosition<Position> {
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
pub(super) fn match_retry(
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
pub(super) struct StoredMetadata {
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
pub(super) fn event_data(event: &NewEvent) -> Result<EventData, StoreError> {
    Ok(EventData::json(&event.event_type, &event.data)?
        .id(event.event_id)
        .metadata_as_json(&StoredMetadata::of(event))?)
}

/// The parts of a stored event [`decode`] reads (the client's own type cannot be built
/// outside the client, so tests build this).
pub(super) struct RawEvent<'a> {
    pub(super) stream: &'a str,
    revision: u64,
    id: Uuid,
    pub(super) event_type: &'a str,
    data: &'a [u8],
    custom_metadata: &'a [u8],
    /// `created` from the server's metadata: 100 ns ticks since the Unix epoch.
    created_ticks: Option<&'a str>,
    /// The client's `created`, whole seconds: used if the ticks are missing.
    created_micros: i64,
    pub(super) position: Position,
}

impl<'a> RawEvent<'a> {
    pub(super) fn of(event: &'a kurrentdb::RecordedEvent) -> Self {
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

pub(super) fn created_ticks(metadata: &HashMap<String, String>) -> Option<&str> {
    metadata.get("created").map(String::as_str)
}

/// Our event from a stored one.
pub(super) fn decode(raw: &RawEvent<'_>) -> Result<RecordedEvent, StoreError> {
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
mod tests;
