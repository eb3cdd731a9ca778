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

use commands::credits::{Credits, Grant};
use commands::{Clock, CommandContext, CommandError, EventCodec, Executor, SystemClock};
use domain::AccountId;
use domain::credits::{Feature, SourceKind};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::Database;
use store::testkit::TestPostgres;
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
    drop(log);
    db.close().await;
    Ok(())
}
