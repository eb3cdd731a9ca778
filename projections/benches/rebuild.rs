//! Rebuild benchmark: how fast `accounts rebuild <read model>` replays a long log.
//!
//! `cargo bench -p projections --bench rebuild` creates a throw-away PostgreSQL database
//! (`TEST_DATABASE_URL`'s server; `BENCH_BACKEND=sqlite` for a SQLite file instead),
//! appends `BENCH_EVENTS` (default 1,000,000) real sealed events in large batches (the
//! mix of `synthetic`: per account 5 account and session events and 95 ledger events), then
//! times:
//! - the baseline: reading the whole log in pages of the rebuild's size, nothing applied;
//! - the rebuild of every read model, as `accounts rebuild all` runs it (read, decode,
//!   apply, swap).
//!
//! Each figure is printed in events per second and as a ratio to the baseline of the same
//! run. Nothing is asserted by timing; the rebuilt credit balances are checked against
//! what the log implies. `BENCH_ONLY=credits` (a comma-separated list of read models)
//! rebuilds only those.

#![allow(clippy::print_stdout)] // a benchmark prints its figures

mod synthetic;

/// The allocator of the `accounts` binary, whose `rebuild` this times (`api/src/lib.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use commands::EventCodec;
use projections::ProjectionRunner;
use projections::rebuild::REBUILD_BATCH_SIZE;
use std::sync::Arc;
use std::time::Instant;
use store::testkit::{TestPostgres, TestSqlite};
use store::{Database, EventDecoder, GlobalPosition};
use vault::{DataKeys, FieldSealer, MasterKey};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let sqlite = std::env::var("BENCH_BACKEND").is_ok_and(|b| b == "sqlite");
    let (_pg, _file, url) = if sqlite {
        let file = TestSqlite::create();
        let url = file.url.clone();
        (None, Some(file), url)
    } else {
        let server = TestPostgres::create().await;
        let url = server.url.clone();
        (Some(server), None, url)
    };
    let db = Database::connect(&url, 8).await?;
    db.migrate().await?;
    let log = db.event_log().await?;
    let master = MasterKey::generate();
    let keys = Arc::new(DataKeys::new(db.clone(), &master));
    let codec = EventCodec::new(keys.clone());

    let started = Instant::now();
    let appended = synthetic::build(&log, &codec, &keys, events).await?;
    let accounts = appended / synthetic::EVENTS_PER_ACCOUNT;
    println!(
        "{} log: {appended} events, {accounts} accounts, appended in {:.1} s",
        if sqlite { "SQLite" } else { "PostgreSQL" },
        started.elapsed().as_secs_f64()
    );

    // A fresh decoder and runner, as `accounts rebuild` has: no data key cached yet.
    let keys = Arc::new(DataKeys::new(db.clone(), &master));
    let codec = EventCodec::new(keys.clone());
    let runner = ProjectionRunner::new(
        db.clone(),
        log.clone(),
        Arc::new(codec.clone()),
        projections::all(&FieldSealer::new(keys)),
    );
    runner.prepare().await?;

    // Baseline: the whole log read page by page, nothing decoded or applied.
    let started = Instant::now();
    let (mut position, mut read) = (GlobalPosition::START, 0u64);
    loop {
        let page = log.read_all(position, REBUILD_BATCH_SIZE).await?;
        let Some(last) = page.last() else { break };
        position = last.position;
        read += page.len() as u64;
    }
    let baseline = read as f64 / started.elapsed().as_secs_f64();
    println!(
        "{:<34} {:>9.0} events/s  (1.00x, baseline)",
        "read the whole log", baseline
    );
    // For reference: the same with every event decoded (personal fields opened).
    let started = Instant::now();
    let mut position = GlobalPosition::START;
    loop {
        let page = log.read_all(position, REBUILD_BATCH_SIZE).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for event in page {
            codec
                .decode_event(event)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        position = last;
    }
    let rate = read as f64 / started.elapsed().as_secs_f64();
    println!(
        "{:<34} {:>9.0} events/s  ({:.2}x)",
        "read and decode the whole log",
        rate,
        rate / baseline
    );

    let only = std::env::var("BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|only| only.split(',').any(|n| n.trim() == name))
    };
    for name in runner
        .names()
        .into_iter()
        .filter(|name| wanted(&name.to_string()))
    {
        let started = Instant::now();
        let report = runner.rebuild(name).await?;
        let seconds = started.elapsed().as_secs_f64();
        let rate = report.events as f64 / seconds;
        println!(
            "{:<34} {:>9.0} events/s  ({:.2}x; {:.1} s)",
            format!("rebuild {name}"),
            rate,
            rate / baseline,
            seconds
        );
    }

    // The rebuilt balances are what the synthetic ledger implies.
    if !wanted("credits") {
        return Ok(());
    }
    let (rows, balance, held): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT count(*), CAST(sum(balance) AS BIGINT), CAST(sum(held) AS BIGINT) \
         FROM credit_balances",
    )
    .fetch_one(db.pool())
    .await?;
    assert_eq!(rows as u64, accounts, "one balance per account");
    assert_eq!(held, Some(0), "every hold settled or released");
    println!(
        "check: {rows} balances, {} credits left, none held",
        balance.unwrap_or(0)
    );
    drop(runner);
    drop(log);
    db.close().await;
    Ok(())
}
