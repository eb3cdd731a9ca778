//! The accepted events of a group commit's batch as the column arrays of its one INSERT
//! (`GROUP_INSERT`), and that INSERT.

use super::plan::First;
use super::statements::GROUP_INSERT;
use crate::envelope::{Metadata, NewEvent};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// The accepted events of a batch, as the arrays of one INSERT.
pub(super) struct Columns<'a> {
    streams: Vec<&'a str>,
    /// The revision, or with `after_head` the offset after the stream's last one.
    revisions: Vec<i64>,
    after_head: Vec<bool>,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    versions: Vec<i32>,
    data: Vec<&'a serde_json::Value>,
    metadata: Vec<Json<&'a Metadata>>,
}

impl<'a> Columns<'a> {
    pub(super) fn with_capacity(rows: usize) -> Self {
        Self {
            streams: Vec::with_capacity(rows),
            revisions: Vec::with_capacity(rows),
            after_head: Vec::with_capacity(rows),
            ids: Vec::with_capacity(rows),
            types: Vec::with_capacity(rows),
            versions: Vec::with_capacity(rows),
            data: Vec::with_capacity(rows),
            metadata: Vec::with_capacity(rows),
        }
    }

    pub(super) fn push(&mut self, stream: &'a str, first: First, events: &'a [NewEvent]) {
        let (start, after_head) = match first {
            First::At(at) => (at, false),
            First::AfterHead(after) => (after, true),
        };
        for (i, event) in events.iter().enumerate() {
            self.streams.push(stream);
            self.revisions.push((start + i as u64) as i64);
            self.after_head.push(after_head);
            self.ids.push(event.event_id);
            self.types.push(&event.event_type);
            self.versions.push(event.schema_version as i32);
            self.data.push(&event.data);
            self.metadata.push(Json(&event.metadata));
        }
    }

    /// Inserts the rows as the transaction's first, numbered from `xid << 20` in order, if
    /// every guard (an event that must exist) holds; returns their (position, revision) in
    /// that order, none if a guard failed.
    pub(super) async fn insert(
        self,
        conn: &mut PgConnection,
        guards: &[(&str, u64)],
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        let (guard_streams, guard_revisions): (Vec<&str>, Vec<i64>) =
            guards.iter().map(|(s, r)| (*s, *r as i64)).unzip();
        // The subqueries see the log as it was when the statement began, without its own
        // rows: an `Any` row goes after the stream's last revision before the batch. Each
        // guard is a scalar subquery, one index probe: as an EXISTS it became a join, which
        // the plan the connection keeps for this statement (made while the log was small)
        // ran as a scan of the whole log.
        let rows = sqlx::query(GROUP_INSERT)
            .bind(self.ids)
            .bind(self.streams)
            .bind(self.revisions)
            .bind(self.after_head)
            .bind(self.types)
            .bind(self.versions)
            .bind(self.data)
            .bind(self.metadata)
            .bind(guard_streams)
            .bind(guard_revisions)
            .fetch_all(conn)
            .await?;
        let mut inserted = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<Vec<(i64, i64)>, sqlx::Error>>()?;
        // RETURNING promises no order; the positions grow with the rows'.
        inserted.sort_unstable();
        Ok(inserted)
    }
}
