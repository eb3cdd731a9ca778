//! The state every handler receives (`State<AppState>`): the services built by the
//! composition root in [`crate::app`]. No globals.

use axum::http::HeaderName;
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
use projections::ProjectionRunner;
use std::sync::Arc;
use std::time::Duration;
use store::{Database, EventLog};
use vault::EmailIndex;
use vault::{FieldSealer, UnsubscribeLinks};
use workers::scheduler::Scheduler;

/// Shared services.
#[derive(Clone)]
pub struct AppState {
    /// Read models and other tables.
    pub db: Database,
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Decodes (and opens) stored events.
    pub codec: EventCodec,
    /// Opens the personal columns of read models.
    pub sealer: FieldSealer,
    /// Account and session commands.
    pub accounts: Accounts,
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
    /// Read models, for read-your-writes waits and readiness.
    pub projections: Arc<ProjectionRunner>,
    /// Idempotency keys.
    pub idempotency: IdempotencyStore,
    /// Session last-active times.
    pub activity: Arc<SessionActivity>,
    /// API and CLI tokens.
    pub access_tokens: AccessTokens,
    /// Notification preferences.
    pub notifications: Notifications,
    /// Verifies one-click unsubscribe links.
    pub unsubscribe_links: UnsubscribeLinks,
    /// Request counts of tokens, flushed with the activity.
    pub token_usage: Arc<TokenUsage>,
    /// The per-token rate limit.
    pub token_rate_limit: Arc<RateLimit>,
    /// Sign-in throttling.
    pub throttle: Arc<Throttle>,
    /// Stricter throttling of two-factor codes.
    pub code_throttle: Arc<Throttle>,
    /// Keys the throttle by e-mail without keeping addresses in memory.
    pub email_index: EmailIndex,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// HTTP settings.
    pub http: Arc<HttpSettings>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Trusted header carrying the client IP.
    pub client_ip_header: Option<HeaderName>,
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
