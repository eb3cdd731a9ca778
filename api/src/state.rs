//! The state of the HTTP layer, in parts: the composition root ([`crate::app`]) builds one
//! [`AppState`], and each handler takes only the parts it uses (`State<Core>`,
//! `State<Auth>`…), each drawn from the whole with [`FromRef`]. No globals.
//!
//! A new aggregate's routes need no field here: its route module implements
//! `FromRef<AppState>` for its command handler, built from [`Core`] (the shared executor
//! and the clock), and its handlers take `State<ThatHandler>`.

use crate::error::ApiError;
use axum::extract::FromRef;
use axum::http::{HeaderMap, HeaderName};
use commands::access_tokens::AccessTokens;
use commands::accounts::{Accounts, SessionPolicy};
use commands::activity::SessionActivity;
use commands::billing::Billing;
use commands::credits::Credits;
use commands::idempotency::IdempotencyStore;
use commands::notifications::Notifications;
use commands::payments::WebhookSigner;
use commands::rate_limit::{IpRateLimit, RateLimit};
use commands::throttle::Throttle;
use commands::usage::TokenUsage;
use commands::{Clock, EventCodec, Executor};
use projections::credits::CardReader;
use projections::{Follower, ProjectionRunner, Visibility};
use std::sync::Arc;
use std::time::Duration;
use store::{Database, EventLog, GlobalPosition};
use vault::{EmailIndex, FieldSealer, UnsubscribeLinks};
use workers::scheduler::Scheduler;

/// Every part, as the composition root builds them, behind one `Arc` (fields are reached
/// through `Deref`): the state is cloned for every request, by middleware and extractors,
/// and cloning every part's handles each time cost about a fifth of the service's CPU on
/// the authenticated read path (a `perf` profile of the `http` bench).
#[derive(Clone)]
pub struct AppState(Arc<StateParts>);

