//! Helpers for the end-to-end tests: [`spawn_app`] starts the whole service on a free
//! port with a database of its own (a SQLite file in a temporary folder, or a fresh
//! PostgreSQL database on the test server), like a newcomer's `cargo run` would.

use api::{App, AppOptions, ServeArgs};
use base64::Engine;
use commands::ManualClock;
use commands::throttle::ThrottlePolicy;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use store::testkit::{TestPostgres, TestSqlite};
use store::{Backend, Database};
use tokio::sync::oneshot;
use uuid::Uuid;

pub mod broker;
mod eventually;
pub mod mail;
pub mod providers;
mod raw;
pub mod s3;
pub mod telegram;

pub use eventually::eventually;
pub use raw::post_unread;

/// A password every test account uses.
pub const PASSWORD: &str = "correct-horse-7-battery";

/// The secret payment webhooks are signed with in tests.
pub const WEBHOOK_SECRET: &str = "whsec_test_secret";

/// How a test wants the service configured.
pub struct Setup {
    /// The `serve` options (listen and storage are filled in by [`spawn_app_with`]).
    pub serve: ServeArgs,
    /// Sign-in throttling.
    pub throttle: ThrottlePolicy,
}

/// A running service.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// `http://127.0.0.1:<port>` of `--metrics-listen`, when the setup asked for it.
    pub metrics_address: Option<String>,
    /// A client without proxies or cookies.
    pub client: Client,
    /// Which database.
    pub backend: Backend,
    /// The database, for looking at raw tables.
    pub db: Database,
    /// The service's state, for setting up (granting credits) and ticking the scheduler.
    pub state: api::state::AppState,
    /// The clock the service reads; tests move it.
    pub clock: Arc<ManualClock>,
    /// The database URL, to reopen it after a shutdown.
    pub database_url: String,
    /// The storage flags, to run CLI subcommands against the same data.
    pub storage_args: Vec<String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _storage: [Option<Guard>; 3],
}

/// A session as `POST /auth/login` returns it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: String,
    /// Its bearer token.
    pub token: String,
}

/// How long one end-to-end case may run: far beyond what any needs, so only a hang trips it.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(240);

/// Runs a test case, failing it (with what every PostgreSQL session of the test server was
/// doing) if it runs past `CASE_TIME_LIMIT`, so a hang fails fast and explains itself
/// instead of stalling the whole suite.
pub async fn within_time_limit(case: impl Future<Output = ()>) {
    if tokio::time::timeout(CASE_TIME_LIMIT, case).await.is_err() {
        panic!(
            "the case did not finish within {CASE_TIME_LIMIT:?}; PostgreSQL sessions meanwhile:\n{}",
            postgres_activity().await
        );
    }
}

/// One line per session of the test server: database, state, wait, transaction age, query.
async fn postgres_activity() -> String {
    use sqlx::Connection;
    let url = store::testkit::postgres_admin_url();
    let Ok(mut conn) = sqlx::PgConnection::connect(&url).await else {
        return format!("(PostgreSQL not reachable at {url})");
    };
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT concat_ws(' | ', datname, state, wait_event_type || ':' || wait_event, \
         'in transaction for ' || (now() - xact_start)::text, left(query, 200)) \
         FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    rows.join("\n")
}

/// Starts the service with default settings.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Starts the service with sessions that survive a clock moved by months.
pub async fn spawn_app_with_long_sessions(backend: Backend) -> TestApp {
    spawn_app_with(backend, |setup| {
        setup.serve.session_ttl = Duration::from_secs(3 * 365 * 86_400);
        setup.serve.session_idle_timeout = Duration::from_secs(3 * 365 * 86_400);
    })
    .await
}

