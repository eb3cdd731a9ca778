//! The PostgreSQL log's writer: group commit (see [`crate::group_commit`]).
//!
//! A batch is one transaction, sorted by stream first (stable: appends to one stream keep
//! their order), so that two writers (two processes) wait for each other's rows in the
//! same order and cannot deadlock on them. Its events are inserted in one statement,
//! numbered from `xid << 20` in batch order, so the whole batch becomes visible at once and
//! in order. A refused append writes nothing. The appends are decided by `plan`, three
//! ways, each tried when the one before cannot settle the batch:
//! 1. [`trusting`], one round trip: nothing is read; each stream is taken to be as its
//!    first append expects, and the insert checks it (guards for `Exact` appends, the
//!    unique keys for the rest), writing all or nothing. This is the common case.
//! 2. [`at_once`], two round trips: read the last revision of the batch's streams and
//!    which of its event ids are taken, decide each append against that, and insert.
//! 3. [`with_savepoints`]: only a transaction open elsewhere (another process,
//!    `append_in`) can take a key between that read and the insert, which then fails and
//!    writes nothing. Each append is then one guarded INSERT ([`Checks::Guards`]) inside a
//!    savepoint, so the refused one (or one failing for any other reason, a payload
//!    PostgreSQL rejects) is undone alone and the others commit.
//!
//! A batch of one is a single guarded INSERT ([`alone`]), as fast as an append that does
//! not queue.
//!
//! A refusal is answered as such; the caller explains it after the commit
//! (`explain_refusal`), so a retry by event id, even of an append made earlier in the same
//! batch, returns the original positions.

