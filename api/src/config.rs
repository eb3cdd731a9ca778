//! Command-line interface and configuration: every option is a flag and an environment
//! variable (see the README's table).

mod audit;
mod debug;

pub use audit::{AuditCommand, AuditVerifyArgs, OutputFormat};
use clap::{Args, Parser, Subcommand, ValueEnum};
use domain::access_token::Scope;
use domain::catalog::ApiPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What `accounts --help` opens with.
const ABOUT: &str = "accounts: the account-settings backend of the video studio \
(profile, security, sessions, notifications, billing, credits, API tokens), \
event-sourced: every change is an event in a log, read models answer the queries.";

/// What `accounts --help` says after the options.
const EXAMPLES: &str = "Examples:
  accounts                                   # serve on 127.0.0.1:8080, SQLite in ./data
  accounts --listen 0.0.0.0:9000             # serve elsewhere (serve's flags need no `serve`)
  accounts doctor --database-url postgres://postgres@127.0.0.1/accounts
  accounts --log-format json                 # logs as JSON lines, for log collectors";

/// The account-settings backend of the video studio.
#[derive(Debug, Parser)]
#[command(
    name = "accounts",
    version,
    about = ABOUT,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// How logs are written (to standard error): `text` for people, `json` for log
    /// collectors.
    #[arg(
        long,
        global = true,
        env = "ACCOUNTS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `serve`'s flags, which work without naming it.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API with its projectors and workers (the default).
    #[command(
        after_help = "Example:\n  accounts serve --listen 0.0.0.0:8080 --database-url postgres://postgres@127.0.0.1/accounts"
    )]
    Serve(Box<ServeArgs>),
    /// Apply database migrations and create missing read-model tables, then exit.
    #[command(
        after_help = "Example:\n  accounts migrate --database-url postgres://postgres@127.0.0.1/accounts"
    )]
    Migrate(StorageArgs),
    /// Replay a read model from position 0 into fresh tables and swap them in.
    #[command(
        after_help = "Examples:\n  accounts rebuild credits\n  accounts rebuild all --data-dir ./data"
    )]
    Rebuild(RebuildArgs),
    /// Recompute balances, holds and invoices from the log and compare them with the read
    /// models; prints a JSON report and exits non-zero on any drift.
    #[command(
        after_help = "Example:\n  accounts reconcile --database-url postgres://postgres@127.0.0.1/accounts > report.json"
    )]
    Reconcile(StorageArgs),
    /// Operator tokens for the `/admin` routes (`admin-token` is the former name).
    #[command(
        subcommand,
        visible_alias = "admin-token",
        after_help = "Examples:\n  accounts operator-token create --role auditor --label reconciliation\n  accounts operator-token revoke 7f0c…"
    )]
    OperatorToken(OperatorTokenCommand),
    /// Run only the notifier: decide the e-mails the log's events cause and publish them
    /// to RabbitMQ (needs `--amqp-url`).
    #[command(
        after_help = "Example:\n  accounts notifier --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --database-url postgres://…"
    )]
    Notifier(WorkerArgs),
    /// Run only a mailer: consume the mail queue and send by SMTP (needs `--amqp-url`;
    /// several may run at once).
    #[command(
        after_help = "Example:\n  accounts mailer --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --smtp-url smtp://relay:587 --database-url postgres://…"
    )]
    Mailer(WorkerArgs),
    /// Send a newsletter or marketing e-mail to the accounts that opted in.
    #[command(
        after_help = "Example:\n  accounts send-campaign --topic newsletter --subject \"What's new\" --body-file news.txt --id 0b9c…"
    )]
    SendCampaign(CampaignArgs),
    /// Mail operations.
    #[command(
        subcommand,
        after_help = "Example:\n  accounts mail dead-letters --database-url postgres://…"
    )]
    Mail(MailCommand),
    /// Check the configuration given (database, migrations, master key, blob store,
    /// broker, SMTP, public URL) and say what to fix; exits non-zero if anything is wrong.
    #[command(
        after_help = "Example:\n  accounts doctor --database-url postgres://postgres@127.0.0.1/accounts --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    Doctor(Box<ServeArgs>),
    /// Audit from the log: an account's events or its state at an instant, and the hash
    /// chain over the stored events.
    #[command(
        subcommand,
        after_help = "Examples:\n  accounts audit events 0b9c… --from 2026-03-01T00:00:00Z --format table\n  accounts audit state 0b9c… --as-of 2026-03-03T12:00:00Z\n  accounts audit verify --database-url postgres://… --expect-head 1234:9f86d0…"
    )]
    Audit(AuditCommand),
}