/// The settings every test service starts from, adjusted by `configure`.
fn setup(configure: impl FnOnce(&mut Setup)) -> Setup {
    let mut setup = Setup {
        serve: ServeArgs::default(),
        throttle: ThrottlePolicy::default(),
    };
    // Short enough that tests see flushed activity without waiting long.
    setup.serve.activity_flush_interval = Duration::from_millis(200);
    setup.serve.hash_concurrency = 2;
    setup.serve.payments_webhook_secret = Some(WEBHOOK_SECRET.to_owned());
    // Purchases go through the sandbox on both backends (PostgreSQL has none by default).
    setup.serve.payments_provider = Some(api::config::PaymentsProvider::Sandbox);
    // Tests tick the scheduler themselves, with the clock they move.
    setup.serve.scheduler_interval = Duration::from_secs(3600);
    // Every test registers its accounts (and asks for reset links) from 127.0.0.1; the
    // limits have tests of their own, which lower these again.
    setup.serve.limits.registration_rate_limit = 100_000;
    setup.serve.limits.password_reset_rate_limit = 100_000;
    configure(&mut setup);
    setup
}

/// Starts the service after `configure` adjusted the settings.
pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Setup)) -> TestApp {
    let mut setup = setup(configure);

    let folder = TestSqlite::create();
    // On PostgreSQL the data keys get a database of their own, as deployments should
    // give them (the embedded default keeps them in `<data-dir>/keys.db`).
    let (sqlite, postgres, database_url, key_database) = match backend {
        Backend::Sqlite => (Some(folder), None, None, None),
        Backend::Postgres => {
            let server = TestPostgres::create().await;
            let keys = TestPostgres::create().await;
            let url = server.url.clone();
            (Some(folder), Some(server), Some(url), Some(keys))
        }
    };
    let data_dir = sqlite
        .as_ref()
        .map(|s| s.dir.clone())
        .expect("a data folder");
    let master_key = base64::engine::general_purpose::STANDARD
        .encode(Uuid::new_v4().as_u128().to_le_bytes().repeat(2));
    setup.serve.storage.data_dir = data_dir.clone();
    setup.serve.storage.database_url = database_url.clone();
    setup.serve.storage.master_key = Some(master_key.clone());
    setup.serve.storage.key_database_url = key_database.as_ref().map(|k| k.url.clone());
    setup.serve.storage.db_max_connections = 8;
    let mut storage_args = vec![
        "--data-dir".to_owned(),
        data_dir.display().to_string(),
        "--master-key".to_owned(),
        master_key,
    ];
    if let Some(url) = &database_url {
        storage_args.extend(["--database-url".to_owned(), url.clone()]);
    }
    if let Some(keys) = &key_database {
        storage_args.extend(["--key-database-url".to_owned(), keys.url.clone()]);
    }

    start(
        backend,
        setup,
        database_url.unwrap_or_else(|| Database::sqlite_url(&data_dir.join("accounts.db"))),
        storage_args,
        [
            sqlite.map(Guard::Sqlite),
            postgres.map(Guard::Postgres),
            key_database.map(Guard::Postgres),
        ],
    )
    .await
}

/// What keeps a test's storage alive, and removes it when dropped.
#[derive(Debug)]
#[allow(dead_code, reason = "held only for its Drop")]
enum Guard {
    Sqlite(TestSqlite),
    Postgres(TestPostgres),
}

/// Starts one node of the service with `setup` on the storage `storage_args` name.
async fn start(
    backend: Backend,
    setup: Setup,
    database_url: String,
    storage_args: Vec<String>,
    guards: [Option<Guard>; 3],
) -> TestApp {
    let clock = Arc::new(ManualClock::starting_now());
    // Boxed: building the service is a large future, which every test would carry inline.
    let app = Box::pin(App::build(AppOptions {
        serve: setup.serve,
        clock: clock.clone(),
        throttle: setup.throttle,
    }))
    .await
    .expect("the service starts");
    let db = app.state().core.db.clone();
    let state = app.state().clone();
    let metrics_address = app
        .metrics_address()
        .map(|address| format!("http://{address}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("the service runs");
    });
    TestApp {
        address,
        metrics_address,
        client: Client::builder()
            .no_proxy()
            // A request that hangs fails its test rather than the whole run.
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client"),
        backend,
        db,
        state,
        database_url,
        clock,
        storage_args,
        stop: Some(stop),
        server: Some(server),
        _storage: guards,
    }
}

