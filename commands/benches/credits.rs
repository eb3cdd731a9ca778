//! Credit-spend benchmark on PostgreSQL (prints figures, asserts only correctness).
//!
//! `cargo bench -p commands --bench credits` creates a throw-away database on the test
//! server (`TEST_DATABASE_URL`) and measures spends (a hold, then its settlement) per
//! second:
//! - 16 clients, each on its own account;
//! - 16 clients on one hot account through one service node (commands on the same stream
//!   queue in-process);
//! - 16 clients on one hot account through 16 nodes (no shared queue: every race is an
//!   optimistic-concurrency conflict, retried).
//!
//! For the hot cases it checks that no update was lost (the ledger replayed from the log
//! equals the grant minus every acknowledged spend) and prints the retry rate.
//! `BENCH_SECONDS` sets the length of each phase (default 5).
//!
//! Then it times a cold load (a node with an empty cache) of one long credits stream
//! (`BENCH_STREAM_EVENTS`, default 100,000 events of holds and settlements): folded from its
//! first event, the baseline, and from its latest snapshot plus the tail.

use commands::credits::{Credits, Grant};
use commands::{Clock, CommandContext, CommandError, EventCodec, Executor, SystemClock};
use domain::credits::{CreditLedger, CreditsCommand, CreditsEvent, Feature, SourceKind};
use domain::{AccountId, Aggregate};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::testkit::TestPostgres;
use store::{Database, SnapshotStore};
use uuid::Uuid;
use vault::{DataKeys, MasterKey};

const CLIENTS: usize = 16;
const SPEND: u64 = 3;

struct Node {
    exec: Executor,
    credits: Credits,
}

fn node(db: &Database, log: &Arc<dyn store::EventLog>, master: &MasterKey) -> Node {
    let codec = EventCodec::new(Arc::new(DataKeys::new(db.clone(), master)));
    let exec = Executor::new(log.clone(), codec);
    let credits = Credits::new(
        exec.clone(),
        Arc::new(SystemClock),
        Duration::from_secs(3600),
    );
    Node { exec, credits }
}

async fn fund(credits: &Credits, account: AccountId) {
    let grant = Grant {
        grant_key: "bench".into(),
        amount: 1_000_000_000,
        source: SourceKind::Purchase,
        expires_at: None,
    };
    credits
        .grant(
            &CommandContext::system("bench"),
            account,
            grant,
            SystemClock.now(),
        )
        .await
        .expect("grant");
}

/// One spend, retried by the client if the service gave up on contention.
async fn spend(credits: &Credits, account: AccountId, retries: &AtomicU64) {
    let ctx = CommandContext::system("bench");
    let generation = Uuid::new_v4().to_string();
    loop {
        match credits
            .hold(
                &ctx,
                account,
                &generation,
                Feature::Generation,
                SPEND + 2,
                None,
            )
            .await
        {
            Ok(_) => break,
            Err(CommandError::Contention) => retries.fetch_add(1, Ordering::Relaxed),
            Err(other) => panic!("hold failed: {other}"),
        };
    }
    loop {
        match credits
            .settle(&ctx, account, &generation, SPEND, None)
            .await
        {
            Ok(_) => return,
            Err(CommandError::Contention) => retries.fetch_add(1, Ordering::Relaxed),
            Err(other) => panic!("settle failed: {other}"),
        };
    }
}

struct Phase {
    spends: u64,
    rate: f64,
    retries: u64,
}