impl AppState {
    /// The state made of `parts`.
    pub fn new(parts: StateParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = StateParts;

    fn deref(&self) -> &StateParts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct StateParts {
    /// Storage, read models and time.
    pub core: Core,
    /// Accounts, sessions and the throttles of their secrets.
    pub auth: Auth,
    /// Credits, billing and the payment provider.
    pub payments: Payments,
    /// API and CLI tokens.
    pub tokens: Tokens,
    /// Notification preferences.
    pub notices: Notices,
    /// Workspaces, their members, invitations and settings.
    pub workspaces: commands::workspaces::Workspaces,
    /// Provider keys (bring your own key) and the providers' endpoints.
    pub byok: Byok,
    /// The Telegram bot and links.
    pub telegram: Telegram,
    /// Idempotency keys.
    pub idempotency: IdempotencyStore,
}

/// What nearly every route reads: the database and its read models, the log, time, and
/// the HTTP settings.
#[derive(Clone)]
pub struct Core {
    /// Read models and other tables.
    pub db: Database,
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Decodes (and opens) stored events.
    pub codec: EventCodec,
    /// Opens the personal columns of read models.
    pub sealer: FieldSealer,
    /// Runs commands: every command handler shares its per-stream cache and queues, so a
    /// route module builds the handlers it needs from it (see [`FromRef`] in the module
    /// docs) instead of adding a field here.
    pub exec: Executor,
    /// Read models, for read-your-writes waits and readiness.
    pub projections: Arc<ProjectionRunner>,
    /// Balance cards, read together under load (`projections::credits::CardReader`).
    pub cards: CardReader,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// HTTP settings.
    pub http: Arc<HttpSettings>,
}

impl Core {
    /// Read-your-writes: returns once `change`, committed at `position`, is visible by its
    /// policy ([`Visibility`]), so the very next request sees it (a revoked session is
    /// refused, a new one accepted).
    pub async fn visible(
        &self,
        change: Visibility,
        position: Option<GlobalPosition>,
    ) -> Result<(), ApiError> {
        if let Some(position) = position {
            self.projections
                .wait_visible(change, position, self.http.projection_wait)
                .await?;
        }
        Ok(())
    }

    /// The read side of read-your-writes: returns once `follower` shows everything
    /// committed to `stream`, for reads of changes whose commands answer without waiting
    /// (credit holds and settlements; see `projections::visibility`).
    pub async fn shows_stream(&self, follower: Follower, stream: &str) -> Result<(), ApiError> {
        let waited = self
            .projections
            .wait_for_stream(follower, stream, self.http.projection_wait)
            .await;
        waited.map_err(read_lag)
    }

    /// Returns once `follower` has applied `position`, for a read that found it behind.
    pub async fn shown(
        &self,
        follower: Follower,
        position: GlobalPosition,
    ) -> Result<(), ApiError> {
        let waited = self
            .projections
            .wait_for(&[follower], position, self.http.projection_wait)
            .await;
        waited.map_err(read_lag)
    }
}

/// A read that waited in vain for its read model: 503 `projection_lag`, worded for a read.
pub(crate) fn read_lag(error: projections::ProjectionError) -> ApiError {
    match error {
        projections::ProjectionError::Lagging { .. } => ApiError::Unavailable(
            "projection_lag",
            "what this reads has not caught up with the latest change yet; retry in a moment"
                .into(),
        ),
        other => other.into(),
    }
}

/// Accounts and sessions, and the throttles of the secrets that guard them.
#[derive(Clone)]
pub struct Auth {
    /// Account and session commands.
    pub accounts: Accounts,
    /// Session last-active times.
    pub activity: Arc<SessionActivity>,
    /// Live sessions, so a request with a known session costs no look-up.
    pub sessions: Arc<crate::session_cache::SessionCache>,
    /// Throttling of passwords.
    pub throttle: Arc<Throttle>,
    /// Stricter throttling of two-factor codes.
    pub code_throttle: Arc<Throttle>,
    /// Keys the throttle by e-mail without keeping addresses in memory.
    pub email_index: EmailIndex,
    /// Registrations per client IP, shared by every node.
    pub registrations: Arc<IpRateLimit>,
    /// Password reset requests per client IP, shared by every node.
    pub password_resets: Arc<IpRateLimit>,
}

/// Credits, billing and the payment provider.
#[derive(Clone)]
pub struct Payments {
    /// Credit commands.
    pub credits: Credits,
    /// Billing commands, the catalog and the provider (if any).
    pub billing: Billing,
    /// Renewals, hold timeouts and lot expiries (also run on a timer).
    pub scheduler: Scheduler,
    /// Whether the sandbox is the provider: its pages are served only then.
    pub sandbox: bool,
    /// Verifies payment webhooks with the provider's secret; none without one.
    pub webhooks: Option<WebhookSigner>,
    /// Outgoing HTTP, for a provider's API ([`outbound_http_client`]).
    pub http_client: reqwest::Client,
}

/// The client for requests this service makes: no proxy from the environment, and no
/// redirect followed (a redirect is the answer, never a second request to wherever it
/// points).
pub fn outbound_http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
}

/// Provider keys: their commands, and where each provider is verified.
#[derive(Clone)]
pub struct Byok {
    /// The commands.
    pub keys: commands::provider_keys::ProviderKeyStore,
    /// The providers' endpoints.
    pub endpoints: crate::byok::ProviderEndpoints,
}

impl FromRef<AppState> for Byok {
    fn from_ref(state: &AppState) -> Self {
        state.byok.clone()
    }
}

/// API and CLI tokens: their commands, usage counts and rate limit.
#[derive(Clone)]
pub struct Tokens {
    /// API and CLI tokens.
    pub access_tokens: AccessTokens,
    /// Request counts of tokens, flushed with the activity.
    pub usage: Arc<TokenUsage>,
    /// The per-token rate limit.
    pub rate_limit: Arc<RateLimit>,
    /// Verified tokens, so a request with a known token costs no look-up.
    pub cache: Arc<crate::token_cache::TokenCache>,
}

/// Notification preferences and their one-click links.
#[derive(Clone)]
pub struct Notices {
    /// Notification preferences.
    pub notifications: Notifications,
    /// Verifies one-click unsubscribe links.
    pub unsubscribe_links: UnsubscribeLinks,
}

/// The Telegram bot: link commands, the Bot API client and the webhook's secret. Without a
/// bot (no `--telegram-bot-token`) the Telegram routes answer 503 `telegram_unavailable`.
#[derive(Clone)]
pub struct Telegram {
    /// Link commands.
    pub links: commands::telegram::TelegramLinks,
    /// The Bot API client.
    pub bot: Option<workers::telegram::TelegramBot>,
    /// What `X-Telegram-Bot-Api-Secret-Token` must carry.
    pub webhook_secret: Option<Arc<str>>,
}

macro_rules! part {
    ($($field:ident: $part:ty),* $(,)?) => {$(
        impl FromRef<AppState> for $part {
            fn from_ref(state: &AppState) -> Self {
                state.$field.clone()
            }
        }
    )*};
}

part!(
    core: Core,
    auth: Auth,
    payments: Payments,
    tokens: Tokens,
    notices: Notices,
    telegram: Telegram,
    idempotency: IdempotencyStore,
);

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Trusted header carrying the client IP.
    pub client_ip_header: Option<HeaderName>,
    /// How many proxies append to it: the client IP is that many entries from the right.
    pub trusted_proxies: usize,
    /// Trusted header carrying the client's country.
    pub country_header: Option<HeaderName>,
    /// Trusted header carrying the client's city.
    pub city_header: Option<HeaderName>,
    /// How long a command waits for its read models before answering 503.
    pub projection_wait: Duration,
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// The public base URL, if configured.
    pub public_url: Option<String>,
}

impl HttpSettings {
    /// The public base URL: configured, or from the request's Host header. Only for links
    /// shown to the caller of that request (a checkout or portal URL): a Host header can
    /// then only mislead whoever sent it. Never for an outbound request, nor a link that
    /// reaches anyone else (e-mails take `--public-url`).
    pub fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
            })
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::response::Redirect;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn the_outbound_client_follows_no_redirect() {
        let followed = Arc::new(AtomicUsize::new(0));
        let counter = followed.clone();
        let router = Router::new()
            .route(
                "/start",
                get(|| async { Redirect::temporary("/elsewhere") }),
            )
            .route(
                "/elsewhere",
                get(move || async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    "followed"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let answer = outbound_http_client()
            .unwrap()
            .get(format!("http://{address}/start"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(followed.load(Ordering::SeqCst), 0);
        server.abort();
    }
}