impl TestApp {
    /// A second node of the service on the same storage (database, key store, master
    /// key, data folder), as several API nodes run in a deployment.
    pub async fn peer(&self, configure: impl FnOnce(&mut Setup)) -> TestApp {
        let mut setup = setup(configure);
        let flag = |name: &str| {
            self.storage_args
                .windows(2)
                .find(|w| w[0] == name)
                .map(|w| w[1].clone())
        };
        setup.serve.storage.data_dir = self.data_dir();
        setup.serve.storage.database_url = flag("--database-url");
        setup.serve.storage.master_key = flag("--master-key");
        setup.serve.storage.key_database_url = flag("--key-database-url");
        setup.serve.storage.db_max_connections = 8;
        start(
            self.backend,
            setup,
            self.database_url.clone(),
            self.storage_args.clone(),
            [None, None, None],
        )
        .await
    }
}

impl TestApp {
    /// The data folder (SQLite file, blobs, `mail/` of the embedded default).
    pub fn data_dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(&self.storage_args[1])
    }

    /// Creates an operator token (`admin` or `auditor`) with the CLI, as an operator would;
    /// returns its id and the token.
    pub async fn operator_token(&self, role: &str) -> (String, String) {
        self.operator_token_with(role, &[]).await
    }

    /// Creates an operator token with the CLI and `extra` flags (`--expires-in-days 1`).
    pub async fn operator_token_with(&self, role: &str, extra: &[&str]) -> (String, String) {
        let mut args: Vec<String> = ["accounts", "admin-token", "create", "--role", role]
            .map(str::to_owned)
            .to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(self.storage_args.clone());
        let created = api::cli::run_from(args).await.expect("admin-token create");
        assert_eq!(created.exit_code, 0);
        let created: Value = serde_json::from_str(&created.stdout).expect("JSON");
        (
            created["token_id"].as_str().expect("token_id").to_owned(),
            created["token"].as_str().expect("token").to_owned(),
        )
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request to `path`, with `token` as bearer if given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates an API token labelled `label` with `scopes` for the session `session`
    /// (checked 201) and answers its id.
    pub async fn create_api_token(&self, session: &str, label: &str, scopes: &[&str]) -> String {
        let created = self
            .post(
                "/me/api-tokens",
                Some(session),
                &json!({"label": label, "scopes": scopes}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED, "create an API token");
        json_body(created).await["token_id"]
            .as_str()
            .expect("token_id")
            .to_owned()
    }

    /// Rotates the API token `token_id` of the session's account (checked 200) and
    /// answers the response's body (the new secret is its `token`).
    pub async fn rotate_api_token(&self, session: &str, token_id: &str) -> Value {
        let rotated = self
            .request(
                Method::POST,
                &format!("/me/api-tokens/{token_id}/rotate"),
                Some(session),
            )
            .send()
            .await
            .expect("request sent");
        assert_eq!(rotated.status(), StatusCode::OK, "rotate an API token");
        json_body(rotated).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::PUT, path, token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token)
            .send()
            .await
            .expect("request sent")
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token)
            .send()
            .await
            .expect("request sent")
    }

    /// Registers an account and returns its id.
    pub async fn register(&self, email: &str) -> String {
        let response = self
            .post(
                "/auth/register",
                None,
                &json!({"email": email, "password": PASSWORD, "display_name": "Test User"}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "registering {email}"
        );
        let body: Value = response.json().await.expect("JSON");
        body["account_id"].as_str().expect("account_id").to_owned()
    }

    /// Signs in and returns the session.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let response = self
            .post(
                "/auth/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "signing in {email}");
        let body: Value = response.json().await.expect("JSON");
        Session {
            id: body["session_id"].as_str().expect("session_id").to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    /// Proves the session's password again (`POST /auth/reauthenticate`, without 2FA), for
    /// a sensitive change after the clock moved past the re-authentication window.
    pub async fn reauthenticate(&self, session: &Session) {
        let response = self
            .post(
                "/auth/reauthenticate",
                Some(&session.token),
                &json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "re-authenticating");
    }

    /// Registers a fresh account and signs it in.
    pub async fn signed_up(&self) -> (String, Session) {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        self.register(&email).await;
        let session = self.login(&email, PASSWORD).await;
        (email, session)
    }

    /// The raw text of every stored event: stream, type, payload and metadata.
    pub async fn raw_events(&self) -> Vec<String> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT stream_id || ' ' || event_type || ' ' || data || ' ' || metadata FROM events ORDER BY global_position"
            }
            Backend::Postgres => {
                "SELECT stream_id || ' ' || event_type || ' ' || data::text || ' ' || metadata::text FROM events ORDER BY global_position"
            }
        };
        sqlx::query_scalar(sql)
            .fetch_all(self.db.pool())
            .await
            .expect("read events")
    }

    /// How many events the log holds, leaving out session activity and token usage
    /// (flushed on a timer whenever a session or token made requests, so they would make
    /// counts racy).
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id NOT LIKE 'activity-%' AND stream_id NOT LIKE 'usage-%'")
            .fetch_one(self.db.pool())
            .await
            .expect("count events")
    }

    /// Runs the scheduler once (renewals, hold timeouts, expiries) on read models that
    /// show everything committed before (holds answer before the credits read model shows
    /// them), and waits until the billing process and the read models show the result.
    pub async fn tick(&self) -> workers::scheduler::Tick {
        self.settle().await;
        let tick = self
            .state
            .payments
            .scheduler
            .tick()
            .await
            .expect("scheduler tick");
        self.settle().await;
        tick
    }

    /// The kinds of the entries of the account's security log (`GET /me/security-log`'s
    /// first page), newest first.
    pub async fn security_kinds(&self, token: &str) -> Vec<String> {
        let log = json_body(self.get("/me/security-log", Some(token)).await).await;
        log["entries"]
            .as_array()
            .expect("the security log's entries")
            .iter()
            .filter_map(|e| e["kind"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits until the billing process and every read model have caught up with the log.
    pub async fn settle(&self) {
        let wait = Duration::from_secs(10);
        let head = self
            .state
            .core
            .log
            .committed_head()
            .await
            .expect("log head");
        self.state
            .core
            .projections
            .wait_for(&[projections::Follower::BillingProcess], head, wait)
            .await
            .expect("billing process caught up");
        let head = self
            .state
            .core
            .log
            .committed_head()
            .await
            .expect("log head");
        let names = self.state.core.projections.names();
        self.state
            .core
            .projections
            .wait_for(&names, head, wait)
            .await
            .expect("read models caught up");
    }

    /// The service's clock, as the API prints times.
    pub fn clock_now_rfc3339(&self) -> String {
        commands::Clock::now(&*self.clock).to_rfc3339()
    }

    /// Stops the service (graceful shutdown: projectors stop, activity is flushed).
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }
}

/// The error code of an error response.
pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.expect("an error body in JSON");
    assert!(
        body["error"]["message"].is_string(),
        "error message missing: {body}"
    );
    body["error"]["code"]
        .as_str()
        .expect("error code")
        .to_owned()
}

