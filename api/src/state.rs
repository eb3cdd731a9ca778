//! The state of the HTTP layer, in parts: the composition root ([`crate::app`]) builds one
//! [`AppState`], and each handler takes only the parts it uses (`State<Core>`,
//! `State<Auth>`…), each drawn from the whole with [`FromRef`]. No globals.

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
use commands::rate_limit::RateLimit;
use commands::throttle::Throttle;
use commands::usage::TokenUsage;
use commands::{Clock, EventCodec};
use projections::{ProjectionRunner, Visibility};
use std::sync::Arc;
use std::time::Duration;
use store::{Database, EventLog, GlobalPosition};
use vault::{EmailIndex, FieldSealer, UnsubscribeLinks};
use workers::scheduler::Scheduler;

/// Every part, as the composition root builds them.
#[derive(Clone)]
pub struct AppState {
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
    /// Read models, for read-your-writes waits and readiness.
    pub projections: Arc<ProjectionRunner>,
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
}

/// Accounts and sessions, and the throttles of the secrets that guard them.
#[derive(Clone)]
pub struct Auth {
    /// Account and session commands.
    pub accounts: Accounts,
    /// Session last-active times.
    pub activity: Arc<SessionActivity>,
    /// Throttling of passwords.
    pub throttle: Arc<Throttle>,
    /// Stricter throttling of two-factor codes.
    pub code_throttle: Arc<Throttle>,
    /// Keys the throttle by e-mail without keeping addresses in memory.
    pub email_index: EmailIndex,
}

/// Credits, billing and the payment provider.
#[derive(Clone)]
pub struct Payments {
    /// Credit commands.
    pub credits: Credits,
    /// Billing commands and the catalog.
    pub billing: Billing,
    /// Renewals, hold timeouts and lot expiries (also run on a timer).
    pub scheduler: Scheduler,
    /// Verifies (and, for the sandbox, signs) payment webhooks.
    pub webhooks: WebhookSigner,
    /// Outgoing HTTP (the sandbox provider calls this service's webhook).
    pub http_client: reqwest::Client,
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
}

/// Notification preferences and their one-click links.
#[derive(Clone)]
pub struct Notices {
    /// Notification preferences.
    pub notifications: Notifications,
    /// Verifies one-click unsubscribe links.
    pub unsubscribe_links: UnsubscribeLinks,
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
    /// The public base URL: configured, or from the request's Host header.
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
