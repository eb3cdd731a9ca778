//! The PostgreSQL log's writer: group commit (see [`crate::group_commit`]).
//!
//! A batch is one transaction, sorted by stream first (stable: appends to one stream keep
//! their order), so that two writers (two processes) wait for each other's rows in the
//! same order and cannot deadlock on them. In the common case it costs two round trips
//! whatever its size ([`at_once`]): read the last revision of its streams and which of its
//! event ids are taken, decide each append here in turn against what the earlier ones
//! leave (its own expected-revision check, its own event ids), and insert every accepted
//! event in one statement (one transaction), numbered from `xid << 20` in batch order, so
//! the whole batch becomes visible at once and in order. A refused append writes nothing.
//! A batch of one is a single guarded INSERT ([`alone`]), as fast as an append that does
//! not queue.
//!
//! Only a transaction open elsewhere (another process, `append_in`) can take a key between
//! that read and the insert; the insert then fails on the unique key and writes nothing.
//! The batch is run again ([`with_savepoints`]): each
//! append is one guarded INSERT ([`Checks::Guards`]) inside a savepoint, so the refused
//! one (or one failing for any other reason, a payload PostgreSQL rejects) is undone
//! alone and the others commit.
//!
//! A refusal is answered as such; the caller explains it after the commit
//! (`explain_refusal`), so a retry by event id, even of an append made earlier in the same
//! batch, returns the original positions.

use super::{Checks, Positions, Refused, insert};
use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, Metadata, NewEvent};
use crate::error::StoreError;
use crate::group_commit::{Append, Batcher, shared_failure};
use crate::log::AppendSignal;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{Mutex, Notify};
use uuid::Uuid;

/// What the writer answers an append.
pub(super) enum Outcome {
    /// Committed.
    Appended(AppendResult),
    /// Refused, nothing written; the caller finds out why.
    Refused,
}

/// The writer's answer.
pub(super) type Reply = Result<Outcome, StoreError>;

/// Takes batches off the queue and commits them, until every appender is gone. Several
/// writers may share one batcher; each takes the next batch when it is free.
pub(super) async fn run(
    pg: PgPool,
    batcher: Arc<Mutex<Batcher<Reply>>>,
    signal: AppendSignal,
    announce: Arc<Notify>,
) {
    loop {
        let batch = batcher.lock().await.next_batch().await;
        let Some(mut batch) = batch else {
            return;
        };
        // Stable: appends to one stream keep the order they queued in.
        batch.sort_by(|a, b| a.stream.cmp(&b.stream));
        let replies = commit(&pg, &batch).await;
        if replies
            .iter()
            .any(|reply| matches!(reply, Ok(Outcome::Appended(_))))
        {
            // Once per batch, after its commit: readers in this process at once, other
            // processes through the announcer's NOTIFY (coalesced when it is busy).
            signal.notify();
            announce.notify_one();
        }
        for (append, reply) in batch.into_iter().zip(replies) {
            // The caller may have stopped waiting (a cancelled request): its append stands.
            let _ = append.reply.send(reply);
        }
        // Let the callers just answered run before the next batch is taken: those that
        // append again at once then join it rather than trail it in a batch of their own.
        // Not a wait: with nothing else ready to run, this returns at once.
        tokio::task::yield_now().await;
    }
}

/// The first append of a transaction starts its numbering; the others continue it.
fn positions(index: usize) -> Positions {
    if index == 0 {
        Positions::OwnTransaction
    } else {
        Positions::SharedTransaction
    }
}

async fn commit(pg: &PgPool, batch: &[Append<Reply>]) -> Vec<Reply> {
    if let [append] = batch {
        return vec![alone(pg, append).await];
    }
    let outcome = match at_once(pg, batch).await {
        Ok(Some(replies)) => Ok(replies),
        Ok(None) => with_savepoints(pg, batch).await,
        Err(error) => Err(error),
    };
    outcome.unwrap_or_else(|error| batch.iter().map(|_| Err(shared_failure(&error))).collect())
}