/// The TOTP code (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits) of `secret` (base32,
/// RFC 4648) at `unix_seconds`, computed by an implementation independent of the service's
/// (`totp-lite` and `data-encoding`, where the service uses `totp-rs`); checked against the
/// RFC 6238 appendix vectors below.
pub fn reference_totp_code(secret: &str, unix_seconds: i64) -> String {
    let normalized = secret.trim_end_matches('=').to_ascii_uppercase();
    let key = data_encoding::BASE32_NOPAD
        .decode(normalized.as_bytes())
        .unwrap_or_else(|e| panic!("{secret:?} is not base32: {e}"));
    let time = u64::try_from(unix_seconds).expect("a time after 1970");
    totp_lite::totp_custom::<totp_lite::Sha1>(30, 6, &key, time)
}

impl TestApp {
    /// The service's clock in Unix seconds.
    pub fn clock_unix_seconds(&self) -> i64 {
        commands::Clock::now(&*self.clock).unix_micros() / 1_000_000
    }

    /// The TOTP code of `secret` at the service's current time (from [`reference_totp_code`]).
    pub fn totp_now(&self, secret: &str) -> String {
        reference_totp_code(secret, self.clock_unix_seconds())
    }

    /// A codec over the live key store whose keys are read afresh (no process's cache): it
    /// opens what the stored keys open now.
    pub fn fresh_codec(&self) -> commands::EventCodec {
        let master = self
            .storage_args
            .windows(2)
            .find(|w| w[0] == "--master-key")
            .map(|w| vault::MasterKey::from_base64(&w[1]).expect("a master key"))
            .expect("the master key flag");
        let store = self.state.core.codec.keys().store().clone();
        commands::EventCodec::new(Arc::new(vault::DataKeys::new(store, &master)))
    }

