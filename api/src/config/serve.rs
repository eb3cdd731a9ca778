//! `accounts serve`'s options: the listener, HTTP limits, the payment provider, the
//! public API's policy and the outside services it calls.

use super::{BlobArgs, MailArgs, StorageArgs};
use clap::{Args, ValueEnum};
use domain::access_token::Scope;
use domain::catalog::ApiPolicy;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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

    /// How long a node may answer from its cache of live sessions before reading the
    /// session again (0 turns the cache off). A sign-out or revocation is refused at once by
    /// the node that made it and, on other nodes, once they see the read model show it
    /// (about a second); this bounds it if they cannot.
    #[arg(long, env = "ACCOUNTS_SESSION_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub session_cache_ttl: Duration,

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

    /// Password hashes computed at once (each takes 7 MiB); 0 means one per CPU.
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
            session_cache_ttl: crate::session_cache::DEFAULT_TTL,
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
