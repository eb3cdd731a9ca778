//! HTTP throughput of the public API: authenticated `GET /api/v1/credits` with 64
//! concurrent connections over loopback, spread over 16 accounts (each with its own API
//! token, so reads of one account read together are not what is measured), on the
//! embedded SQLite default and on
//! PostgreSQL, beside the same load on `GET /healthz` in the same run (the HTTP ceiling of
//! this machine), and again on a second service with the token cache off
//! (`--token-cache-ttl 0`: a token look-up per request). The load generator runs in this
//! process, sharing the machine's cores with the service, as a client on the same host
//! would.
//!
//! `cargo bench -p api --bench http` (needs the tests' PostgreSQL; `BENCH_SECONDS` sets
//! each phase's length, default 5).

#![allow(clippy::print_stdout)] // a benchmark prints its figures

use api::{App, AppOptions, ServeArgs};
use base64::Engine;
use commands::SystemClock;
use commands::throttle::ThrottlePolicy;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::testkit::{TestPostgres, TestSqlite};

const CONNECTIONS: usize = 64;

/// Accounts the connections are spread over, one API token each.
const ACCOUNTS: usize = 16;

struct Load {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// `CONNECTIONS` clients on `url` for `seconds`, client `i` presenting `tokens[i % len]`
/// (none when `tokens` is empty).
async fn load(url: String, tokens: &[String], seconds: u64) -> Load {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let token = (!tokens.is_empty()).then(|| tokens[i % tokens.len()].clone());
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let mut request = client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            let _ = response.bytes().await;
                            latencies.push(began.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (latencies, failed) = worker.await.expect("load worker");
        all.extend(latencies);
        errors += failed;
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Load {
        requests: all.len(),
        errors,
        elapsed,
        latencies: all,
    }
}

/// Starts the service on `database_url` (or SQLite in `dir`) and returns its address and
/// an API token with `credits:read` for each of [`ACCOUNTS`] accounts.
async fn start(
    dir: &std::path::Path,
    database_url: Option<String>,
    token_cache_ttl: Duration,
) -> (String, Vec<String>) {
    let mut serve = ServeArgs {
        token_cache_ttl,
        ..ServeArgs::default()
    };
    serve.storage.data_dir = dir.to_path_buf();
    serve.storage.database_url = database_url;
    serve.storage.master_key = Some(
        base64::engine::general_purpose::STANDARD
            .encode(uuid::Uuid::new_v4().as_u128().to_le_bytes().repeat(2)),
    );
    serve.storage.db_max_connections = 16;
    serve.token_rate_limit = u32::MAX / 2;
    let app = App::build(AppOptions {
        serve,
        clock: Arc::new(SystemClock),
        throttle: ThrottlePolicy::default(),
    })
    .await
    .expect("the service starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        let _ = app.serve(listener, std::future::pending()).await;
    });

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{address}{path}")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let mut tokens = Vec::new();
    for n in 0..ACCOUNTS {
        let credentials = json!({"email": format!("bench{n}@example.com"), "password": "correct-horse-7-battery"});
        let mut register = credentials.clone();
        register["display_name"] = json!("Bench");
        post("/auth/register", None, register)
            .await
            .expect("register");
        let session: Value = post("/auth/login", None, credentials)
            .await
            .expect("login")
            .json()
            .await
            .expect("session");
        let session = session["token"].as_str().expect("session token").to_owned();
        let token: Value = post(
            "/me/api-tokens",
            Some(&session),
            json!({"label": "bench", "scopes": ["credits:read"]}),
        )
        .await
        .expect("token")
        .json()
        .await
        .expect("token body");
        tokens.push(token["token"].as_str().expect("API token").to_owned());
    }
    (address, tokens)
}

fn report(name: &str, load: &Load, baseline: f64) {
    println!(
        "{name:<58} {:>8.0} req/s  ({:.2}x healthz)  p50 {:>6.2} ms  p99 {:>6.2} ms  errors {}",
        load.per_second(),
        load.per_second() / baseline,
        load.percentile(0.50).as_secs_f64() * 1e3,
        load.percentile(0.99).as_secs_f64() * 1e3,
        load.errors,
    );
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let sqlite = TestSqlite::create();
    let postgres = TestPostgres::create().await;
    let pg_dir = TestSqlite::create();
    let uncached_sqlite = TestSqlite::create();
    let uncached_postgres = TestPostgres::create().await;
    let uncached_pg_dir = TestSqlite::create();
    println!(
        "{CONNECTIONS} connections over loopback ({ACCOUNTS} accounts for the credits), {seconds} s per phase"
    );
    for (backend, dir, url, uncached_dir, uncached_url) in [
        (
            "embedded (SQLite)",
            &sqlite.dir,
            None,
            &uncached_sqlite.dir,
            None,
        ),
        (
            "PostgreSQL",
            &pg_dir.dir,
            Some(postgres.url.clone()),
            &uncached_pg_dir.dir,
            Some(uncached_postgres.url.clone()),
        ),
    ] {
        let ttl = api::token_cache::DEFAULT_TTL;
        let (address, tokens) = start(dir, url, ttl).await;
        let (uncached, uncached_tokens) = start(uncached_dir, uncached_url, Duration::ZERO).await;
        let healthz = load(format!("{address}/healthz"), &[], seconds).await;
        let credits = load(format!("{address}/api/v1/credits"), &tokens, seconds).await;
        let without_cache = load(
            format!("{uncached}/api/v1/credits"),
            &uncached_tokens,
            seconds,
        )
        .await;
        report(
            &format!("GET /healthz, {backend}"),
            &healthz,
            healthz.per_second(),
        );
        report(
            &format!("GET /api/v1/credits, {backend}"),
            &credits,
            healthz.per_second(),
        );
        report(
            &format!("GET /api/v1/credits, token cache off, {backend}"),
            &without_cache,
            healthz.per_second(),
        );
    }
}
