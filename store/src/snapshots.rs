//! Snapshots of a stream's folded state, so that a cold load of a long stream reads the
//! snapshot and the events after it instead of the whole stream.
//!
//! A snapshot is a cache kept in the `stream_snapshots` table of the service's SQL
//! database, whichever event log is in use: one row per stream, the latest. It is
//! versioned by the aggregate (a row of another version or aggregate is ignored) and never
//! trusted beyond the events it counts: the log stays the source of truth.

use crate::db::{Backend, Database};
use crate::error::StoreError;
use domain::Timestamp;

/// A saved state: what `aggregate` looked like after its stream's first `event_count`
/// events.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The aggregate's name (its type), to tell streams of different aggregates apart.
    pub aggregate: String,
    /// The aggregate's snapshot shape version.
    pub version: u32,
    /// Events of the stream folded into `state`.
    pub event_count: u64,
    /// The folded state.
    pub state: serde_json::Value,
}

/// Reads and writes snapshots in a [`Database`].
#[derive(Clone)]
pub struct SnapshotStore {
    db: Database,
}

impl SnapshotStore {
    /// Snapshots in `db` (migrations applied).
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The latest snapshot of `stream` taken by `aggregate` at shape `version`, if any.
    #[tracing::instrument(skip_all, fields(stream))]
    pub async fn load(
        &self,
        stream: &str,
        aggregate: &str,
        version: u32,
    ) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT event_count, state FROM stream_snapshots \
             WHERE stream_id = $1 AND aggregate = $2 AND snapshot_version = $3",
        )
        .bind(stream)
        .bind(aggregate)
        .bind(i64::from(version))
        .fetch_optional(self.db.pool())
        .await?;
        let Some((event_count, state)) = row else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            aggregate: aggregate.to_owned(),
            version,
            event_count: event_count as u64,
            state: serde_json::from_str(&state)?,
        }))
    }

    /// Saves `snapshot` of `stream`, unless one covering more events of the same version is
    /// there already (two nodes may save concurrently; the longer history wins). One of
    /// another version is replaced.
    #[tracing::instrument(skip_all, fields(stream, events = snapshot.event_count))]
    pub async fn save(&self, stream: &str, snapshot: &Snapshot) -> Result<(), StoreError> {
        let state = serde_json::to_string(&snapshot.state)?;
        let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc()).unix_micros();
        let sql = "INSERT INTO stream_snapshots \
                   (stream_id, aggregate, snapshot_version, event_count, state, taken_at) \
                   VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT (stream_id) DO UPDATE SET aggregate = excluded.aggregate, \
                   snapshot_version = excluded.snapshot_version, \
                   event_count = excluded.event_count, state = excluded.state, \
                   taken_at = excluded.taken_at \
                   WHERE stream_snapshots.snapshot_version <> excluded.snapshot_version \
                      OR stream_snapshots.aggregate <> excluded.aggregate \
                      OR stream_snapshots.event_count < excluded.event_count";
        let query = sqlx::query(sql)
            .bind(stream)
            .bind(&snapshot.aggregate)
            .bind(i64::from(snapshot.version))
            .bind(snapshot.event_count as i64)
            .bind(state)
            .bind(now);
        match self.db.backend() {
            Backend::Sqlite => {
                let mut w = self.db.begin_write().await?;
                query.execute(&mut **w).await?;
                w.commit().await?;
            }
            Backend::Postgres => {
                query.execute(self.db.pool()).await?;
            }
        }
        Ok(())
    }

    /// Forgets the snapshot of `stream` (its account was erased, or it is no longer wanted).
    pub async fn discard(&self, stream: &str) -> Result<(), StoreError> {
        let query = sqlx::query("DELETE FROM stream_snapshots WHERE stream_id = $1").bind(stream);
        match self.db.backend() {
            Backend::Sqlite => {
                let mut w = self.db.begin_write().await?;
                query.execute(&mut **w).await?;
                w.commit().await?;
            }
            Backend::Postgres => {
                query.execute(self.db.pool()).await?;
            }
        }
        Ok(())
    }
}