/// `accounts mail …`.
#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Print the messages the mailer gave up on, as JSON, newest first.
    DeadLetters(StorageArgs),
}

/// The mail pipeline: where messages travel and how they are sent. Its `Debug` shows the
/// broker and SMTP URLs without their password.
#[derive(Clone, Args)]
pub struct MailArgs {
    /// RabbitMQ (`amqp://user:password@host:5672/vhost`). Without it the notifier and
    /// mailer run in-process around a table (the embedded default).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// Names of the exchange and queues (`<prefix>`, `<prefix>.retry`, `<prefix>.dead`).
    #[arg(long, env = "ACCOUNTS_AMQP_PREFIX", default_value = "accounts.mail")]
    pub amqp_prefix: String,

    /// SMTP server (`smtp://[user:password@]host[:port]`). Without it each e-mail is
    /// written as an `.eml` file into `<data-dir>/mail`.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of every e-mail.
    #[arg(
        long,
        env = "ACCOUNTS_MAIL_FROM",
        default_value = "Studio <no-reply@studio.localhost>"
    )]
    pub mail_from: String,

    /// The settings web app (a front end of its own): e-mails link to its
    /// `/settings/notifications` page.
    #[arg(
        long,
        env = "ACCOUNTS_SETTINGS_URL",
        default_value = "http://localhost:3000"
    )]
    pub settings_url: String,

    /// The low-credits alert goes out when the balance drops below this.
    #[arg(long, env = "ACCOUNTS_CREDITS_LOW_THRESHOLD", default_value_t = 20)]
    pub credits_low_threshold: u64,

    /// Delay before the second attempt at a failed e-mail, doubled after each failure
    /// (up to 5 minutes).
    #[arg(long, env = "ACCOUNTS_MAIL_RETRY_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub mail_retry_delay: Duration,

    /// Attempts before an e-mail is dead-lettered.
    #[arg(long, env = "ACCOUNTS_MAIL_MAX_ATTEMPTS", default_value_t = 15)]
    pub mail_max_attempts: u32,

    /// E-mails a mailer sends at once.
    #[arg(long, env = "ACCOUNTS_MAIL_CONCURRENCY", default_value_t = 8)]
    pub mail_concurrency: u16,

    /// With `--amqp-url`: do not run the notifier and mailer inside `serve` (run
    /// `accounts notifier` and `accounts mailer` instead).
    #[arg(long, env = "ACCOUNTS_NO_MAIL_WORKERS")]
    pub no_mail_workers: bool,

    /// The Telegram bot (linking and notices).
    #[command(flatten)]
    pub telegram: TelegramArgs,
}

/// The Telegram bot. Without a bot token the Telegram routes answer 503
/// `telegram_unavailable` and Telegram notices are skipped. Its `Debug` hides the token
/// and the webhook secret.
#[derive(Clone, Args)]
pub struct TelegramArgs {
    /// The Bot API's base URL (a local fake in tests).
    #[arg(
        long,
        env = "ACCOUNTS_TELEGRAM_API_URL",
        default_value = "https://api.telegram.org",
        hide_env_values = true
    )]
    pub telegram_api_url: String,

    /// The bot's token from @BotFather.
    #[arg(long, env = "ACCOUNTS_TELEGRAM_BOT_TOKEN", hide_env_values = true)]
    pub telegram_bot_token: Option<String>,

    /// The bot's username (deep links are `https://t.me/<username>?start=<token>`).
    #[arg(long, env = "ACCOUNTS_TELEGRAM_BOT_USERNAME")]
    pub telegram_bot_username: Option<String>,

    /// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token` (set with
    /// `setWebhook`'s `secret_token`). Without it `/webhooks/telegram` refuses every update.
    #[arg(long, env = "ACCOUNTS_TELEGRAM_WEBHOOK_SECRET", hide_env_values = true)]
    pub telegram_webhook_secret: Option<String>,
}

