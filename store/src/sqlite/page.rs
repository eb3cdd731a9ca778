//! Reading the SQLite log's events: a page of them as one row, a JSON array that SQLite
//! builds and that is parsed once.

use crate::envelope::{GlobalPosition, Metadata, RecordedEvent};
use crate::error::StoreError;
use domain::Timestamp;
use uuid::Uuid;

/// The columns of an event's row, in the order of [`PagedEvent`].
const COLUMNS: &str = "global_position, event_id, stream_id, stream_revision, event_type, \
                       schema_version, data, metadata, recorded_at";

/// A query of the events `selection` picks (a `WHERE … ORDER BY … LIMIT …` of `events`)
/// answering one row: the page as one JSON array, an array per event (in `order`), the
/// stored JSON of its data and metadata written into it as it is. sqlx hands each row
/// over from its SQLite thread on its own, a wake-up of the reader per row, and converts
/// each column of it for its `Any` driver: read as a thousand rows, a page spent more time
/// in those hand-overs than in SQLite, and the whole-log read ran at about half the
/// PostgreSQL log's rate (ARCHITECTURE.md, "A SQLite page of the log is one row"). Text is
/// quoted by SQLite (`json_quote`); the stored data and metadata are JSON already
/// (written by `serde_json`). Reading zero events answers NULL.
pub(super) fn page_sql(selection: &str, order: &str) -> String {
    format!(
        "SELECT '[' || group_concat('[' || global_position || ',' || json_quote(event_id) \
             || ',' || json_quote(stream_id) || ',' || stream_revision \
             || ',' || json_quote(event_type) || ',' || schema_version || ',' || data \
             || ',' || metadata || ',' || recorded_at || ']', ',' ORDER BY {order}) || ']' \
         FROM (SELECT {COLUMNS} FROM events {selection})"
    )
}

/// One event of a page of [`page_sql`], its columns in [`COLUMNS`]' order.
#[derive(serde::Deserialize)]
struct PagedEvent(
    u64,
    Uuid,
    String,
    u64,
    String,
    u32,
    serde_json::Value,
    Metadata,
    i64,
);

/// The events of a page of [`page_sql`].
pub(super) fn decode_page(page: Option<String>) -> Result<Vec<RecordedEvent>, StoreError> {
    let Some(page) = page else {
        return Ok(Vec::new());
    };
    let events: Vec<PagedEvent> = serde_json::from_str(&page)?;
    Ok(events
        .into_iter()
        .map(
            |PagedEvent(
                position,
                event_id,
                stream,
                revision,
                event_type,
                version,
                data,
                metadata,
                at,
            )| {
                RecordedEvent {
                    position: GlobalPosition(position),
                    stream,
                    revision,
                    event_id,
                    event_type,
                    schema_version: version,
                    data,
                    metadata,
                    recorded_at: Timestamp::from_unix_micros(at),
                }
            },
        )
        .collect())
}
