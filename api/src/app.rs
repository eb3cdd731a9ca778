//! The composition root: builds every service from the configuration, starts the
//! background work (projectors, the chainer, activity flushing, idempotency-key purge),
//! serves HTTP, and shuts down in order.

use crate::config::{PaymentsProvider, ServeArgs};
use crate::mail::{self, MailQueue};
use crate::routes;
use crate::state::{
    AppState, Auth, Core, HttpSettings, Notices, Payments, StateParts, Telegram, Tokens,
    outbound_http_client,
};
use crate::storage::Storage;
use crate::token_cache::TokenCache;
use anyhow::Context;
use axum::Router;
use axum::http::HeaderName;
use axum::serve::ListenerExt as _;
use commands::access_tokens::AccessTokens;
use commands::accounts::{Accounts, SessionPolicy};
use commands::activity::SessionActivity;
use commands::billing::Billing;
use commands::credits::Credits;
use commands::idempotency::IdempotencyStore;
use commands::notifications::Notifications;
use commands::passwords::Passwords;
use commands::payments::WebhookSigner;
use commands::rate_limit::RateLimit;
use commands::telegram::TelegramLinks;
use commands::throttle::{Throttle, ThrottleKind, ThrottlePolicy};
use commands::usage::TokenUsage;
use commands::workspaces::Workspaces;
use commands::{Clock, SystemClock};
use projections::credits::CardReader;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::BlobStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vault::UnsubscribeLinks;
use vault::{AccountLinkSet, InvitationLinks};
use vault::{EmailIndex, FieldSealer};
use workers::billing::BillingReactor;
use workers::erasure::ErasureReactor;
use workers::scheduler::Scheduler;

mod background;
mod catalog;

pub use catalog::{DEFAULT_CATALOG, load_catalog};

/// Everything the service needs to run, beyond the command line.
pub struct AppOptions {
    /// The `serve` options.
    pub serve: ServeArgs,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Sign-in throttling thresholds.
    pub throttle: ThrottlePolicy,
}

impl AppOptions {
    /// Production options from the command line.
    pub fn from_args(serve: ServeArgs) -> Self {
        Self {
            serve,
            clock: Arc::new(SystemClock),
            throttle: ThrottlePolicy::default(),
        }
    }
}

fn header(name: &Option<String>) -> anyhow::Result<Option<HeaderName>> {
    name.as_deref()
        .map(|n| HeaderName::try_from(n).with_context(|| format!("header name {n:?}")))
        .transpose()
}

