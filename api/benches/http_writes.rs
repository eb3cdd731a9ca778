//! HTTP throughput of writes, each beside the same command run in-process through the
//! command layer of the same service in the same run:
//! - a credit spend (`POST /api/v1/generations`, then `…/complete`), 16 clients on 16
//!   accounts, against `Credits::hold` + `Credits::settle`; and the same spend each
//!   followed by `GET /api/v1/credits`, which waits for the credits read model to show it
//!   (read-your-writes is on the read side for credits), the read timed apart;
//! - sign-in (`POST /auth/login`) against `Accounts::sign_in`; and the same sign-in each
//!   followed by a request with the new session (`GET /me`), timed apart (the sign-in
//!   answers once the sessions read model shows it, so that request has nothing to wait for);
//! - API-token rotation (`POST /me/api-tokens/{id}/rotate`) against `AccessTokens::rotate`;
//!   and the same rotation each followed by a request with the new secret
//!   (`GET /api/v1/credits`), which waits for the token read model when it is behind (the
//!   rotation answers once committed), the request timed apart.
//!   The sign-ins end with one argon2id password check timed alone, the floor under a
//!   sign-in's latency on the machine at hand.
//! - each write over HTTP again, paced at half its in-process rate (clients arriving on a
//!   schedule, latencies counted from it): the issue's "half the command layer's rate with
//!   p99 under 25 ms" asked at that rate, where the closed-loop phases above measure
//!   latency at saturation; each is paced in-process too, the command layer's own latency
//!   at that rate.
//!
//! On the embedded SQLite default and on PostgreSQL. Figures are printed, never asserted.
//! `cargo bench -p api --bench http_writes` (needs the tests' PostgreSQL; `BENCH_SECONDS`
//! sets each phase's length, default 5; `BENCH_BACKEND=sqlite` or `postgres` runs one
//! backend, `BENCH_ONLY=spends`, `tokens` (`sign-ins` or `rotations` alone) or `fanout` one group of phases, `BENCH_PACE` the fraction
//! of the in-process rate the paced phases run at, default 0.5 (`BENCH_RATE`: a fixed rate
//! instead, operations a second, see [`paced_rate`]); `BENCH_TIMELINE=<folder>`
//! writes every phase's latencies in time order there, see [`write_timeline`]).

#![allow(clippy::print_stdout)] // a benchmark prints its figures

use api::state::AppState;
use api::{App, AppOptions, ServeArgs};
use base64::Engine;
use commands::access_tokens::TokenFamily;
use commands::accounts::SignIn;
use commands::credits::Grant;
use commands::throttle::ThrottlePolicy;
use commands::{Clock, CommandContext, SystemClock};
use domain::credits::{Feature, SourceKind};
use domain::session::SessionOrigin;
use domain::{AccountId, SessionId};
use serde_json::{Value, json};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::testkit::{TestPostgres, TestSqlite};
use tokio::task::JoinHandle;
use uuid::Uuid;

const CLIENTS: usize = 16;
const PASSWORD: &str = "correct-horse-7-battery";

/// One operation of a bench client: `op(client, n)` does the client's `n`th operation and
/// returns the time it spent waiting for read models (zero if it does not wait).
trait Op:
    Fn(usize, u64) -> Pin<Box<dyn Future<Output = Duration> + Send>> + Clone + Send + 'static
{
}

impl<F> Op for F where
    F: Fn(usize, u64) -> Pin<Box<dyn Future<Output = Duration> + Send>> + Clone + Send + 'static
{
}

/// What one bench client did in a phase: each operation's start and latency, and its time
/// in read-your-writes waits.
type ClientRun = (Vec<(Duration, Duration)>, Duration);

