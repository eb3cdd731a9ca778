//! The PostgreSQL event log.
//!
//! Appends go through group commit (`group_commit`): one writer per log takes what
//! has queued and commits it in one transaction, each append with its own expected-revision
//! check and its own answer (the module `group` says how: in the common case one round
//! trip per batch, whatever its size). The unique (stream, revision) and event-id keys
//! remain the last word, so appends from several processes stay correct; only a refused
//! append looks further, after the commit, to tell a retry of an append already made (its
//! original positions) from a real conflict. Positions and the read filter follow "Global
//! order without gaps" in DESIGN.md; the migration `0001_event_log.sql` explains the
//! scheme, and a batch is numbered like any transaction (`xid << 20` on). New events are
//! announced with LISTEN/NOTIFY once per batch, sent outside the appending transaction (a
//! NOTIFY inside it would serialise every commit) and coalesced when many land at once.
//! [`PostgresLog::append_in`] appends inside the caller's transaction instead, unbatched.
//! The page the followers read, and how a row becomes an event, are in the module `page`.

use crate::db::Database;
use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::group_commit::Queue;
use crate::log::{
    AppendSignal, Backlog, EventAt, EventLog, FilteredPage, LogWatch, StreamFilter, check_append,
    earlier_append, events_at, sql_int,
};
use crate::readers::Readers;
use crate::shared_reads::SharedReads;
use async_trait::async_trait;
use domain::Timestamp;
use sqlx::{PgConnection, Row};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The channel appends are announced on; the payload names the announcing log (a random
/// id per process), so that its own listener can skip what its readers already know.
pub const NOTIFY_CHANNEL: &str = "accounts_events";

mod announce;
mod columns;
#[cfg(test)]
mod generic_plans;
mod group;
mod page;
mod plan;
mod recheck;
mod statements;

use page::{COLUMNS, PAGE_CAPACITY, decode_each};
use statements::{Checks, EVENTS_WITH_IDS, Positions, insert};

use recheck::Recheck;

/// Attempts before an `Any` append racing other appends to the same stream gives up.
const ANY_ATTEMPTS: u32 = 100;

/// Writers (tasks committing batches, a connection each while they do) per log. One: with
/// two sharing the queue, batches touching the same stream overlap, and the later one waits
/// for the earlier one's rows and then falls back to savepoints (16 appenders on one stream
/// ran at 0.3x of the one-writer rate); distinct streams gained nothing measurable on this
/// 2-core machine, neither then nor with four writers each owning a share of the streams.
const WRITERS: usize = 1;

/// The event log in PostgreSQL.
pub struct PostgresLog {
    /// Every statement of the log runs on one of these, taken and given back without the
    /// pool's ping after each (`crate::readers`): on the log's paths, reads of pages and
    /// streams and the writer's commits, the pings were a round trip for every two of
    /// the statements themselves.
    conns: Readers<PgConnection>,
    signal: AppendSignal,
    /// Waking followers again while committed events are hidden.
    recheck: Arc<Recheck>,
    /// Followers caught up to the same place share one query per wake-up.
    reads: SharedReads,
    queue: Queue<group::Reply>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PostgresLog {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PostgresLog {
    /// Opens the log of `db` (migrations applied) and starts listening for appends made
    /// by other processes.
    pub async fn open(db: Database) -> Result<Self, StoreError> {
        let (Some(pg), Some(conns)) = (db.pg_pool(), db.log_connections()) else {
            return Err(StoreError::Invalid("not a PostgreSQL database".into()));
        };
        let conns = conns.clone();
        let signal = AppendSignal::new();
        let to_announce = Arc::new(Notify::new());
        // Signs this log's announcements: its own readers were woken when the batch
        // committed, so its listener skips them rather than wake every follower twice.
        let origin = Uuid::new_v4().simple().to_string();
        let listen = announce::listen(pg, signal.clone(), origin.clone()).await?;
        let announcer = announce::announcer(conns.clone(), to_announce.clone(), origin);

        let (queue, batcher) = Queue::new();
        let batcher = Arc::new(Mutex::new(batcher));
        let mut tasks = vec![listen, announcer];
        for _ in 0..WRITERS {
            tasks.push(tokio::spawn(group::run(
                conns.clone(),
                batcher.clone(),
                signal.clone(),
                to_announce.clone(),
            )));
        }

        Ok(Self {
            conns,
            recheck: Arc::new(Recheck::new(signal.clone())),
            reads: SharedReads::default(),
            signal,
            queue,
            tasks,
        })
    }

    /// Appends within a transaction the caller controls (to compose an append with other
    /// writes). Readers do not see the events, nor anything appended after them, until that
    /// transaction commits. A refusal aborts the caller's transaction, so it is reported as
    /// a conflict without telling a retry from a concurrent append.
    pub async fn append_in(
        conn: &mut PgConnection,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        check_append(events)?;
        insert(
            conn,
            stream,
            expected,
            Positions::SharedTransaction,
            Checks::Keys,
            events,
        )
        .await?
        .map_err(|_| StoreError::WrongExpectedRevision {
            stream: stream.into(),
            expected,
            actual: None,
        })
    }

    /// The position a `SELECT max(global_position) …` statement reads (0 on an empty log).
    async fn max_position(&self, sql: &'static str) -> Result<GlobalPosition, StoreError> {
        let mut conn = self.conns.acquire().await?;
        let head: Option<i64> = sqlx::query_scalar(sql).fetch_one(conn.conn()).await?;
        conn.release();
        Ok(GlobalPosition(head.unwrap_or(0) as u64))
    }

    /// Explains a refused append: a retry of one already made (its original result), a
    /// reused event id, a stream that moved on, or (`None`) a race worth trying again.
    async fn explain_refusal(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let mut conn = self.conns.acquire().await?;
        let known = sqlx::query(EVENTS_WITH_IDS)
            .bind(&ids)
            .fetch_all(conn.conn())
            .await?;
        let actual: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_revision) FROM events WHERE stream_id = $1")
                .bind(stream)
                .fetch_one(conn.conn())
                .await?;
        conn.release();
        let actual = actual.map(|r| r as u64);
        if !known.is_empty() {
            let known = known
                .iter()
                .map(|r| Ok((r.try_get("stream_id")?, r.try_get("global_position")?)))
                .collect::<Result<_, sqlx::Error>>()?;
            return earlier_append(known, stream, events.len(), actual).map(Some);
        }
        match expected {
            // Another append took the revision this one computed: compute it again.
            ExpectedRevision::Any => Ok(None),
            ExpectedRevision::NoStream | ExpectedRevision::Exact(_) => {
                Err(StoreError::WrongExpectedRevision {
                    stream: stream.into(),
                    expected,
                    actual,
                })
            }
        }
    }
}

#[async_trait]
impl EventLog for PostgresLog {
    #[tracing::instrument(skip_all, fields(stream, events = events.len()))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(&events)?;
        let events = Arc::new(events);
        for _ in 0..ANY_ATTEMPTS {
            match self
                .queue
                .submit(stream, expected, events.clone())
                .await??
            {
                group::Outcome::Appended(result) => return Ok(result),
                group::Outcome::Refused => {
                    if let Some(earlier) = self.explain_refusal(stream, expected, &events).await? {
                        return Ok(earlier);
                    }
                }
            }
        }
        Err(StoreError::WrongExpectedRevision {
            stream: stream.into(),
            expected,
            actual: None,
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
        let mut conn = self.conns.acquire().await?;
        let rows = sqlx::query(&sql)
            .bind(stream)
            .bind(sql_int(from))
            .bind(sql_int(limit))
            .fetch(conn.conn());
        let mut events = Vec::with_capacity(limit.min(PAGE_CAPACITY));
        decode_each(rows, &mut events).await?;
        conn.release();
        Ok(events)
    }

    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError> {
        let mut conn = self.conns.acquire().await?;
        let last: Option<i64> =
            sqlx::query_scalar(&format!("SELECT {}", crate::log::stream_end_subquery("$1")))
                .bind(stream)
                .fetch_one(conn.conn())
                .await?;
        conn.release();
        Ok(last.map(|p| GlobalPosition(p as u64)))
    }

    fn shares_read_model_database(&self) -> bool {
        true
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reads
            .read(after, limit, |after, limit| self.read_page(after, limit))
            .await
    }

    async fn read_all_where(
        &self,
        after: GlobalPosition,
        limit: usize,
        keep: StreamFilter<'_>,
    ) -> Result<FilteredPage, StoreError> {
        self.reads
            .read_where(
                after,
                limit,
                |after, limit| self.read_page(after, limit),
                keep,
            )
            .await
    }

    async fn read_events(&self, at: &[EventAt]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::with_capacity(at.len());
        let mut conn = self.conns.acquire().await?;
        // Bounded statements: a page of an index is at most a few hundred positions.
        for chunk in at.chunks(500) {
            let sql = format!("SELECT {COLUMNS} FROM events {}", events_at(chunk.len()));
            let mut query = sqlx::query(&sql);
            for wanted in chunk {
                query = query.bind(wanted.position.0 as i64);
            }
            decode_each(query.fetch(conn.conn()), &mut events).await?;
        }
        conn.release();
        Ok(events)
    }

    async fn head(&self) -> Result<GlobalPosition, StoreError> {
        self.max_position(
            "SELECT max(global_position) FROM events \
             WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())",
        )
        .await
    }

    async fn committed_head(&self) -> Result<GlobalPosition, StoreError> {
        self.max_position("SELECT max(global_position) FROM events")
            .await
    }

    /// Counts every committed event after `after`, including those an older open
    /// transaction still hides from readers: the follower has them still to handle.
    async fn backlog(&self, after: GlobalPosition) -> Result<Backlog, StoreError> {
        let mut conn = self.conns.acquire().await?;
        let (events, oldest): (i64, Option<time::OffsetDateTime>) = sqlx::query_as(
            "SELECT count(*), min(recorded_at) FROM events WHERE global_position > $1",
        )
        .bind(after.0 as i64)
        .fetch_one(conn.conn())
        .await?;
        conn.release();
        Ok(Backlog {
            events: events as u64,
            oldest: oldest.map(Timestamp::from_datetime),
        })
    }

    fn watch(&self) -> LogWatch {
        self.signal.watch(Duration::from_secs(5))
    }
}
