//! The SQLite event log: the embedded default. One writer at a time (the write gate and
//! `BEGIN IMMEDIATE`), so positions are committed in order and the log has no gaps.
//!
//! Appends go through group commit (`group_commit`): the log's writer takes what
//! has queued and commits it in one `BEGIN IMMEDIATE` transaction (one flush), instead of
//! each append queueing for the write lock and flushing on its own. Inside it every append
//! is checked on its own against the streams table and the event ids, seeing the appends
//! before it in the batch; a refused one (a conflict, a retry answered with its original
//! positions, a reused id) writes nothing, an accepted one is one multi-row INSERT and one
//! update of its stream's revision. If a statement fails, the batch is rolled back and its
//! appends run again one transaction each, so each gets its own answer.
//!
//! Reads of events ask SQLite for a page of them as one row (`sqlite/page.rs`).

use crate::db::{Database, WriteTx};
use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::group_commit::{Append, Batcher, Queue};
use crate::log::{
    AppendSignal, Backlog, EventAt, EventLog, FilteredPage, LogWatch, StreamFilter, check_append,
    earlier_append, events_at, sql_int,
};
use crate::shared_reads::SharedReads;
use crate::sql::{anonymous, numbered, placeholders};
use async_trait::async_trait;
use domain::Timestamp;
use sqlx::Row;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod page;

use page::{decode_page, page_sql};

/// The event log in the service's SQLite file.
pub struct SqliteLog {
    db: Database,
    signal: AppendSignal,
    /// The writer's queue, started by the first append (inside the runtime that runs it).
    /// The writer stops when the log is dropped.
    queue: OnceLock<Queue<Reply>>,
    /// Followers caught up to the same place share one query per wake-up.
    reads: SharedReads,
}

impl SqliteLog {
    /// Uses the `events` and `streams` tables of `db` (migrations applied).
    pub fn new(db: Database) -> Self {
        Self {
            db,
            signal: AppendSignal::new(),
            queue: OnceLock::new(),
            reads: SharedReads::default(),
        }
    }

    /// One query of the log: up to `limit` events after `after`.
    async fn read_page(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = page_sql(
            "WHERE global_position > $1 ORDER BY global_position LIMIT $2",
            "global_position",
        );
        let page: Option<String> = sqlx::query_scalar(&sql)
            .bind(sql_int(after.0))
            .bind(sql_int(limit))
            .fetch_one(self.db.pool())
            .await?;
        decode_page(page)
    }
}

/// A statement whose placeholders grow with its input, written for SQLite to bind in
/// linear time ([`anonymous`]).
fn anonymous_sql(sql: String) -> String {
    anonymous(&sql).into_owned()
}

/// What the writer answers an append: its result, or why it was refused.
type Reply = Result<AppendResult, StoreError>;

/// Commits batches until the log is dropped (its queue closes).
async fn write(db: Database, mut batcher: Batcher<Reply>, signal: AppendSignal) {
    while let Some(batch) = batcher.next_batch().await {
        let replies = match at_once(&db, &batch).await {
            Ok(replies) => replies,
            // A statement failed (the disk is full, the file is locked by another process
            // for too long): every append alone, so each gets its own answer.
            Err(_) => one_by_one(&db, &batch).await,
        };
        if replies
            .iter()
            .any(|reply| reply.as_ref().is_ok_and(|r| !r.already_appended))
        {
            signal.notify();
        }
        for (append, reply) in batch.into_iter().zip(replies) {
            let _ = append.reply.send(reply);
        }
        // Let the callers just answered run before the next batch is taken (see the
        // PostgreSQL writer): not a wait, it returns at once when nothing else is ready.
        tokio::task::yield_now().await;
    }
}

/// The whole batch in one transaction. An error means a statement failed and nothing was
/// committed; refusals are answers, not errors.
async fn at_once(db: &Database, batch: &[Append<Reply>]) -> Result<Vec<Reply>, StoreError> {
    let mut w = db.begin_write().await?;
    let recorded_at = now();
    let mut replies = Vec::with_capacity(batch.len());
    for append in batch {
        replies.push(
            append_one(
                &mut w,
                &append.stream,
                append.expected,
                &append.events,
                recorded_at,
            )
            .await?,
        );
    }
    w.commit().await?;
    Ok(replies)
}

/// Each append in a transaction of its own, after a batch failed.
async fn one_by_one(db: &Database, batch: &[Append<Reply>]) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(batch.len());
    for append in batch {
        let alone = async {
            let mut w = db.begin_write().await?;
            let reply = append_one(
                &mut w,
                &append.stream,
                append.expected,
                &append.events,
                now(),
            )
            .await?;
            w.commit().await?;
            Ok::<_, StoreError>(reply)
        };
        replies.push(alone.await.and_then(|reply| reply));
    }
    replies
}

fn now() -> i64 {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc()).unix_micros()
}