async fn phase(seconds: Duration, clients: Vec<(Credits, AccountId)>) -> Phase {
    let done = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + seconds;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(credits, account)| {
            let (done, retries) = (done.clone(), retries.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    spend(&credits, account, &retries).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    let spends = done.load(Ordering::Relaxed);
    Phase {
        spends,
        rate: spends as f64 / started.elapsed().as_secs_f64(),
        retries: retries.load(Ordering::Relaxed),
    }
}

/// Replays the ledger from the log with a fresh node: no cache, nothing assumed.
async fn check_no_lost_update(fresh: &Node, account: AccountId, spends: u64) {
    let ledger = fresh.credits.ledger(account).await.expect("ledger");
    assert_eq!(ledger.held(), 0);
    assert_eq!(
        ledger.balance(),
        1_000_000_000 - spends * SPEND,
        "the ledger must equal the grant minus every acknowledged spend"
    );
}

fn print(line: String) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let server = TestPostgres::create().await;
    let db = Database::connect(&server.url, CLIENTS as u32).await?;
    db.migrate().await?;
    let log = db.event_log().await?;
    let master = MasterKey::generate();
    print(format!(
        "credit spends (hold + settle) on PostgreSQL, {CLIENTS} clients, {} s per phase",
        seconds.as_secs()
    ));

    // 16 clients, 16 accounts, one node.
    let shared = node(&db, &log, &master);
    let accounts: Vec<AccountId> = (0..CLIENTS).map(|_| AccountId(Uuid::new_v4())).collect();
    for account in &accounts {
        fund(&shared.credits, *account).await;
    }
    let distinct = phase(
        seconds,
        accounts
            .iter()
            .map(|a| (shared.credits.clone(), *a))
            .collect(),
    )
    .await;
    print(format!(
        "{:<58} {:>8.0} spends/s  (1.00x)",
        "16 clients, distinct accounts", distinct.rate
    ));

    // 16 clients, one hot account, one node: commands queue in-process.
    let hot = AccountId(Uuid::new_v4());
    fund(&shared.credits, hot).await;
    let conflicts_before = shared.exec.conflicts();
    let queued = phase(
        seconds,
        (0..CLIENTS)
            .map(|_| (shared.credits.clone(), hot))
            .collect(),
    )
    .await;
    let conflicts = shared.exec.conflicts() - conflicts_before;
    check_no_lost_update(&node(&db, &log, &master), hot, queued.spends).await;
    print(format!(
        "{:<58} {:>8.0} spends/s  ({:.2}x; {:.3} retries per spend; no lost update)",
        "16 clients, one hot account, one node (queued)",
        queued.rate,
        queued.rate / distinct.rate,
        (conflicts + queued.retries) as f64 / queued.spends.max(1) as f64,
    ));

    // 16 clients, one hot account, 16 nodes: optimistic concurrency only.
    let hot = AccountId(Uuid::new_v4());
    let nodes: Vec<Node> = (0..CLIENTS).map(|_| node(&db, &log, &master)).collect();
    fund(&nodes[0].credits, hot).await;
    let racing = phase(
        seconds,
        nodes.iter().map(|n| (n.credits.clone(), hot)).collect(),
    )
    .await;
    let conflicts: u64 = nodes.iter().map(|n| n.exec.conflicts()).sum();
    check_no_lost_update(&node(&db, &log, &master), hot, racing.spends).await;
    print(format!(
        "{:<58} {:>8.0} spends/s  ({:.2}x; {:.2} retries per spend; no lost update)",
        "16 clients, one hot account, 16 nodes (optimistic)",
        racing.rate,
        racing.rate / distinct.rate,
        (conflicts + racing.retries) as f64 / racing.spends.max(1) as f64,
    ));

    cold_loads(&db, &log, &master).await;
    drop(log);
    db.close().await;
    Ok(())
}

/// Writes a long credits stream (holds and their settlements, 1,000 events a command) through
/// a node that keeps snapshots, then times cold loads with and without them.
async fn cold_loads(db: &Database, log: &Arc<dyn store::EventLog>, master: &MasterKey) {
    let events: u64 = std::env::var("BENCH_STREAM_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let snapshots = SnapshotStore::new(db.clone());
    let writer = node(db, log, master);
    let writer = writer.exec.with_snapshots(snapshots.clone());
    let account = AccountId(Uuid::new_v4());
    let stream = commands::credits::ledger_stream(account);
    fund(
        &Credits::new(
            writer.clone(),
            Arc::new(SystemClock),
            Duration::from_secs(3600),
        ),
        account,
    )
    .await;
    let mut written = 1;
    let mut generation = 0u64;
    while written < events {
        let executed = writer
            .execute::<CreditLedger, _>(
                &stream,
                &CommandContext::system("bench"),
                None,
                SystemClock.now(),
                |ledger| {
                    let mut ledger = ledger.clone();
                    let mut decided: Vec<CreditsEvent> = Vec::new();
                    let mut n = generation;
                    while decided.len() < 1_000 {
                        n += 1;
                        let id = format!("gen-{n}");
                        let at = SystemClock.now();
                        for command in [
                            CreditsCommand::Hold {
                                max_open_holds: 10,
                                generation_id: id.clone(),
                                feature: Feature::Generation,
                                amount: SPEND + 2,
                                hold_expires_at: at.plus(Duration::from_secs(3600)),
                                api_token_id: None,
                                at,
                            },
                            CreditsCommand::Settle {
                                generation_id: id,
                                amount: SPEND,
                                api_token_id: None,
                                at,
                            },
                        ] {
                            for event in ledger.decide(&command)? {
                                ledger.evolve(&event);
                                decided.push(event);
                            }
                        }
                    }
                    Ok(decided)
                },
            )
            .await
            .expect("a thousand events");
        written += executed.events.len() as u64;
        generation += executed.events.len() as u64 / 2;
    }
    // The snapshot is saved in the background: wait for the latest.
    let latest = written / commands::executor::SNAPSHOT_EVERY * commands::executor::SNAPSHOT_EVERY;
    for _ in 0..600 {
        let saved = snapshots
            .load(&stream, "CreditLedger", 1)
            .await
            .expect("snapshot read");
        if saved.is_some_and(|s| s.event_count >= latest) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let time_cold = |with_snapshots: bool| {
        let (snapshots, stream) = (snapshots.clone(), stream.clone());
        async move {
            let mut times = Vec::new();
            let mut state = None;
            for _ in 0..3 {
                let exec = node(db, log, master).exec;
                let exec = if with_snapshots {
                    exec.with_snapshots(snapshots.clone())
                } else {
                    exec
                };
                let started = Instant::now();
                let loaded = exec.load::<CreditLedger>(&stream).await.expect("load");
                times.push(started.elapsed());
                state = Some(loaded.state);
            }
            times.sort();
            (times[1], state.expect("loaded"))
        }
    };
    let (full, folded) = time_cold(false).await;
    let (from_snapshot, restored) = time_cold(true).await;
    assert_eq!(folded, restored, "the snapshot and the log agree");
    print(format!(
        "{:<58} {:>8.1} ms  (1.00x)",
        format!("cold load of a {written}-event credits stream, folded"),
        full.as_secs_f64() * 1e3
    ));
    print(format!(
        "{:<58} {:>8.1} ms  ({:.1}x faster; snapshot at {latest} events + the tail)",
        "  the same from its snapshot",
        from_snapshot.as_secs_f64() * 1e3,
        full.as_secs_f64() / from_snapshot.as_secs_f64().max(1e-9),
    ));
}