/// The common case, in two round trips whatever the batch's size: read the revisions of
/// its streams and which of its event ids are taken, decide every append in turn here
/// (each sees the ones before it), and insert every accepted event in one statement, its
/// own transaction. `None` when that insert failed, writing nothing: a transaction open
/// elsewhere took one of its keys (or an event cannot be stored).
async fn at_once(pg: &PgPool, batch: &[Append<Reply>]) -> Result<Option<Vec<Reply>>, sqlx::Error> {
    // Two statements, each its own transaction: the insert commits on its own, and the
    // read before it needs no transaction (a key taken in between fails the insert).
    let mut conn = pg.acquire().await?;
    let mut streams: Vec<&str> = batch.iter().map(|a| a.stream.as_str()).collect();
    streams.dedup();
    let ids: Vec<Uuid> = batch
        .iter()
        .flat_map(|a| a.events.iter().map(|e| e.event_id))
        .collect();
    // One max() per stream, each an index probe for the stream's last revision: a
    // `max() ... GROUP BY` over the streams read every event of them, and ran at a third
    // of this rate once streams held a few thousand events.
    let known = sqlx::query(
        "SELECT s.id, (SELECT max(e.stream_revision) FROM events e WHERE e.stream_id = s.id), \
                NULL::UUID \
         FROM unnest($1::TEXT[]) AS s(id) \
         UNION ALL SELECT stream_id, stream_revision, event_id FROM events \
         WHERE event_id = ANY($2)",
    )
    .bind(&streams)
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut revisions: HashMap<String, u64> = HashMap::new();
    let mut taken: HashSet<Uuid> = HashSet::new();
    for row in &known {
        match row.try_get::<Option<Uuid>, _>(2)? {
            Some(id) => {
                taken.insert(id);
            }
            None => {
                if let Some(revision) = row.try_get::<Option<i64>, _>(1)? {
                    revisions.insert(row.try_get(0)?, revision as u64);
                }
            }
        }
    }

    // Each append against the state the earlier ones leave: its first revision, or none.
    let mut firsts = Vec::with_capacity(batch.len());
    for append in batch {
        let current = revisions.get(&append.stream).copied();
        let fits = match append.expected {
            ExpectedRevision::Any => true,
            ExpectedRevision::NoStream => current.is_none(),
            ExpectedRevision::Exact(n) => current == Some(n),
        };
        if !fits || append.events.iter().any(|e| taken.contains(&e.event_id)) {
            firsts.push(None);
            continue;
        }
        let first = current.map_or(0, |r| r + 1);
        revisions.insert(
            append.stream.clone(),
            first + append.events.len() as u64 - 1,
        );
        taken.extend(append.events.iter().map(|e| e.event_id));
        firsts.push(Some(first));
    }

    let accepted = || {
        batch
            .iter()
            .zip(&firsts)
            .filter_map(|(a, first)| first.map(|first| (a, first)))
    };
    let rows: usize = accepted().map(|(a, _)| a.events.len()).sum();
    let mut positions = Vec::new();
    if rows > 0 {
        let mut columns = Columns::with_capacity(rows);
        for (append, first) in accepted() {
            columns.push(&append.stream, first, &append.events);
        }
        match columns.insert(&mut conn).await {
            Ok(inserted) => positions = inserted,
            Err(_) => return Ok(None),
        }
    }

    // Positions follow the rows' order: hand them out append by append.
    let mut positions = positions.into_iter().map(|p| GlobalPosition(p as u64));
    Ok(Some(
        batch
            .iter()
            .zip(firsts)
            .map(|(append, first)| {
                Ok(match first {
                    None => Outcome::Refused,
                    Some(first) => Outcome::Appended(AppendResult {
                        positions: positions.by_ref().take(append.events.len()).collect(),
                        next_expected: ExpectedRevision::Exact(
                            first + append.events.len() as u64 - 1,
                        ),
                        already_appended: false,
                    }),
                })
            })
            .collect(),
    ))
}

