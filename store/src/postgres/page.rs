//! Reading the log's rows: the columns of an event, and the page the followers read, whose
//! end is where no older open transaction hides an event.

use super::PostgresLog;
use crate::envelope::{GlobalPosition, Metadata, RecordedEvent};
use crate::error::StoreError;
use crate::log::sql_int;
use domain::Timestamp;
use futures_util::{Stream, TryStreamExt};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

/// The columns of an event's row, in the order [`decode`] reads them.
pub(super) const COLUMNS: &str = "global_position, event_id, stream_id, stream_revision, \
     event_type, schema_version, data, metadata, recorded_at";

/// The committed head's column in a page of [`PostgresLog::read_page`], after [`COLUMNS`].
const HEAD_COLUMN: usize = 9;

/// The most events a read reserves room for before it sees them (a page's limit can be
/// far larger than the events it finds).
pub(super) const PAGE_CAPACITY: usize = 1024;

/// Reads the columns by index, in the order of [`COLUMNS`] (a lookup by name per column
/// and row showed in the profile of a whole-log read).
pub(super) fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let recorded_at: time::OffsetDateTime = row.try_get(8)?;
    Ok(RecordedEvent {
        position: GlobalPosition(row.try_get::<i64, _>(0)? as u64),
        event_id: row.try_get(1)?,
        stream: row.try_get(2)?,
        revision: row.try_get::<i64, _>(3)? as u64,
        event_type: row.try_get(4)?,
        schema_version: row.try_get::<i32, _>(5)? as u32,
        data: row.try_get(6)?,
        metadata: row.try_get::<Json<Metadata>, _>(7)?.0,
        recorded_at: Timestamp::from_datetime(recorded_at),
    })
}

/// Decodes the events of a query's rows onto `events` as the rows arrive, so that
/// PostgreSQL goes on sending the rest of them while the first are decoded (collecting the
/// rows first, then decoding them, left the two taking turns: the whole-log read ran at
/// two thirds of the rate on the same machine).
pub(super) async fn decode_each(
    mut rows: impl Stream<Item = Result<PgRow, sqlx::Error>> + Unpin,
    events: &mut Vec<RecordedEvent>,
) -> Result<(), StoreError> {
    while let Some(row) = rows.try_next().await? {
        events.push(decode(&row)?);
    }
    Ok(())
}

impl PostgresLog {
    /// One query of the log: up to `limit` events after `after` that no older open
    /// transaction hides, and (in the same statement, so the same snapshot) the committed
    /// head. A page that ends short of the committed head ends at hidden events: the
    /// followers are woken again shortly (see [`super::Recheck`]), because no append may
    /// follow to wake them when the transaction hiding them ends. A short page is the end
    /// of the log for its reader, which waits for the next wake-up instead of reading
    /// again, so the check applies to every short page, not only an empty one.
    pub(super) async fn read_page(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // One row even when the page is empty (all page columns NULL), carrying the head.
        let sql = format!(
            "SELECT page.*, head.committed FROM \
             (SELECT max(global_position) AS committed FROM events) head \
             LEFT JOIN LATERAL (SELECT {COLUMNS} FROM events WHERE global_position > $1 \
             AND transaction_id < (SELECT pg_snapshot_xmin(pg_current_snapshot())) \
             ORDER BY global_position LIMIT $2) page ON true"
        );
        let mut conn = self.conns.acquire().await?;
        let mut rows = sqlx::query(&sql)
            .bind(sql_int(after.0))
            .bind(sql_int(limit))
            .fetch(conn.conn());
        // Decoded as they arrive (see `decode_each`); the first row carries the head.
        let mut committed = 0;
        let mut events = Vec::with_capacity(limit.min(PAGE_CAPACITY));
        let mut first = true;
        while let Some(row) = rows.try_next().await? {
            if std::mem::take(&mut first) {
                committed = row.try_get::<Option<i64>, _>(HEAD_COLUMN)?.unwrap_or(0) as u64;
            }
            if row.try_get::<Option<i64>, _>(0)?.is_some() {
                events.push(decode(&row)?);
            }
        }
        drop(rows);
        conn.release();
        // The join keeps no order of its own; the page is already in order (cheap to check).
        events.sort_by_key(|event: &RecordedEvent| event.position);
        let last = events.last().map_or(after, |event| event.position);
        let hidden = events.len() < limit && committed > last.0;
        // The next wake-up comes after the shortest delay again unless nothing new showed
        // while events stay hidden (a long transaction: the delay keeps doubling).
        if !hidden || !events.is_empty() {
            self.recheck.reset();
        }
        if hidden {
            self.recheck.schedule();
        }
        Ok(events)
    }
}