impl Default for TelegramArgs {
    fn default() -> Self {
        Self {
            telegram_api_url: "https://api.telegram.org".into(),
            telegram_bot_token: None,
            telegram_bot_username: None,
            telegram_webhook_secret: None,
        }
    }
}

impl Default for MailArgs {
    fn default() -> Self {
        Self {
            amqp_url: None,
            amqp_prefix: "accounts.mail".into(),
            smtp_url: None,
            mail_from: "Studio <no-reply@studio.localhost>".into(),
            settings_url: "http://localhost:3000".into(),
            credits_low_threshold: 20,
            mail_retry_delay: Duration::from_secs(2),
            mail_max_attempts: 15,
            mail_concurrency: 8,
            telegram: TelegramArgs::default(),
            no_mail_workers: false,
        }
    }
}

/// `accounts notifier`, `accounts mailer`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Mail.
    #[command(flatten)]
    pub mail: MailArgs,
    /// The service's public base URL, for the links in e-mails.
    #[arg(
        long,
        env = "ACCOUNTS_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

/// `accounts send-campaign`.
#[derive(Debug, Clone, Args)]
pub struct CampaignArgs {
    /// newsletter or marketing: only accounts that turned it on receive it.
    #[arg(long, value_parser = ["newsletter", "marketing"])]
    pub topic: String,
    /// The subject line.
    #[arg(long)]
    pub subject: String,
    /// A file with the body (plain text; paragraphs separated by blank lines).
    #[arg(long)]
    pub body_file: PathBuf,
    /// Identifies the campaign: running it again with the same id sends nothing twice.
    #[arg(long)]
    pub id: Option<uuid::Uuid>,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Mail.
    #[command(flatten)]
    pub mail: MailArgs,
}

/// `accounts operator-token …`.
#[derive(Debug, Subcommand)]
pub enum OperatorTokenCommand {
    /// Create a token and print it (once).
    Create {
        /// admin, auditor, or service (the studio's workers: `/internal/*` only).
        #[arg(long, value_parser = ["admin", "auditor", "service"])]
        role: String,
        /// A note for operators.
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the token expires (1 to 3650).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=3650))]
        expires_in_days: u16,
        /// Storage.
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        token_id: uuid::Uuid,
        /// Storage.
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// Where the data lives. Its `Debug` shows no secret: the master key is left out and
/// database URLs lose their password.
#[derive(Clone, Args)]
pub struct StorageArgs {
    /// Folder for the embedded SQLite file, the generated master key and the mail folder.
    #[arg(long, env = "ACCOUNTS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` selects PostgreSQL; without it the SQLite file in the data dir is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The master key (32 bytes, base64) wrapping every data key. Without it the key in
    /// `<data-dir>/master.key` is used, created (mode 0600) if missing.
    #[arg(long, env = "ACCOUNTS_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Where the data keys live, apart from the data they seal, so that a backup of the
    /// data holds no key: `sqlite://…` or `postgres://…`. Default: `<data-dir>/keys.db`
    /// with the embedded SQLite; with PostgreSQL, the same database (a warning says so).
    #[arg(long, env = "ACCOUNTS_KEY_DATABASE_URL", hide_env_values = true)]
    pub key_database_url: Option<String>,

    /// Connections per database pool.
    #[arg(long, env = "ACCOUNTS_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Keep the event log in KurrentDB: `kurrentdb://[user:password@]host:2113?tls=false`,
    /// `kurrentdb+discover://…` (a cluster found by DNS) or `esdb://…`. Read models, keys
    /// and every other table stay in the database (`--database-url`, else the SQLite file).
    /// Without it the event log is kept in the database too.
    #[arg(long, env = "KURRENTDB_URL", hide_env_values = true)]
    pub event_store: Option<String>,
}

/// Where blobs (avatars) are kept. Its `Debug` shows neither the secret access key nor the
/// access key id.
#[derive(Clone, Args)]
pub struct BlobArgs {
    /// `folder`: files under `<data-dir>/blobs` (one node, or nodes sharing that folder);
    /// `s3`: an S3 bucket (AWS or S3-compatible) every node shares.
    #[arg(long, env = "ACCOUNTS_BLOB_STORE", value_enum, default_value_t = BlobStoreKind::Folder)]
    pub blob_store: BlobStoreKind,

