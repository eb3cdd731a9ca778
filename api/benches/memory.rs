//! Memory of the service as an operator sees it: the resident set (RSS) of the `accounts`
//! binary on the embedded default, idle, after registrations, after a burst of sign-ins
//! from 16 clients, then a few seconds later (memory the allocator keeps shows here). Each
//! figure is printed beside the idle RSS measured in the same run, and beside the issue's
//! targets (in MB, and in MiB), with its anonymous part (the heap and stacks, without the
//! binary's mapped pages: see [`Resident`]).
//!
//! A second phase starts the service on a SQLite file the bench filled beforehand with
//! about a million real events (the mix of `projections/benches/synthetic`: accounts,
//! sessions and credit ledgers), waits until every read model has caught up with the log,
//! and prints the peak and settled RSS beside the idle figure of the first phase.
//!
//! `cargo bench -p api --bench memory` (Linux: reads `/proc/<pid>/status`; `BENCH_SIGN_INS`
//! sets the number of sign-ins, default 160; `BENCH_EVENTS` the events of the second
//! phase, default 1,000,000, 0 to skip it).

#![allow(clippy::print_stdout)] // a benchmark prints its figures

#[path = "../../projections/benches/synthetic/mod.rs"]
mod synthetic;

use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;

/// The service, killed when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident set of a process, in MiB: all of it (`VmRSS`, what the targets are
/// about) and its anonymous part (`RssAnon`: the heap and stacks). The rest is mostly the
/// binary's own pages, and how many of those are mapped depends on the page cache: the
/// kernel maps the cached neighbours of a page it faults in, so the same binary reads
/// some 4 MiB higher right after it was written or copied than after its pages were
/// dropped from the cache. The anonymous part does not move with it.
#[derive(Debug, Clone, Copy, Default)]
struct Resident {
    total: f64,
    anon: f64,
}

fn rss_mib(pid: u32) -> Resident {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| -> f64 {
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc status"));
        kib / 1024.0
    };
    Resident {
        total: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Prints one figure beside the idle one and its target. The targets are in MB
/// (decimal), the figures in MiB as `/proc` counts them: the target is printed in both, so
/// 50 MB reads as the 47.7 MiB it is.
fn report(name: &str, rss: Resident, idle: Resident, target_mb: f64) {
    let target_mib = target_mb * 1e6 / f64::from(1 << 20);
    let over = if rss.total < target_mib { "" } else { " OVER" };
    println!(
        "{name:<46} {:>7.1} MiB  ({:.2}x idle; target < {target_mb:.0} MB = {target_mib:.1} MiB{over}; anonymous {:.1} MiB)",
        rss.total,
        rss.total / idle.total,
        rss.anon
    );
}

/// Starts the service on the data directory `dir` and waits until it answers; returns it
/// and its address.
async fn start(dir: &Path, client: &reqwest::Client) -> (Service, String) {
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_accounts"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the accounts binary starts"),
    );
    for _ in 0..600 {
        if client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return (service, address);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the service did not answer /healthz");
}

#[tokio::main]
async fn main() {
    let sign_ins: usize = std::env::var("BENCH_SIGN_INS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(160);
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let data = store::testkit::TestSqlite::create();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let (service, address) = start(&data.dir, &client).await;
    let pid = service.0.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mib(pid);

    // One account per client (each registration hashes a password too).
    for n in 0..CLIENTS {
        let response = client
            .post(format!("{address}/auth/register"))
            .json(&json!({"email": format!("memory-{n}@example.com"),
                          "password": "correct-horse-7-battery", "display_name": "Memory"}))
            .send()
            .await
            .expect("register");
        assert!(
            response.status().is_success(),
            "register: {}",
            response.status()
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("embedded default, {CLIENTS} accounts, {sign_ins} sign-ins from {CLIENTS} clients");
    report("RSS idle (started, nothing asked yet)", idle, idle, 50.0);
    report(
        &format!("RSS after {CLIENTS} registrations"),
        rss_mib(pid),
        idle,
        150.0,
    );

    let per_client = sign_ins.div_ceil(CLIENTS);
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let client = client.clone();
        let address = address.clone();
        clients.push(tokio::spawn(async move {
            let mut failed = 0;
            for _ in 0..per_client {
                let ok = client
                    .post(format!("{address}/auth/login"))
                    .json(&json!({"email": format!("memory-{n}@example.com"),
                                  "password": "correct-horse-7-battery"}))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                failed += usize::from(!ok);
            }
            failed
        }));
    }
    let mut failed = 0;
    for client in clients {
        failed += client.await.expect("a client");
    }
    let loaded = rss_mib(pid);
    report(
        &format!(
            "RSS after {} sign-ins ({failed} failed)",
            per_client * CLIENTS
        ),
        loaded,
        idle,
        150.0,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    report("RSS 5 s later", rss_mib(pid), idle, 150.0);
    drop(service);
    if events > 0 {
        after_a_long_log(events, idle, &client).await;
    }
}

/// Fills a fresh data directory with `events` events, starts the service on it, and
/// reports its RSS while its read models catch up and once they have.
async fn after_a_long_log(events: u64, idle: Resident, client: &reqwest::Client) {
    let data = store::testkit::TestSqlite::create();
    let started = Instant::now();
    let (appended, read_models) = {
        let db = store::Database::connect(&data.url, 8)
            .await
            .expect("SQLite");
        db.migrate().await.expect("migrations");
        let log = db.event_log().await.expect("log");
        // The service's own master key file; the data keys, made here in the data
        // database, move to its key store when it starts.
        let (master, _) =
            vault::MasterKey::load_or_create(&data.dir.join("master.key")).expect("master key");
        let keys = Arc::new(vault::DataKeys::new(db.clone(), &master));
        let codec = commands::EventCodec::new(keys.clone());
        let appended = synthetic::build(&log, &codec, &keys, events)
            .await
            .expect("the log");
        let read_models: Vec<&'static str> = projections::all(&vault::FieldSealer::new(keys))
            .iter()
            .map(|p| p.name().key())
            .collect();
        drop(log);
        db.close().await;
        (appended, read_models)
    };
    println!(
        "embedded default started on a log of {appended} events (written in {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    let (service, _) = start(&data.dir, client).await;
    let pid = service.0.id();
    let db = store::Database::connect(&data.url, 1)
        .await
        .expect("SQLite");
    let started = Instant::now();
    let mut peak = Resident::default();
    loop {
        let now = rss_mib(pid);
        if now.total > peak.total {
            peak = now;
        }
        if caught_up(&db, appended, &read_models).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let caught_up_in = started.elapsed().as_secs_f64();
    report(
        &format!("RSS peak while catching up ({caught_up_in:.0} s)"),
        peak,
        idle,
        150.0,
    );
    report(
        "RSS once every read model caught up",
        rss_mib(pid),
        idle,
        150.0,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    report("RSS 5 s later", rss_mib(pid), idle, 150.0);
    db.close().await;
}

/// Whether every read model's checkpoint reached the log's head (the service registers
/// their checkpoints when it starts; until then they count as behind).
async fn caught_up(db: &store::Database, appended: u64, read_models: &[&str]) -> bool {
    let head: Option<i64> = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(db.pool())
        .await
        .unwrap_or(None);
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, position FROM projection_checkpoints")
            .fetch_all(db.pool())
            .await
            .unwrap_or_default();
    let head = head.unwrap_or(0);
    let behind = read_models
        .iter()
        .filter(|name| !rows.iter().any(|(n, p)| n == *name && *p >= head))
        .count();
    head as u64 >= appended && behind == 0
}
