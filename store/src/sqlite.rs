//! The SQLite event log: the embedded default. One writer at a time (the write gate and
//! `BEGIN IMMEDIATE`), so positions are committed in order and the log has no gaps.

use crate::db::Database;
use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::log::{AppendSignal, Backlog, EventLog, LogWatch, check_append};
use async_trait::async_trait;
use domain::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::time::Duration;
use uuid::Uuid;

/// The event log in the service's SQLite file.
pub struct SqliteLog {
    db: Database,
    signal: AppendSignal,
}

impl SqliteLog {
    /// Uses the `events` and `streams` tables of `db` (migrations applied).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            signal: AppendSignal::new(),
        }
    }
}

const COLUMNS: &str = "global_position, event_id, stream_id, stream_revision, event_type, \
                       schema_version, data, metadata, recorded_at";

fn decode(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
    let event_id: String = row.try_get("event_id")?;
    let data: String = row.try_get("data")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(RecordedEvent {
        position: GlobalPosition(row.try_get::<i64, _>("global_position")? as u64),
        stream: row.try_get("stream_id")?,
        revision: row.try_get::<i64, _>("stream_revision")? as u64,
        event_id: Uuid::parse_str(&event_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i64, _>("schema_version")? as u32,
        data: serde_json::from_str(&data)?,
        metadata: serde_json::from_str(&metadata)?,
        recorded_at: Timestamp::from_unix_micros(row.try_get("recorded_at")?),
    })
}

#[async_trait]
impl EventLog for SqliteLog {
    #[tracing::instrument(skip_all, fields(stream, events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(&events)?;
        let mut w = self.db.begin_write().await?;

        let placeholders: Vec<String> = (1..=events.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT stream_id, global_position FROM events WHERE event_id IN ({}) \
             ORDER BY stream_revision",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for event in &events {
            query = query.bind(event.event_id.to_string());
        }
        let known = query.fetch_all(&mut **w).await?;

        let current: Option<i64> =
            sqlx::query_scalar("SELECT revision FROM streams WHERE stream_id = $1")
                .bind(stream)
                .fetch_optional(&mut **w)
                .await?;
        let current = current.map(|r| r as u64);

        if !known.is_empty() {
            let same_append = known.len() == events.len()
                && known.iter().all(|r| {
                    r.try_get::<String, _>("stream_id")
                        .is_ok_and(|s| s == stream)
                });
            if !same_append {
                return Err(StoreError::EventIdReused {
                    stream: stream.into(),
                });
            }
            let positions = known
                .iter()
                .map(|r| {
                    r.try_get::<i64, _>("global_position")
                        .map(|p| GlobalPosition(p as u64))
                })
                .collect::<Result<_, _>>()?;
            return Ok(AppendResult {
                positions,
                next_expected: current.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact),
                already_appended: true,
            });
        }

        let ok = match expected {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => current.is_none(),
            ExpectedRevision::Exact(n) => current == Some(n),
        };
        if !ok {
            return Err(StoreError::WrongExpectedRevision {
                stream: stream.into(),
                expected,
                actual: current,
            });
        }

        let recorded_at = Timestamp::from_datetime(time::OffsetDateTime::now_utc()).unix_micros();
        let mut revision = current.map_or(0, |r| r + 1);
        let mut positions = Vec::with_capacity(events.len());
        for event in &events {
            let position: i64 = sqlx::query_scalar(
                "INSERT INTO events (event_id, stream_id, stream_revision, event_type, \
                 schema_version, data, metadata, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING global_position",
            )
            .bind(event.event_id.to_string())
            .bind(stream)
            .bind(revision as i64)
            .bind(&event.event_type)
            .bind(i64::from(event.schema_version))
            .bind(event.data.to_string())
            .bind(serde_json::to_string(&event.metadata)?)
            .bind(recorded_at)
            .fetch_one(&mut **w)
            .await?;
            positions.push(GlobalPosition(position as u64));
            revision += 1;
        }
        sqlx::query(
            "INSERT INTO streams (stream_id, revision) VALUES ($1, $2) \
             ON CONFLICT (stream_id) DO UPDATE SET revision = excluded.revision",
        )
        .bind(stream)
        .bind(revision as i64 - 1)
        .execute(&mut **w)
        .await?;
        w.commit().await?;
        self.signal.notify();
        Ok(AppendResult {
            positions,
            next_expected: ExpectedRevision::Exact(revision - 1),
            already_appended: false,
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_revision >= $2 \
             ORDER BY stream_revision LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(stream)
            .bind(from as i64)
            .bind(limit as i64)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > $1 \
             ORDER BY global_position LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(after.0 as i64)
            .bind(limit as i64)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn head(&self) -> Result<GlobalPosition, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(self.db.pool())
            .await?;
        Ok(GlobalPosition(head.unwrap_or(0) as u64))
    }

    async fn backlog(&self, after: GlobalPosition) -> Result<Backlog, StoreError> {
        let (events, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(recorded_at) FROM events WHERE global_position > $1",
        )
        .bind(after.0 as i64)
        .fetch_one(self.db.pool())
        .await?;
        Ok(Backlog {
            events: events as u64,
            oldest: oldest.map(Timestamp::from_unix_micros),
        })
    }

    fn watch(&self) -> LogWatch {
        // Another process (a CLI command) may append to the same file; nothing notifies
        // across processes in SQLite, so wake up now and then to look.
        self.signal.watch(Duration::from_secs(1))
    }
}