use super::columns::Columns;
use super::plan::{Knowledge, Plan, Proposal, plan};
use super::statements::{Checks, Positions, Refused, STREAMS_AND_IDS, insert};
use crate::envelope::AppendResult;
use crate::error::StoreError;
use crate::group_commit::{Append, Batcher, shared_failure};
use crate::log::AppendSignal;
use crate::readers::Readers;
use sqlx::{Connection, PgConnection, Row};
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
    conns: Readers<PgConnection>,
    batcher: Arc<Mutex<Batcher<Reply>>>,
    signal: AppendSignal,
    announce: Arc<Notify>,
) {
    loop {
        let Some(mut batch) = batcher.lock().await.next_batch().await else {
            return;
        };
        // Stable: appends to one stream keep the order they queued in.
        batch.sort_by(|a, b| a.stream.cmp(&b.stream));
        let mut conn = match conns.acquire().await {
            Ok(conn) => conn,
            Err(error) => {
                for append in batch {
                    let _ = append.reply.send(Err(shared_failure(&error)));
                }
                continue;
            }
        };
        let replies = commit(conn.conn(), &batch).await;
        // A failed batch may have left the connection mid-transaction: it is closed.
        if replies.iter().all(Result::is_ok) {
            conn.release();
        }
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

async fn commit(conn: &mut PgConnection, batch: &[Append<Reply>]) -> Vec<Reply> {
    if let [append] = batch {
        return vec![alone(conn, append).await];
    }
    let proposals: Vec<Proposal<'_>> = batch
        .iter()
        .map(|a| Proposal {
            stream: &a.stream,
            expected: a.expected,
            ids: a.events.iter().map(|e| e.event_id).collect(),
        })
        .collect();
    if let Some(replies) = trusting(conn, batch, &proposals).await {
        return replies;
    }
    let outcome = match at_once(conn, batch, &proposals).await {
        Ok(Some(replies)) => Ok(replies),
        Ok(None) => with_savepoints(conn, batch).await,
        Err(error) => Err(error),
    };
    outcome.unwrap_or_else(|error| batch.iter().map(|_| Err(shared_failure(&error))).collect())
}

/// The common case, in one round trip: nothing is read, the batch is planned trusting
/// that each stream is as its first append expects, and the insert checks it, writing all
/// or nothing. `None` when it wrote nothing (the log was not as trusted, an event id was
/// taken, or anything failed): the batch is then decided again from a read.
async fn trusting(
    conn: &mut PgConnection,
    batch: &[Append<Reply>],
    proposals: &[Proposal<'_>],
) -> Option<Vec<Reply>> {
    let plan = plan(proposals, &Knowledge::Trusted)?;
    let inserted = write(conn, batch, &plan).await.ok()??;
    Some(replies(batch, &plan, inserted))
}

/// In two round trips whatever the batch's size: read the last revisions of its streams
/// and which of its event ids are taken, decide every append from that, and insert every
/// accepted event in one statement, its own transaction. `None` when that insert failed,
/// writing nothing: a transaction open elsewhere took one of its keys (or an event cannot
/// be stored).
async fn at_once(
    conn: &mut PgConnection,
    batch: &[Append<Reply>],
    proposals: &[Proposal<'_>],
) -> Result<Option<Vec<Reply>>, sqlx::Error> {
    // Two statements, each its own transaction: the insert commits on its own, and the
    // read before it needs no transaction (a key taken in between fails the insert).
    let mut streams: Vec<&str> = batch.iter().map(|a| a.stream.as_str()).collect();
    streams.dedup();
    let ids: Vec<Uuid> = proposals
        .iter()
        .flat_map(|p| p.ids.iter().copied())
        .collect();
    // One max() per stream, each an index probe for the stream's last revision: a
    // `max() ... GROUP BY` over the streams read every event of them, and ran at a third
    // of this rate once streams held a few thousand events.
    let known = sqlx::query(STREAMS_AND_IDS)
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
    let knowledge = Knowledge::Read {
        revisions: &revisions,
        taken: &taken,
    };
    // Every append is decided when the log was read.
    let Some(plan) = plan(proposals, &knowledge) else {
        return Ok(None);
    };
    match write(conn, batch, &plan).await {
        Ok(Some(inserted)) => Ok(Some(replies(batch, &plan, inserted))),
        Ok(None) | Err(_) => Ok(None),
    }
}

/// Inserts the accepted events of `plan` in one statement, its own transaction, if its
/// guards hold; returns their (position, revision) in batch order, or `None` when the
/// guards did not hold and nothing was written.
async fn write(
    conn: &mut PgConnection,
    batch: &[Append<Reply>],
    plan: &Plan<'_>,
) -> Result<Option<Vec<(i64, i64)>>, sqlx::Error> {
    let accepted = || {
        batch
            .iter()
            .zip(&plan.firsts)
            .filter_map(|(a, first)| first.map(|first| (a, first)))
    };
    let rows: usize = accepted().map(|(a, _)| a.events.len()).sum();
    if rows == 0 {
        return Ok(Some(Vec::new()));
    }
    let mut columns = Columns::with_capacity(rows);
    for (append, first) in accepted() {
        columns.push(&append.stream, first, &append.events);
    }
    let inserted = columns.insert(conn, &plan.guards).await?;
    if inserted.is_empty() {
        return Ok(None);
    }
    if inserted.len() != rows {
        // The guards are one condition for the whole statement: all rows or none.
        return Err(sqlx::Error::Protocol(format!(
            "a group commit wrote {} of its {rows} events",
            inserted.len()
        )));
    }
    Ok(Some(inserted))
}

/// The answers of a written plan, given the inserted (position, revision) in batch order.
fn replies(batch: &[Append<Reply>], plan: &Plan<'_>, inserted: Vec<(i64, i64)>) -> Vec<Reply> {
    let mut inserted = inserted.into_iter();
    batch
        .iter()
        .zip(&plan.firsts)
        .map(|(append, first)| {
            Ok(match first {
                None => Outcome::Refused,
                Some(_) => {
                    let rows: Vec<(i64, i64)> =
                        inserted.by_ref().take(append.events.len()).collect();
                    let last = rows.last().map_or(0, |(_, revision)| *revision) as u64;
                    Outcome::Appended(AppendResult::written(
                        rows.iter().map(|(position, _)| *position),
                        last,
                    ))
                }
            })
        })
        .collect()
}

/// A batch of one: the guarded INSERT alone, one round trip, as fast as an append that
/// does not queue.
async fn alone(conn: &mut PgConnection, append: &Append<Reply>) -> Reply {
    match insert(
        conn,
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
async fn with_savepoints(
    conn: &mut PgConnection,
    batch: &[Append<Reply>],
) -> Result<Vec<Reply>, sqlx::Error> {
    let mut tx = conn.begin().await?;
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