    /// With `--blob-store s3`: the S3 endpoint (`https://s3.eu-central-1.amazonaws.com`,
    /// `http://minio:9000`). Default: AWS S3 in `--blob-s3-region`.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_ENDPOINT")]
    pub blob_s3_endpoint: Option<String>,

    /// With `--blob-store s3`: the region requests are signed for.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_REGION", default_value = "us-east-1")]
    pub blob_s3_region: String,

    /// With `--blob-store s3`: the bucket (it must exist).
    #[arg(long, env = "ACCOUNTS_BLOB_S3_BUCKET")]
    pub blob_s3_bucket: Option<String>,

    /// With `--blob-store s3`: the access key id.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub blob_s3_access_key_id: Option<String>,

    /// With `--blob-store s3`: the secret access key.
    #[arg(
        long,
        env = "ACCOUNTS_BLOB_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub blob_s3_secret_access_key: Option<String>,

    /// With `--blob-store s3`: address the bucket in the path (`<endpoint>/<bucket>/<key>`)
    /// rather than the host name (`<bucket>.<endpoint host>`), as most self-hosted servers
    /// and endpoints given as an IP address need.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_FORCE_PATH_STYLE")]
    pub blob_s3_force_path_style: bool,

    /// With `--blob-store s3`: the longest one request to S3 may take.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub blob_s3_timeout: Duration,
}

impl Default for BlobArgs {
    fn default() -> Self {
        Self {
            blob_store: BlobStoreKind::Folder,
            blob_s3_endpoint: None,
            blob_s3_region: "us-east-1".into(),
            blob_s3_bucket: None,
            blob_s3_access_key_id: None,
            blob_s3_secret_access_key: None,
            blob_s3_force_path_style: false,
            blob_s3_timeout: Duration::from_secs(30),
        }
    }
}

/// `--blob-store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobStoreKind {
    /// Files under `<data-dir>/blobs`.
    Folder,
    /// An S3 bucket.
    S3,
}

impl BlobArgs {
    /// The S3 settings, with `--blob-store s3`; an error names a missing flag.
    pub fn s3_settings(&self) -> anyhow::Result<Option<store::s3::S3Settings>> {
        if self.blob_store != BlobStoreKind::S3 {
            return Ok(None);
        }
        let required = |value: &Option<String>, flag: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--blob-store s3 needs {flag}"))
        };
        Ok(Some(store::s3::S3Settings {
            endpoint: self.blob_s3_endpoint.clone().filter(|e| !e.is_empty()),
            region: self.blob_s3_region.clone(),
            bucket: required(
                &self.blob_s3_bucket,
                "--blob-s3-bucket (ACCOUNTS_BLOB_S3_BUCKET)",
            )?,
            access_key_id: required(
                &self.blob_s3_access_key_id,
                "--blob-s3-access-key-id (ACCOUNTS_BLOB_S3_ACCESS_KEY_ID)",
            )?,
            secret_access_key: required(
                &self.blob_s3_secret_access_key,
                "--blob-s3-secret-access-key (ACCOUNTS_BLOB_S3_SECRET_ACCESS_KEY)",
            )?,
            force_path_style: self.blob_s3_force_path_style,
        }))
    }
}