/// Latencies of one phase, sorted, and how long it ran.
struct Phase {
    latencies: Vec<Duration>,
    /// Each operation's start (scheduled, when paced) from the phase's start, and its
    /// latency, in start order: written out with `BENCH_TIMELINE`.
    timeline: Vec<(Duration, Duration)>,
    elapsed: Duration,
    /// Time spent in the read-your-writes waits, when the phase timed them apart.
    waiting: Duration,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The `p` percentile of `sorted` latencies (zero with none).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

/// Runs `op(client, n)` in a loop on `CLIENTS` tasks for `seconds`; `op` returns the time
/// it spent waiting for read models (zero if it does not wait).
async fn run<F, Fut>(seconds: u64, op: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Duration> + Send,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut latencies, mut waiting, mut n) = (Vec::new(), Duration::ZERO, 0);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    waiting += op(client, n).await;
                    latencies.push((began - start, began.elapsed()));
                    n += 1;
                }
                (latencies, waiting)
            })
        })
        .collect();
    gather(workers, start.into()).await
}

/// The phase the clients' `workers` (their latencies and read-model waits) ran, begun at
/// `start`.
async fn gather(workers: Vec<JoinHandle<ClientRun>>, start: tokio::time::Instant) -> Phase {
    let (mut timeline, mut waiting) = (Vec::new(), Duration::ZERO);
    for worker in workers {
        let (latencies, waited) = worker.await.expect("bench client");
        timeline.extend(latencies);
        waiting += waited;
    }
    let elapsed = start.elapsed();
    timeline.sort_unstable();
    let mut latencies: Vec<Duration> = timeline.iter().map(|&(_, latency)| latency).collect();
    latencies.sort_unstable();
    Phase {
        latencies,
        timeline,
        elapsed,
        waiting,
    }
}

/// Runs `op(client, n)` on `CLIENTS` tasks for `seconds` at `rate` operations a second in
/// all, each client on its own schedule (one operation every `CLIENTS / rate` seconds,
/// staggered). A latency counts from the operation's scheduled start, not from when the
/// client got to it, so a slow operation that delays the next ones is charged to them too
/// (no coordinated omission): the figures are those of clients arriving at that rate.
async fn run_paced<F, Fut>(seconds: u64, rate: f64, op: F) -> Phase
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Duration> + Send,
{
    let every = Duration::from_secs_f64(CLIENTS as f64 / rate);
    let start = tokio::time::Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let op = op.clone();
            let first = start + every.mul_f64(client as f64 / CLIENTS as f64);
            tokio::spawn(async move {
                let (mut latencies, mut waiting, mut n) = (Vec::new(), Duration::ZERO, 0);
                loop {
                    let scheduled = first + every.mul_f64(n as f64);
                    if scheduled >= deadline {
                        break (latencies, waiting);
                    }
                    tokio::time::sleep_until(scheduled).await;
                    waiting += op(client, n).await;
                    latencies.push((scheduled - start, scheduled.elapsed()));
                    n += 1;
                }
            })
        })
        .collect();
    gather(workers, start).await
}

