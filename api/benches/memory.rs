//! Memory of the service as an operator sees it: the resident set (RSS) of the `accounts`
//! binary on the embedded default, idle, after registrations, after a burst of sign-ins
//! from 16 clients,
//! then a few seconds later (memory the allocator keeps shows here). Each figure is printed
//! beside the idle RSS measured in the same run, and beside the targets.
//!
//! `cargo bench -p api --bench memory` (Linux: reads `/proc/<pid>/status`; `BENCH_SIGN_INS`
//! sets the number of sign-ins, default 160).

#![allow(clippy::print_stdout)] // a benchmark prints its figures

use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CLIENTS: usize = 16;

/// The service, killed when dropped.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident set of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status");
    kib / 1024.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn report(name: &str, mib: f64, idle: f64, target: f64) {
    println!(
        "{name:<46} {mib:>7.1} MiB  ({:.2}x idle; target < {target:.0} MiB)",
        mib / idle
    );
}

#[tokio::main]
async fn main() {
    let sign_ins: usize = std::env::var("BENCH_SIGN_INS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(160);
    let data = store::testkit::TestSqlite::create();
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let service = Service(
        Command::new(env!("CARGO_BIN_EXE_accounts"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the accounts binary starts"),
    );
    let pid = service.0.id();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut up = false;
    for _ in 0..300 {
        if client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "the service did not answer /healthz");
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
}