/// `accounts rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// The read model to rebuild (`accounts`, `sessions`), or `all`.
    pub projection: String,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `accounts serve`. Its `Debug` shows no secret (see [`StorageArgs`], [`MailArgs`]; the
/// webhook secret is left out).
#[derive(Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ACCOUNTS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// A second address serving only `GET /metrics`, without authentication, for
    /// Prometheus scrapers: bind it to a private interface or network only. Unset: off
    /// (`GET /metrics` on the main address takes an operator token either way).
    #[arg(long, env = "ACCOUNTS_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Where avatars are kept.
    #[command(flatten)]
    pub blobs: BlobArgs,

    /// A session ends this long after it started (e.g. `30d`, `12h`).
    #[arg(long, env = "ACCOUNTS_SESSION_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub session_ttl: Duration,

    /// A session ends after this long without a request.
    #[arg(long, env = "ACCOUNTS_SESSION_IDLE_TIMEOUT", default_value = "7d", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,

    /// Sensitive changes (password, 2FA on or off, recovery codes, tokens, the plan,
    /// deletion) need the session to have proved its credentials this recently.
    #[arg(long, env = "ACCOUNTS_REAUTHENTICATION_WINDOW", default_value = "10m", value_parser = humantime::parse_duration)]
    pub reauthentication_window: Duration,

    /// Requests a minute each API or CLI token may make (bursts up to as many).
    #[arg(long, env = "ACCOUNTS_TOKEN_RATE_LIMIT", default_value_t = 600)]
    pub token_rate_limit: u32,

    /// How long a node may answer from its cache of verified API and CLI tokens before
    /// reading the token again (0 turns the cache off). A revocation is refused at once by
    /// the node that made it and, on other nodes, once they see the read model show it
    /// (about a second); this bounds it if they cannot.
    #[arg(long, env = "ACCOUNTS_TOKEN_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub token_cache_ttl: Duration,

    /// How often session last-active times and token usage counts are written to the log.
    #[arg(long, env = "ACCOUNTS_ACTIVITY_FLUSH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub activity_flush_interval: Duration,

    /// Trust this header for the client IP (e.g. `X-Forwarded-For`, `CF-Connecting-IP`).
    /// Only set it behind a proxy that overwrites or appends to the header.
    #[arg(long, env = "ACCOUNTS_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// How many proxies in front of the service append to `--client-ip-header`: the client
    /// IP is the entry this many places from the right (the leftmost entries are whatever
    /// the client sent). 1 when the header is set; a single-value header such as
    /// `CF-Connecting-IP` wants 1.
    #[arg(long, env = "ACCOUNTS_TRUSTED_PROXIES", value_parser = clap::value_parser!(u8).range(1..=16))]
    pub trusted_proxies: Option<u8>,

    /// Trust this header for the client's country (e.g. `CF-IPCountry`).
    #[arg(long, env = "ACCOUNTS_COUNTRY_HEADER")]
    pub country_header: Option<String>,

    /// Trust this header for the client's city (e.g. `X-Geo-City`).
    #[arg(long, env = "ACCOUNTS_CITY_HEADER")]
    pub city_header: Option<String>,

    /// Password hashes computed at once (each takes 19 MiB); 0 means one per CPU.
    #[arg(long, env = "ACCOUNTS_HASH_CONCURRENCY", default_value_t = 0)]
    pub hash_concurrency: usize,

    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "ACCOUNTS_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// The catalog of packs, plans and claims (TOML); the shipped `config/catalog.toml`
    /// when omitted.
    #[arg(long, env = "ACCOUNTS_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// `off` takes the public API from every account, whatever its plan: API tokens cannot
    /// be created (403 `api_access_disabled`) and existing ones are refused on `/api/v1`
    /// (still listed). CLI tokens are not API tokens and keep working.
    #[arg(long, env = "ACCOUNTS_API_ACCESS", value_enum, default_value_t = Switch::On)]
    pub api_access: Switch,

    /// The only scopes API tokens may have, comma-separated (e.g.
    /// `credits:read,usage:read`), intersected with each plan's; every scope when omitted.
    #[arg(long, env = "ACCOUNTS_API_SCOPES", value_delimiter = ',', value_parser = parse_scope)]
    pub api_scopes: Option<Vec<Scope>>,

    /// The service's public base URL, for links such as checkout pages and e-mails. When
    /// omitted, links shown to a caller are built from that request's Host header (never
    /// an outbound request, nor a link sent to anyone else).
    #[arg(long, env = "ACCOUNTS_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The payment provider: `sandbox` (no money moves; checkouts are paid by visiting a
    /// page of this service) or `none` (purchases and paid plans are refused). Default:
    /// `sandbox` on the embedded default (no `--database-url`), `none` otherwise.
    #[arg(long, env = "ACCOUNTS_PAYMENTS_PROVIDER")]
    pub payments_provider: Option<PaymentsProvider>,

    /// The secret the payment provider signs its webhooks with. Without it
    /// `/webhooks/payments` refuses every delivery (503 `payments_unavailable`).
    #[arg(long, env = "ACCOUNTS_PAYMENTS_WEBHOOK_SECRET", hide_env_values = true)]
    pub payments_webhook_secret: Option<String>,

    /// An unsettled generation hold is released after this long.
    #[arg(long, env = "ACCOUNTS_HOLD_TIMEOUT", default_value = "1h", value_parser = humantime::parse_duration)]
    pub hold_timeout: Duration,

    /// How often the scheduler renews subscriptions and expires holds and lots.
    #[arg(long, env = "ACCOUNTS_SCHEDULER_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub scheduler_interval: Duration,

    /// How often workspaces' external storage is probed again.
    #[arg(long, env = "ACCOUNTS_STORAGE_PROBE_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub storage_probe_interval: Duration,

    /// A provider's API base URL for verifying brought keys, as `provider=url`
    /// (`openai`, `anthropic`, `google`, `elevenlabs`); repeat it, or separate pairs with
    /// commas. Unset: the provider's public API.
    #[arg(
        long = "provider-base-url",
        env = "ACCOUNTS_PROVIDER_BASE_URLS",
        value_delimiter = ',',
        // A base URL may carry credentials (`https://user:pass@proxy`).
        hide_env_values = true
    )]
    pub provider_base_urls: Vec<String>,

    /// How often stored provider keys are verified again.
    #[arg(long, env = "ACCOUNTS_PROVIDER_KEY_VERIFY_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub provider_key_verify_interval: Duration,

    /// E-mail.
    #[command(flatten)]
    pub mail: MailArgs,

    /// Limits on expensive or accumulating work.
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
}