/// The fraction of the in-process rate the paced phases run at: `BENCH_PACE`, by default
/// one half (the question).
fn pace() -> f64 {
    std::env::var("BENCH_PACE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|p: &f64| *p > 0.0)
        .unwrap_or(0.5)
}

/// The rate the paced phases of a group whose closed loop in-process ran at `inprocess`
/// operations a second are to run at: [`pace`] of it, or `BENCH_RATE` operations a second
/// when set (for comparing two builds or settings at the same load, where a change that
/// moves the in-process rate would otherwise move the pace with it; with `BENCH_ONLY`, as
/// the groups' rates differ by orders of magnitude).
fn paced_rate(inprocess: f64) -> f64 {
    fixed_rate().unwrap_or(inprocess * pace())
}

/// `BENCH_RATE`, if set to a positive number.
fn fixed_rate() -> Option<f64> {
    std::env::var("BENCH_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|r: &f64| *r > 0.0)
}

/// The name of a paced phase of `what`, at [`pace`] of `rate` (or at `BENCH_RATE`).
fn paced_name(what: &str, rate: &str) -> String {
    let p = pace();
    if let Some(fixed) = fixed_rate() {
        format!("{what}, paced at {fixed}/s")
    } else if p == 0.5 {
        format!("{what}, paced at half {rate}")
    } else {
        format!("{what}, paced at {p}x {rate}")
    }
}

fn report(service: &Service, name: &str, phase: &Phase, baseline: Option<&Phase>) {
    write_timeline(service.backend, name, phase);
    let ratio = baseline.map_or_else(String::new, |b| {
        format!("({:.2}x in-process)", phase.per_second() / b.per_second())
    });
    println!(
        "{name:<52} {:>7.0}/s {ratio:<18} p50 {:>7.2} ms  p99 {:>7.2} ms",
        phase.per_second(),
        phase.percentile(0.50).as_secs_f64() * 1e3,
        phase.percentile(0.99).as_secs_f64() * 1e3,
    );
}

/// Prints the phase's read-your-writes waits per operation: "… ms of each `what`".
fn report_waiting(phase: &Phase, what: &str) {
    let operations = phase.latencies.len().max(1) as f64;
    println!(
        "{:<52} {:>7.2} ms of each {what}",
        "",
        phase.waiting.as_secs_f64() * 1e3 / operations
    );
}

/// With `BENCH_TIMELINE` set to a folder, writes the phase's operations there (one file per
/// phase and backend, named after the phase): each one's start from the phase's start and
/// its latency, in milliseconds, in start order. A tail that comes from a stall of the
/// whole service shows as a run of slow operations at one moment, and one that comes back
/// periodically as such runs at a period (that is how the audit indexer's burst every
/// 1.1 s was found).
fn write_timeline(backend: &str, name: &str, phase: &Phase) {
    let Ok(folder) = std::env::var("BENCH_TIMELINE") else {
        return;
    };
    let slug: String = format!("{backend} {name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut text = String::from("start_ms\tlatency_ms\n");
    for (start, latency) in &phase.timeline {
        text.push_str(&format!(
            "{:.3}\t{:.3}\n",
            start.as_secs_f64() * 1e3,
            latency.as_secs_f64() * 1e3
        ));
    }
    let path = std::path::Path::new(&folder).join(format!("{}.tsv", slug.trim_matches('-')));
    std::fs::create_dir_all(&folder).expect("the timeline folder");
    std::fs::write(&path, text).expect("a timeline file");
}

/// One account of the bench: its id, a session (its token and id) and an API token.
#[derive(Clone)]
struct Client {
    account: AccountId,
    email: String,
    session: String,
    session_id: SessionId,
    token_id: Uuid,
    token: String,
}

struct Service {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    address: String,
    state: AppState,
    http: reqwest::Client,
    /// Ends the server (and its background work): the next backend's phases must not
    /// share the cores with this one's followers and mail.
    stop: std::sync::Mutex<Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Service {
    async fn post(&self, path: &str, bearer: Option<&str>, body: &Value) -> reqwest::Response {
        let mut request = self.http.post(format!("{}{path}", self.address)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response
    }

    async fn get(&self, path: &str, bearer: &str) -> reqwest::Response {
        let response = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("request");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response
    }

    /// Stops the server and its background work, and waits until they have stopped.
    async fn stop(&self) {
        let stop = self.stop.lock().expect("stop").take();
        if let Some((stop, served)) = stop {
            let _ = stop.send(());
            served.await.expect("the server task");
        }
    }

    /// Waits until every read model has applied the log's head (between phases, so one
    /// phase's backlog does not slow the next).
    async fn settle(&self) {
        let head = self.state.core.log.committed_head().await.expect("head");
        let names = self.state.core.projections.names();
        self.state
            .core
            .projections
            .wait_for(&names, head, Duration::from_secs(120))
            .await
            .expect("read models caught up");
        // And the mail those commands caused is out: a backlog left by one phase would
        // otherwise be drained during the next one, on the same cores.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let stats = workers::mail::queue::stats(&self.state.core.db)
                .await
                .expect("mail counts");
            if stats.outbox == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the mail outbox never drained");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts the service on `backend` (`sqlite`, or `postgres` at `database_url`).
async fn start(
    backend: &'static str,
    dir: &std::path::Path,
    database_url: Option<String>,
) -> Service {
    let mut serve = ServeArgs::default();
    serve.storage.data_dir = dir.to_path_buf();
    serve.storage.database_url = database_url;
    serve.storage.master_key = Some(
        base64::engine::general_purpose::STANDARD
            .encode(Uuid::new_v4().as_u128().to_le_bytes().repeat(2)),
    );
    serve.storage.db_max_connections = 16;
    serve.token_rate_limit = u32::MAX / 2;
    serve.limits.registration_rate_limit = 10_000;
    serve.limits.max_open_holds = 10_000;
    // Rotations need a recent proof: the clients' sign-ins stay recent for the whole run,
    // however long its phases.
    serve.reauthentication_window = Duration::from_secs(86_400);
    let app = App::build(AppOptions {
        serve,
        clock: Arc::new(SystemClock),
        throttle: ThrottlePolicy::default(),
    })
    .await
    .expect("the service starts");
    let state = app.state().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let signal = async {
            let _ = stopped.await;
        };
        app.serve(listener, signal).await.expect("the service ran");
    });
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("client");
    Service {
        backend,
        address,
        state,
        http,
        stop: std::sync::Mutex::new(Some((stop, served))),
    }
}

/// Registers an account, signs it in, gives it an API token and a large grant.
async fn client(service: &Service, n: usize) -> Client {
    let email = format!("writer{n}@example.com");
    let registered: Value = service
        .post(
            "/auth/register",
            None,
            &json!({"email": email, "password": PASSWORD, "display_name": "Writer"}),
        )
        .await
        .json()
        .await
        .expect("registered");
    let account = AccountId(
        Uuid::parse_str(registered["account_id"].as_str().expect("account id")).expect("uuid"),
    );
    let session: Value = service
        .post(
            "/auth/login",
            None,
            &json!({"email": email, "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .expect("session");
    let session_id = SessionId(
        Uuid::parse_str(session["session_id"].as_str().expect("session id")).expect("uuid"),
    );
    let session = session["token"].as_str().expect("session token").to_owned();
    let token: Value = service
        .post(
            "/me/api-tokens",
            Some(&session),
            &json!({"label": "writer", "scopes": ["generations:write", "credits:read"]}),
        )
        .await
        .json()
        .await
        .expect("token");
    let grant = Grant {
        grant_key: format!("bench:{n}"),
        amount: 1_000_000_000,
        source: SourceKind::Purchase,
        expires_at: None,
    };
    service
        .state
        .payments
        .credits
        .grant(
            &CommandContext::system("bench"),
            account,
            grant,
            SystemClock.now(),
        )
        .await
        .expect("grant");
    Client {
        account,
        email,
        session,
        session_id,
        token_id: Uuid::parse_str(token["token_id"].as_str().expect("token id")).expect("uuid"),
        token: token["token"].as_str().expect("API token").to_owned(),
    }
}

/// The spends: in-process, over HTTP, and over HTTP each followed by a balance read that
/// shows it (the read waits for the credits read model; its time is timed apart).
async fn spends(service: &Arc<Service>, clients: &Arc<Vec<Client>>, seconds: u64) {
    let inprocess = run(seconds, spend_in_process(service, clients)).await;
    service.settle().await;
    let http = run(seconds, spend_over_http(service, clients, false)).await;
    service.settle().await;
    let then_read = run(seconds, spend_over_http(service, clients, true)).await;
    service.settle().await;
    let pace_at = paced_rate(inprocess.per_second());
    let paced_inprocess = run_paced(seconds, pace_at, spend_in_process(service, clients)).await;
    service.settle().await;
    let paced = run_paced(seconds, pace_at, spend_over_http(service, clients, false)).await;
    service.settle().await;
    report(
        service,
        "spends in-process (hold + settle)",
        &inprocess,
        None,
    );
    report(
        service,
        "spends over HTTP (POST hold + complete)",
        &http,
        Some(&inprocess),
    );
    report(
        service,
        "spends over HTTP, each then GET /api/v1/credits",
        &then_read,
        Some(&inprocess),
    );
    report(
        service,
        &paced_name("spends in-process", "that rate"),
        &paced_inprocess,
        Some(&inprocess),
    );
    report(
        service,
        &paced_name("spends over HTTP", "the in-process rate"),
        &paced,
        Some(&inprocess),
    );
    report_waiting(
        &then_read,
        "spend reading the balance (waiting for the read model)",
    );
}

/// A spend by client `c` through the command layer.
fn spend_in_process(service: &Arc<Service>, clients: &Arc<Vec<Client>>) -> impl Op {
    let (state, clients) = (service.state.clone(), clients.clone());
    move |c, _| {
        let (state, account) = (state.clone(), clients[c].account);
        Box::pin(async move {
            let ctx = CommandContext::system("bench");
            let generation = Uuid::new_v4().to_string();
            let credits = &state.payments.credits;
            credits
                .hold(&ctx, account, &generation, Feature::Api, 5, None)
                .await
                .expect("hold");
            credits
                .settle(&ctx, account, &generation, 3, None)
                .await
                .expect("settle");
            Duration::ZERO
        })
    }
}

/// A spend over HTTP by client `c`; with `read`, followed by a balance read that must show
/// it, whose time is returned.
fn spend_over_http(service: &Arc<Service>, clients: &Arc<Vec<Client>>, read: bool) -> impl Op {
    let (service, clients) = (service.clone(), clients.clone());
    move |c, n| {
        let (service, client) = (service.clone(), clients[c].clone());
        Box::pin(async move {
            let generation = format!("g-{c}-{n}-{}", Uuid::new_v4().simple());
            let body =
                json!({"generation_id": generation, "estimated_credits": 5, "feature": "api"});
            service
                .post("/api/v1/generations", Some(&client.token), &body)
                .await;
            let path = format!("/api/v1/generations/{generation}/complete");
            service
                .post(&path, Some(&client.token), &json!({"credits": 3}))
                .await;
            if !read {
                return Duration::ZERO;
            }
            let began = Instant::now();
            let card: Value = service
                .get("/api/v1/credits", &client.token)
                .await
                .json()
                .await
                .expect("balance card");
            assert_eq!(card["held"], 0, "the read shows the settlement: {card}");
            began.elapsed()
        })
    }
}

/// One client, one spend at a time: how long a settlement takes right after its hold, when
/// every follower of the log is reacting to the hold's event, beside the same settlement
/// after a pause in which they have finished (the baseline). The difference is what one
/// append's background work costs the next command.
async fn after_an_append(service: &Arc<Service>, clients: &Arc<Vec<Client>>) {
    const SPENDS: usize = 100;
    let pause = Duration::from_millis(40);
    let credits = &service.state.payments.credits;
    let ctx = CommandContext::system("bench");
    let (mut at_once, mut paused) = (Vec::new(), Vec::new());
    for n in 0..2 * SPENDS {
        let account = clients[n % CLIENTS].account;
        let generation = Uuid::new_v4().to_string();
        tokio::time::sleep(pause).await;
        credits
            .hold(&ctx, account, &generation, Feature::Api, 5, None)
            .await
            .expect("hold");
        let wait = n % 2 == 1;
        if wait {
            tokio::time::sleep(pause).await;
        }
        let began = Instant::now();
        credits
            .settle(&ctx, account, &generation, 3, None)
            .await
            .expect("settle");
        if wait { &mut paused } else { &mut at_once }.push(began.elapsed());
    }
    at_once.sort_unstable();
    paused.sort_unstable();
    let ms = |sorted: &[Duration], p: f64| percentile(sorted, p).as_secs_f64() * 1e3;
    for (name, latencies) in [
        ("a settlement 40 ms after its hold (one client)", &paused),
        ("a settlement right after its hold (one client)", &at_once),
    ] {
        println!(
            "{name:<52} p50 {:>7.2} ms ({:.2}x the paused one)  p90 {:>7.2} ms",
            ms(latencies, 0.5),
            ms(latencies, 0.5) / ms(&paused, 0.5),
            ms(latencies, 0.9),
        );
    }
}

/// Sign-ins, in-process then over HTTP.
async fn sign_ins(service: &Arc<Service>, clients: &Arc<Vec<Client>>, seconds: u64) {
    let sign_in = run(seconds, sign_in_in_process(service, clients)).await;
    service.settle().await;
    let http_sign_in = run(seconds, sign_in_over_http(service, clients, false)).await;
    service.settle().await;
    let then_use = run(seconds, sign_in_over_http(service, clients, true)).await;
    service.settle().await;
    let pace_at = paced_rate(sign_in.per_second());
    let paced_inprocess = run_paced(seconds, pace_at, sign_in_in_process(service, clients)).await;
    service.settle().await;
    let paced_sign_in =
        run_paced(seconds, pace_at, sign_in_over_http(service, clients, false)).await;
    service.settle().await;
    report(service, "sign-ins in-process", &sign_in, None);
    report(
        service,
        "sign-ins over HTTP (POST /auth/login)",
        &http_sign_in,
        Some(&sign_in),
    );
    report(
        service,
        "sign-ins over HTTP, each then a call with the new",
        &then_use,
        Some(&sign_in),
    );
    report(
        service,
        &paced_name("sign-ins in-process", "that rate"),
        &paced_inprocess,
        Some(&sign_in),
    );
    report(
        service,
        &paced_name("sign-ins over HTTP", "the in-process rate"),
        &paced_sign_in,
        Some(&sign_in),
    );
    report_waiting(
        &then_use,
        "sign-in in the first call with the new session (GET /me)",
    );
    password_check_alone(&paced_sign_in).await;
}

/// The floor under a sign-in's latency on this machine: one argon2id check at the
/// service's parameters, one at a time with nothing else running (the service is settled),
/// and the paced sign-in's p99 as a multiple of it.
async fn password_check_alone(paced_sign_in: &Phase) {
    const CHECKS: usize = 40;
    let passwords = commands::passwords::Passwords::new(1);
    let hash = passwords.hash(PASSWORD).await.expect("hash");
    let mut checks = Vec::with_capacity(CHECKS);
    for _ in 0..CHECKS {
        let began = Instant::now();
        let matched = passwords
            .verify(PASSWORD, Some(&hash))
            .await
            .expect("verify");
        checks.push(began.elapsed());
        assert!(matched, "the password matches its own hash");
    }
    checks.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:<52} p50 {:>7.2} ms  p99 {:>7.2} ms (paced sign-in p99: {:.2}x this p50)",
        "a password check alone (argon2id, one at a time)",
        ms(percentile(&checks, 0.5)),
        ms(percentile(&checks, 0.99)),
        ms(paced_sign_in.percentile(0.99)) / ms(percentile(&checks, 0.5)),
    );
}

/// A sign-in by client `c` through the command layer (no throttle, no wait for the
/// sessions read model: those are the HTTP route's).
fn sign_in_in_process(service: &Arc<Service>, clients: &Arc<Vec<Client>>) -> impl Op {
    let (state, clients) = (service.state.clone(), clients.clone());
    move |c, _| {
        let (state, email) = (state.clone(), clients[c].email.clone());
        Box::pin(async move {
            let command = SignIn {
                email,
                password: PASSWORD.to_owned(),
                second_factor: None,
                origin: SessionOrigin {
                    device: "bench".into(),
                    ip: None,
                    user_agent: None,
                    location: None,
                },
            };
            state
                .auth
                .accounts
                .sign_in(&CommandContext::system("bench"), command)
                .await
                .expect("sign-in");
            Duration::ZERO
        })
    }
}

/// A sign-in over HTTP by client `c`; with `call`, followed by a request with the new
/// session, whose time is returned.
fn sign_in_over_http(service: &Arc<Service>, clients: &Arc<Vec<Client>>, call: bool) -> impl Op {
    let (service, clients) = (service.clone(), clients.clone());
    move |c, _| {
        let (service, email) = (service.clone(), clients[c].email.clone());
        Box::pin(async move {
            let body = json!({"email": email, "password": PASSWORD});
            let response = service.post("/auth/login", None, &body).await;
            if !call {
                return Duration::ZERO;
            }
            let session: Value = response.json().await.expect("a new session");
            let began = Instant::now();
            let token = session["token"].as_str().expect("the session token");
            service.get("/me", token).await;
            began.elapsed()
        })
    }
}

/// API-token rotations, in-process then over HTTP.
async fn rotations(service: &Arc<Service>, clients: &Arc<Vec<Client>>, seconds: u64) {
    let rotate = run(seconds, rotate_in_process(service, clients)).await;
    service.settle().await;
    let http_rotate = run(seconds, rotate_over_http(service, clients, false)).await;
    service.settle().await;
    let then_use = run(seconds, rotate_over_http(service, clients, true)).await;
    service.settle().await;
    let pace_at = paced_rate(rotate.per_second());
    let paced_inprocess = run_paced(seconds, pace_at, rotate_in_process(service, clients)).await;
    service.settle().await;
    let paced_rotate = run_paced(seconds, pace_at, rotate_over_http(service, clients, false)).await;
    service.settle().await;
    report(service, "API-token rotations in-process", &rotate, None);
    report(
        service,
        "API-token rotations over HTTP (POST …/rotate)",
        &http_rotate,
        Some(&rotate),
    );
    report(
        service,
        "rotations over HTTP, each then a call with the new",
        &then_use,
        Some(&rotate),
    );
    report(
        service,
        &paced_name("rotations in-process", "that rate"),
        &paced_inprocess,
        Some(&rotate),
    );
    report(
        service,
        &paced_name("rotations over HTTP", "the in-process rate"),
        &paced_rotate,
        Some(&rotate),
    );
    report_waiting(
        &then_use,
        "rotation in the call with the new secret (GET /api/v1/credits)",
    );
}

/// A rotation of client `c`'s token (no grace period) through the command layer.
fn rotate_in_process(service: &Arc<Service>, clients: &Arc<Vec<Client>>) -> impl Op {
    let (state, clients) = (service.state.clone(), clients.clone());
    move |c, _| {
        let (state, client) = (state.clone(), clients[c].clone());
        Box::pin(async move {
            state
                .tokens
                .access_tokens
                .rotate(
                    &CommandContext::system("bench"),
                    client.account,
                    client.session_id,
                    client.token_id,
                    TokenFamily::Api,
                    Duration::ZERO,
                )
                .await
                .expect("rotate");
            Duration::ZERO
        })
    }
}

/// A rotation over HTTP by client `c` (no grace period); with `call`, followed by a
/// request with the new secret, whose time is returned. The rotation answers once
/// committed; that request waits for the token read model when it is behind.
fn rotate_over_http(service: &Arc<Service>, clients: &Arc<Vec<Client>>, call: bool) -> impl Op {
    let (service, clients) = (service.clone(), clients.clone());
    move |c, _| {
        let (service, client) = (service.clone(), clients[c].clone());
        Box::pin(async move {
            let path = format!("/me/api-tokens/{}/rotate", client.token_id);
            let issued: Value = service
                .post(&path, Some(&client.session), &json!({}))
                .await
                .json()
                .await
                .expect("a new secret");
            if !call {
                return Duration::ZERO;
            }
            let began = Instant::now();
            let secret = issued["token"].as_str().expect("the new secret");
            service.get("/api/v1/credits", secret).await;
            began.elapsed()
        })
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let only = |name: &str, choice: &str| std::env::var(name).map_or(true, |v| v == choice);
    let sqlite = TestSqlite::create();
    let postgres = TestPostgres::create().await;
    let pg_dir = TestSqlite::create();
    println!("{CLIENTS} clients on {CLIENTS} accounts, {seconds} s per phase");
    for (backend, choice, dir, url) in [
        ("embedded (SQLite)", "sqlite", &sqlite.dir, None),
        (
            "PostgreSQL",
            "postgres",
            &pg_dir.dir,
            Some(postgres.url.clone()),
        ),
    ] {
        if !only("BENCH_BACKEND", choice) {
            continue;
        }
        println!("-- {backend}");
        let service = Arc::new(start(choice, dir, url).await);
        let mut clients = Vec::new();
        for n in 0..CLIENTS {
            clients.push(client(&service, n).await);
        }
        let clients = Arc::new(clients);
        service.settle().await;
        if only("BENCH_ONLY", "spends") {
            spends(&service, &clients, seconds).await;
        }
        if only("BENCH_ONLY", "spends") || only("BENCH_ONLY", "fanout") {
            after_an_append(&service, &clients).await;
        }
        if only("BENCH_ONLY", "tokens") || only("BENCH_ONLY", "sign-ins") {
            sign_ins(&service, &clients, seconds).await;
        }
        if only("BENCH_ONLY", "tokens") || only("BENCH_ONLY", "rotations") {
            rotations(&service, &clients, seconds).await;
        }
        service.stop().await;
    }
}