/// Rows per INSERT: 8 parameters each, 256 in all. Binding a statement costs the square of
/// its parameters on SQLite (sqlx looks each one's name up, by a linear scan): 1,000-row
/// statements made bulk appends several times slower (see `projections::batch`).
const ROWS_PER_INSERT: usize = 32;

/// One append inside the batch's transaction, which also holds the earlier appends of the
/// batch: every check sees them. A refused append issues no write. The outer error is a
/// failed statement (the transaction is then abandoned), the inner one a refusal.
async fn append_one(
    w: &mut WriteTx,
    stream: &str,
    expected: ExpectedRevision,
    events: &[NewEvent],
    recorded_at: i64,
) -> Result<Reply, StoreError> {
    let sql = anonymous_sql(format!(
        "SELECT stream_id, global_position FROM events WHERE event_id IN ({}) \
         ORDER BY stream_revision",
        numbered(1, events.len())
    ));
    let mut query = sqlx::query(&sql);
    for event in events {
        query = query.bind(event.event_id.to_string());
    }
    let known = query.fetch_all(&mut ***w).await?;

    let current: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM streams WHERE stream_id = $1")
            .bind(stream)
            .fetch_optional(&mut ***w)
            .await?;
    let current = current.map(|r| r as u64);

    if !known.is_empty() {
        let known = known
            .iter()
            .map(|r| Ok((r.try_get("stream_id")?, r.try_get("global_position")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        return Ok(earlier_append(known, stream, events.len(), current));
    }

    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => current.is_none(),
        ExpectedRevision::Exact(n) => current == Some(n),
    };
    if !ok {
        return Ok(Err(StoreError::WrongExpectedRevision {
            stream: stream.into(),
            expected,
            actual: current,
        }));
    }

    let first_revision = current.map_or(0, |r| r + 1);
    let mut appended: Vec<(i64, i64)> = Vec::with_capacity(events.len());
    for (chunk_index, chunk) in events.chunks(ROWS_PER_INSERT).enumerate() {
        let sql = anonymous_sql(format!(
            "INSERT INTO events (event_id, stream_id, stream_revision, event_type, \
             schema_version, data, metadata, recorded_at) VALUES {} \
             RETURNING stream_revision, global_position",
            placeholders(chunk.len(), 8)
        ));
        let mut query = sqlx::query(&sql);
        for (i, event) in chunk.iter().enumerate() {
            let revision = first_revision + (chunk_index * ROWS_PER_INSERT + i) as u64;
            query = query
                .bind(event.event_id.to_string())
                .bind(stream)
                .bind(revision as i64)
                .bind(event.event_type.as_str())
                .bind(i64::from(event.schema_version))
                .bind(event.data.to_string())
                .bind(serde_json::to_string(&event.metadata)?)
                .bind(recorded_at);
        }
        for row in query.fetch_all(&mut ***w).await? {
            appended.push((row.try_get(0)?, row.try_get(1)?));
        }
    }
    // RETURNING promises no order.
    appended.sort_unstable();
    let last_revision = first_revision + events.len() as u64 - 1;
    sqlx::query(
        "INSERT INTO streams (stream_id, revision) VALUES ($1, $2) \
         ON CONFLICT (stream_id) DO UPDATE SET revision = excluded.revision",
    )
    .bind(stream)
    .bind(last_revision as i64)
    .execute(&mut ***w)
    .await?;
    Ok(Ok(AppendResult::written(
        appended.iter().map(|(_, position)| *position),
        last_revision,
    )))
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
        let queue = self.queue.get_or_init(|| {
            let (queue, batcher) = Queue::new();
            tokio::spawn(write(self.db.clone(), batcher, self.signal.clone()));
            queue
        });
        queue.submit(stream, expected, Arc::new(events)).await?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = page_sql(
            "WHERE stream_id = $1 AND stream_revision >= $2 ORDER BY stream_revision LIMIT $3",
            "stream_revision",
        );
        let page: Option<String> = sqlx::query_scalar(&sql)
            .bind(stream)
            .bind(sql_int(from))
            .bind(sql_int(limit))
            .fetch_one(self.db.pool())
            .await?;
        decode_page(page)
    }

    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError> {
        let last: Option<i64> =
            sqlx::query_scalar(&format!("SELECT {}", crate::log::stream_end_subquery("$1")))
                .bind(stream)
                .fetch_one(self.db.pool())
                .await?;
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
        // Bounded statements: a page of an index is at most a few hundred positions.
        for chunk in at.chunks(500) {
            let sql = anonymous_sql(page_sql(&events_at(chunk.len()), "global_position"));
            let mut query = sqlx::query_scalar(&sql);
            for wanted in chunk {
                query = query.bind(wanted.position.0 as i64);
            }
            events.extend(decode_page(query.fetch_one(self.db.pool()).await?)?);
        }
        Ok(events)
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
