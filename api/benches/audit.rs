//! An audit page on a long log: the account's events found through the audit index
//! (positions from the index, then those events from the log) beside the way pages were
//! answered before the index, walking the whole log through the per-account selector, in
//! the same run. Also times the index catching up on the whole log, once.
//!
//! The log holds `BENCH_EVENTS` events (default 200,000), a hundred per account, appended
//! account after account; the audited account's hundred come last, so the walk reads the
//! whole log, as it did for any account whose events reach its end.
//!
//! `cargo bench -p api --bench audit` (needs the tests' PostgreSQL).

#![allow(clippy::print_stdout)] // a benchmark prints its figures

use api::audit::select::Selector;
use domain::AccountId;
use projections::audit_index::{AuditIndex, events_of};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::testkit::{TestPostgres, TestSqlite};
use store::{
    Actor, Database, EventLog, ExpectedRevision, GlobalPosition, Metadata, NewEvent, RecordedEvent,
};
use uuid::Uuid;

const PER_ACCOUNT: usize = 100;
const PAGE: usize = 1_000;
const RUNS: usize = 5;

fn happened(account: Uuid, n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "BenchHappened".into(),
        schema_version: 1,
        data: json!({ "n": n, "note": "an event of the audit bench" }),
        metadata: Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: "bench".into(),
            },
            occurred_at: domain::Timestamp::from_unix_micros(1_800_000_000_000_000),
            idempotency_key: None,
            data_subject: Some(account),
        },
    }
}

/// Appends `accounts` accounts' events, the last account's after all the others'.
async fn fill(log: &Arc<dyn EventLog>, accounts: usize, audited: Uuid) {
    let others: Vec<Uuid> = (1..accounts).map(|_| Uuid::new_v4()).collect();
    let chunks: Vec<Vec<Uuid>> = others
        .chunks(others.len().div_ceil(8).max(1))
        .map(<[Uuid]>::to_vec)
        .collect();
    let writers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let log = log.clone();
            tokio::spawn(async move {
                for account in chunk {
                    let events = (0..PER_ACCOUNT).map(|n| happened(account, n)).collect();
                    log.append(
                        &format!("account-{account}"),
                        ExpectedRevision::NoStream,
                        events,
                    )
                    .await
                    .expect("append");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let events = (0..PER_ACCOUNT).map(|n| happened(audited, n)).collect();
    log.append(
        &format!("account-{audited}"),
        ExpectedRevision::NoStream,
        events,
    )
    .await
    .expect("append");
}

/// The audited account's events as pages were found before the index: the whole log,
/// page by page, through the selector.
async fn walk(log: &dyn EventLog, account: Uuid) -> Vec<RecordedEvent> {
    let mut selector = Selector::new(AccountId(account));
    let mut found = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = log.read_all(after, PAGE).await.expect("read");
        let Some(last) = page.last().map(|e| e.position) else {
            return found;
        };
        after = last;
        found.extend(page.into_iter().filter(|e| selector.admits(e)));
    }
}

/// The same events through the index.
async fn through_index(db: &Database, log: &dyn EventLog, account: Uuid) -> Vec<RecordedEvent> {
    let at = events_of(db, &account.to_string(), GlobalPosition::START, PAGE)
        .await
        .expect("index");
    log.read_events(&at).await.expect("read")
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let events: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let accounts = (events / PER_ACCOUNT).max(2);
    let sqlite = TestSqlite::create();
    let postgres = TestPostgres::create().await;
    println!(
        "an audit page of one account's {PER_ACCOUNT} events on a log of {} events, median of {RUNS} runs",
        accounts * PER_ACCOUNT
    );
    for (backend, url) in [
        ("embedded (SQLite)", sqlite.url.clone()),
        ("PostgreSQL", postgres.url.clone()),
    ] {
        println!("-- {backend}");
        let db = Database::connect(&url, 8).await.expect("connect");
        db.migrate().await.expect("migrate");
        let log = db.event_log().await.expect("log");
        let audited = Uuid::new_v4();
        fill(&log, accounts, audited).await;

        let index = AuditIndex::new(db.clone(), log.clone());
        let began = Instant::now();
        index.catch_up().await.expect("index");
        let indexing = began.elapsed();
        println!(
            "index the whole log, once                 {:>9.0} events/s ({:.1} s)",
            (accounts * PER_ACCOUNT) as f64 / indexing.as_secs_f64(),
            indexing.as_secs_f64()
        );

        let (mut walked, mut indexed) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let began = Instant::now();
            let by_walk = walk(&*log, audited).await;
            walked.push(began.elapsed());
            let began = Instant::now();
            index.catch_up().await.expect("index");
            let by_index = through_index(&db, &*log, audited).await;
            indexed.push(began.elapsed());
            assert_eq!(by_walk.len(), PER_ACCOUNT);
            assert_eq!(by_walk, by_index, "the index finds what the walk finds");
        }
        let (walked, indexed) = (median(walked), median(indexed));
        println!(
            "walk the log through the selector (before) {:>9.2} ms  (1.00x)",
            walked.as_secs_f64() * 1e3
        );
        println!(
            "through the audit index                    {:>9.2} ms  ({:.0}x faster)",
            indexed.as_secs_f64() * 1e3,
            walked.as_secs_f64() / indexed.as_secs_f64()
        );
        db.close().await;
    }
}