impl Default for ServeArgs {
    /// The documented defaults, as if no flag nor variable were given (tests start here).
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            storage: StorageArgs {
                data_dir: PathBuf::from("./data"),
                database_url: None,
                master_key: None,
                key_database_url: None,
                db_max_connections: 16,
                event_store: None,
            },
            blobs: BlobArgs::default(),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            session_idle_timeout: Duration::from_secs(7 * 24 * 3600),
            reauthentication_window: Duration::from_secs(600),
            activity_flush_interval: Duration::from_secs(5),
            token_rate_limit: 600,
            token_cache_ttl: crate::token_cache::DEFAULT_TTL,
            client_ip_header: None,
            trusted_proxies: None,
            country_header: None,
            city_header: None,
            hash_concurrency: 0,
            request_timeout: Duration::from_secs(30),
            catalog: None,
            api_access: Switch::On,
            api_scopes: None,
            public_url: None,
            payments_provider: None,
            payments_webhook_secret: None,
            hold_timeout: Duration::from_secs(3600),
            scheduler_interval: Duration::from_secs(30),
            storage_probe_interval: Duration::from_secs(3600),
            provider_base_urls: Vec::new(),
            provider_key_verify_interval: Duration::from_secs(86_400),
            mail: MailArgs::default(),
            limits: crate::limits::LimitArgs::default(),
        }
    }
}

/// A feature turned `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// A scope named on the command line.
fn parse_scope(name: &str) -> Result<Scope, String> {
    Scope::parse(name.trim()).ok_or_else(|| {
        format!(
            "unknown scope {name:?}; known: {}",
            Scope::ALL.map(Scope::as_str).join(", ")
        )
    })
}

/// `--payments-provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaymentsProvider {
    /// The sandbox: checkouts and the portal are pages of this service; charges succeed.
    Sandbox,
    /// No provider: purchases and paid plans answer 503 `payments_unavailable`.
    None,
}

impl ServeArgs {
    /// What the deployment allows of the public API (`--api-access`, `--api-scopes`),
    /// applied to every plan of the catalog.
    pub fn api_policy(&self) -> ApiPolicy {
        ApiPolicy {
            access: self.api_access == Switch::On,
            scopes: self.api_scopes.clone(),
        }
    }

    /// The payment provider to run: as configured, else the sandbox on the embedded
    /// default only.
    pub fn payments_provider(&self) -> PaymentsProvider {
        self.payments_provider
            .unwrap_or(match self.storage.database_url {
                None => PaymentsProvider::Sandbox,
                Some(_) => PaymentsProvider::None,
            })
    }

    /// How many proxies append to the client-IP header (1 unless configured).
    pub fn trusted_proxies(&self) -> usize {
        usize::from(self.trusted_proxies.unwrap_or(1))
    }
}

#[cfg(test)]
mod tests;