/// The accepted events of a batch, as the arrays of one INSERT.
struct Columns<'a> {
    streams: Vec<&'a str>,
    revisions: Vec<i64>,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    versions: Vec<i32>,
    data: Vec<&'a serde_json::Value>,
    metadata: Vec<Json<&'a Metadata>>,
}

impl<'a> Columns<'a> {
    fn with_capacity(rows: usize) -> Self {
        Self {
            streams: Vec::with_capacity(rows),
            revisions: Vec::with_capacity(rows),
            ids: Vec::with_capacity(rows),
            types: Vec::with_capacity(rows),
            versions: Vec::with_capacity(rows),
            data: Vec::with_capacity(rows),
            metadata: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, stream: &'a str, first: u64, events: &'a [NewEvent]) {
        for (i, event) in events.iter().enumerate() {
            self.streams.push(stream);
            self.revisions.push((first + i as u64) as i64);
            self.ids.push(event.event_id);
            self.types.push(&event.event_type);
            self.versions.push(event.schema_version as i32);
            self.data.push(&event.data);
            self.metadata.push(Json(&event.metadata));
        }
    }

    /// Inserts the rows as the transaction's first, numbered from `xid << 20` in order;
    /// returns their positions in that order.
    async fn insert(self, conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
        let mut positions: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO events (global_position, event_id, stream_id, stream_revision, \
                                 event_type, schema_version, data, metadata) \
             SELECT ((pg_current_xact_id()::TEXT::BIGINT) << 20) + t.ord - 1, \
                    t.id, t.s, t.r, t.ty, t.v, t.d, t.m \
             FROM unnest($1::UUID[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::INT4[], \
                         $6::JSONB[], $7::JSONB[]) WITH ORDINALITY AS t(id, s, r, ty, v, d, m, ord) \
             RETURNING global_position",
        )
        .bind(self.ids)
        .bind(self.streams)
        .bind(self.revisions)
        .bind(self.types)
        .bind(self.versions)
        .bind(self.data)
        .bind(self.metadata)
        .fetch_all(conn)
        .await?;
        // RETURNING promises no order; the positions grow with the rows'.
        positions.sort_unstable();
        Ok(positions)
    }
}

/// A batch of one: the guarded INSERT alone, one round trip, as fast as an append that
/// does not queue.
async fn alone(pg: &PgPool, append: &Append<Reply>) -> Reply {
    match insert(
        pg,
        &append.stream,
        append.expected,
        Positions::OwnTransaction,
        Checks::Guards,
        &append.events,
    )
    .await?
    {
        Ok(result) => Ok(Outcome::Appended(result)),
        Err(Refused::Missing | Refused::Taken) => Ok(Outcome::Refused),
    }
}

/// After a failed insert: each append inside a savepoint, so a failure undoes that append
/// only and is its own answer. Errors of the transaction itself fail the whole batch.
async fn with_savepoints(pg: &PgPool, batch: &[Append<Reply>]) -> Result<Vec<Reply>, sqlx::Error> {
    let mut tx = pg.begin().await?;
    let mut replies = Vec::with_capacity(batch.len());
    for (index, append) in batch.iter().enumerate() {
        sqlx::query("SAVEPOINT append").execute(&mut *tx).await?;
        let inserted = insert(
            &mut *tx,
            &append.stream,
            append.expected,
            positions(index),
            Checks::Guards,
            &append.events,
        )
        .await;
        let reply = match inserted {
            Ok(Ok(result)) => Ok(Outcome::Appended(result)),
            Ok(Err(Refused::Missing)) => Ok(Outcome::Refused),
            Ok(Err(Refused::Taken)) => {
                sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut *tx)
                    .await?;
                Ok(Outcome::Refused)
            }
            Err(error) => {
                sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut *tx)
                    .await?;
                Err(error)
            }
        };
        // Released, so that at most one subtransaction is open at a time.
        sqlx::query("RELEASE SAVEPOINT append")
            .execute(&mut *tx)
            .await?;
        replies.push(reply);
    }
    tx.commit().await?;
    Ok(replies)
}