/// A built service, with its background tasks running.
pub struct App {
    state: AppState,
    request_timeout: Duration,
    /// `--metrics-listen`, bound.
    metrics_listener: Option<TcpListener>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Builds the service and starts its background work.
    pub async fn build(options: AppOptions) -> anyhow::Result<Self> {
        let AppOptions {
            serve,
            clock,
            throttle,
        } = options;
        // Once per process; every app shares it (see `crate::metrics`).
        crate::metrics::recorder();
        // Bound first: an address in use fails the start, before anything runs.
        let metrics_listener = match serve.metrics_listen {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("listening for metrics on {address}"))?,
            ),
            None => None,
        };
        let storage = Storage::open(&serve.storage).await?;
        // The deployment's narrowing of API access applies to every plan's entitlements.
        let catalog =
            Arc::new(load_catalog(serve.catalog.as_deref())?.with_api_policy(serve.api_policy()));
        let payments_provider = serve.payments_provider();
        let provider = crate::payments::provider(payments_provider);
        let limits = &serve.limits;
        let credits = Credits::new(storage.exec.clone(), clock.clone(), serve.hold_timeout)
            .with_max_open_holds(limits.max_open_holds);
        let billing = Billing::new(
            storage.exec.clone(),
            credits.clone(),
            catalog,
            provider,
            clock.clone(),
        )
        .with_max_pending_purchases(limits.max_pending_purchases);
        let blobs: Arc<dyn BlobStore> =
            crate::storage::open_blob_store(&serve.blobs, &serve.storage.data_dir)?;
        let webhooks = serve
            .payments_webhook_secret
            .as_ref()
            .map(|secret| WebhookSigner::new(secret.as_bytes().to_vec()));

        let sessions = SessionPolicy {
            absolute_ttl: serve.session_ttl,
            idle_timeout: serve.session_idle_timeout,
            reauthentication_window: serve.reauthentication_window,
        };
        let concurrency = match serve.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let email_index = EmailIndex::new(&storage.master);
        let accounts = Accounts::new(
            storage.exec.clone(),
            email_index.clone(),
            Passwords::new(concurrency),
            blobs.clone(),
            clock.clone(),
            sessions,
        )
        .with_decode_slots(limits.decode_slots())
        .with_account_links(AccountLinkSet::new(&storage.master));
        let idempotency = IdempotencyStore::new(
            storage.db.clone(),
            FieldSealer::new(storage.codec.keys().clone()),
            storage.master.request_fingerprint_secret(),
        );
        let notifications = Notifications::new(storage.exec.clone(), clock.clone());
        let unsubscribe_links = UnsubscribeLinks::new(storage.master.unsubscribe_secret());
        let workspaces = Workspaces::new(
            storage.exec.clone(),
            clock.clone(),
            storage.codec.keys().clone(),
            InvitationLinks::new(storage.master.invitation_secret()),
        );
        let mail_queue = MailQueue::from_args(&storage, &serve.mail);
        let mail_workers = if serve.mail.amqp_url.is_some() && serve.mail.no_mail_workers {
            None
        } else {
            let public_url = serve
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", serve.listen));
            Some((
                mail::notifier(&storage, &mail_queue, &serve.mail),
                mail::mailer(&storage, &serve.storage.data_dir, &serve.mail, &public_url)?,
            ))
        };
        let access_tokens = AccessTokens::new(storage.exec.clone(), clock.clone())
            .with_policy(limits.token_policy(serve.reauthentication_window));
        let erasure = ErasureReactor::new(
            storage.db.clone(),
            accounts.clone(),
            access_tokens.clone(),
            billing.clone(),
            storage.exec.clone(),
            idempotency.clone(),
            blobs,
            mail::folder(&serve.storage.data_dir, &serve.mail),
            clock.clone(),
        )
        .with_workspaces(workspaces.clone());
        let projections = storage.runner(vec![
            Arc::new(BillingReactor::new(billing.clone())),
            Arc::new(erasure),
        ]);
        projections
            .prepare()
            .await
            .context("preparing read models")?;
        let activity = Arc::new(SessionActivity::new(
            storage.log.clone(),
            storage.codec.clone(),
        ));
        // Throttles measure real time, whatever clock the domain runs on (tests move that
        // one by hours; a lockout still lasts its seconds).
        let throttle_clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let http = Arc::new(HttpSettings {
            client_ip_header: header(&serve.client_ip_header)?,
            trusted_proxies: serve.trusted_proxies(),
            country_header: header(&serve.country_header)?,
            city_header: header(&serve.city_header)?,
            projection_wait: Duration::from_secs(10),
            sessions,
            public_url: serve.public_url.clone(),
        });
        let projection_wait = http.projection_wait;
        let state = AppState::new(StateParts {
            core: Core {
                db: storage.db.clone(),
                log: storage.log.clone(),
                codec: storage.codec.clone(),
                sealer: FieldSealer::new(storage.codec.keys().clone()),
                exec: storage.exec.clone(),
                projections: projections.clone(),
                cards: CardReader::new(
                    storage.db.clone(),
                    storage.log.shares_read_model_database(),
                ),
                clock: clock.clone(),
                http,
            },
            auth: Auth {
                accounts,
                activity: activity.clone(),
                sessions: Arc::new(crate::session_cache::new(
                    serve.session_cache_ttl,
                    projections.clone(),
                )),
                throttle: Arc::new(Throttle::new(
                    ThrottleKind::Password,
                    throttle,
                    storage.db.clone(),
                    storage.master.throttle_secret(),
                    throttle_clock.clone(),
                )),
                code_throttle: Arc::new(Throttle::new(
                    ThrottleKind::SecondFactor,
                    ThrottlePolicy::second_factor(),
                    storage.db.clone(),
                    storage.master.throttle_secret(),
                    throttle_clock.clone(),
                )),
                email_index,
                registrations: Arc::new(limits.registrations(
                    storage.db.clone(),
                    storage.master.throttle_secret(),
                    throttle_clock.clone(),
                )),
                password_resets: Arc::new(limits.password_resets(
                    storage.db.clone(),
                    storage.master.throttle_secret(),
                    throttle_clock.clone(),
                )),
            },
            payments: Payments {
                credits: credits.clone(),
                billing: billing.clone(),
                scheduler: Scheduler::new(storage.db.clone(), billing, credits, clock.clone()),
                sandbox: payments_provider == PaymentsProvider::Sandbox,
                webhooks,
                http_client: outbound_http_client().context("HTTP client")?,
            },
            tokens: Tokens {
                access_tokens,
                usage: Arc::new(TokenUsage::new(storage.log.clone(), storage.codec.clone())),
                rate_limit: Arc::new(RateLimit::new(
                    "token",
                    serve.token_rate_limit,
                    storage.db.clone(),
                    throttle_clock.clone(),
                )),
                cache: Arc::new(TokenCache::new(
                    serve.token_cache_ttl,
                    projection_wait,
                    projections.clone(),
                )),
            },
            notices: Notices {
                notifications,
                unsubscribe_links,
            },
            workspaces,
            byok: crate::state::Byok {
                keys: commands::provider_keys::ProviderKeyStore::new(
                    storage.exec.clone(),
                    clock.clone(),
                    storage.codec.keys().clone(),
                ),
                endpoints: crate::byok::ProviderEndpoints::new(
                    &serve.provider_base_urls,
                    Duration::from_secs(15),
                )
                .context("--provider-base-url")?,
            },
            telegram: Telegram {
                links: TelegramLinks::new(
                    storage.exec.clone(),
                    clock.clone(),
                    storage.master.telegram_user_secret(),
                ),
                bot: mail::telegram_bot(&serve.mail.telegram)?,
                webhook_secret: serve
                    .mail
                    .telegram
                    .telegram_webhook_secret
                    .as_deref()
                    .map(Arc::from),
            },
            idempotency,
        });

        let (shutdown, stopping) = watch::channel(false);
        let mut tasks = projections.spawn(stopping.clone());
        tasks.extend(background::spawn(&state, &serve, &mail_queue, mail_workers, stopping).await?);
        Ok(Self {
            state,
            request_timeout: serve.request_timeout,
            metrics_listener,
            shutdown,
            tasks,
        })
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        routes::router(self.state.clone(), self.request_timeout)
    }

    /// The address `--metrics-listen` bound (its port chosen by the system if it was 0).
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Serves HTTP on `listener` (and the metrics on `--metrics-listen`) until `signal`
    /// completes, then stops the background work.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let metrics = self.metrics_listener.take().map(|metrics_listener| {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let router = crate::metrics::router(self.state.core.clone());
            let server = tokio::spawn(async move {
                axum::serve(metrics_listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
            });
            (stop, server)
        });
        // Without TCP_NODELAY a response written in two segments can wait for the
        // client's delayed ACK (up to 40 ms): felt by clients that pause between requests.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
            }
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await
        .context("serving HTTP");
        if let Some((stop, server)) = metrics {
            let _ = stop.send(());
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "serving metrics failed"),
                Err(error) => tracing::error!(%error, "the metrics server failed"),
            }
        }
        served?;
        self.stop().await;
        Ok(())
    }

    /// Stops the background work; the activity flusher writes what it holds first.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "background task failed");
            }
        }
        self.state.core.db.close().await;
    }
}