    /// Every row of every table but the event log, as text (columns joined by `|`), to look
    /// for personal data wherever a read model might keep it. A binary column reads as hex
    /// and as its bytes taken as text, so what is stored in it unsealed is found too.
    pub async fn read_model_rows(&self) -> Vec<String> {
        let tables: Vec<String> = match self.backend {
            Backend::Sqlite => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            ),
            Backend::Postgres => sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            ),
        }
        .fetch_all(self.db.pool())
        .await
        .expect("list tables");
        let mut rows = Vec::new();
        for table in tables.iter().filter(|t| t.as_str() != "events") {
            let columns: Vec<(String, String)> = match self.backend {
                Backend::Sqlite => sqlx::query_as("SELECT name, type FROM pragma_table_info($1)"),
                Backend::Postgres => sqlx::query_as(
                    "SELECT column_name::text, data_type::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1",
                ),
            }
            .bind(table)
            .fetch_all(self.db.pool())
            .await
            .expect("list columns");
            let joined = columns
                .iter()
                .map(|(c, kind)| match self.backend {
                    // SQLite's values have their own types, whatever the column's.
                    Backend::Sqlite => format!(
                        "COALESCE(CASE WHEN typeof(\"{c}\") = 'blob' \
                         THEN hex(\"{c}\") || '|' || CAST(\"{c}\" AS TEXT) \
                         ELSE CAST(\"{c}\" AS TEXT) END, '')"
                    ),
                    Backend::Postgres if kind == "bytea" => format!(
                        "COALESCE(encode(\"{c}\", 'hex') || '|' || encode(\"{c}\", 'escape'), '')"
                    ),
                    Backend::Postgres => format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"),
                })
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let row = format!("'{table}:' || {joined}");
            let read = match self.backend {
                // As bytes, made text here: a blob's bytes need not be UTF-8.
                Backend::Sqlite => sqlx::query_scalar::<_, Vec<u8>>(&format!(
                    "SELECT CAST({row} AS BLOB) FROM \"{table}\""
                ))
                .fetch_all(self.db.pool())
                .await
                .map(|rows| {
                    rows.iter()
                        .map(|row| String::from_utf8_lossy(row).into_owned())
                        .collect::<Vec<_>>()
                }),
                Backend::Postgres => {
                    sqlx::query_scalar::<_, String>(&format!("SELECT {row} FROM \"{table}\""))
                        .fetch_all(self.db.pool())
                        .await
                }
            };
            rows.extend(read.unwrap_or_else(|e| panic!("read {table}: {e}")));
        }
        rows
    }
}

/// The JSON body of a response.
pub async fn json_body(response: Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[cfg(test)]
mod reference_totp {
    use super::reference_totp_code;

    /// RFC 6238 appendix B, SHA-1: the seed is the ASCII "12345678901234567890" (base32
    /// below); the appendix prints 8 digits, of which a 6-digit code is the last 6.
    #[test]
    fn matches_the_rfc_6238_appendix_vectors() {
        let seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        for (time, eight_digits) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                reference_totp_code(seed, time),
                eight_digits[2..],
                "at {time}"
            );
        }
    }

    #[test]
    fn reads_base32_in_either_case_with_or_without_padding() {
        // RFC 4648's "foobar" vector, as a (short) key: one code whichever way it is written.
        let code = reference_totp_code("MZXW6YTBOI", 59);
        assert_eq!(reference_totp_code("mzxw6ytboi======", 59), code);
        assert_ne!(reference_totp_code("MZXW6YTBOA", 59), code);
    }
}
