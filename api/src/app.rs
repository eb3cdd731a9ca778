//! The composition root: builds every service from the configuration, starts the
//! background work (projectors, activity flushing, idempotency-key purge), serves HTTP,
//! and shuts down in order.

use crate::config::{ServeArgs, StorageArgs};
use crate::mail::{self, MailQueue};
use crate::routes;
use crate::state::{AppState, HttpSettings};
use anyhow::Context;
use axum::Router;
use axum::http::HeaderName;
use commands::access_tokens::AccessTokens;
use commands::accounts::{Accounts, SessionPolicy};
use commands::activity::SessionActivity;
use commands::billing::Billing;
use commands::credits::Credits;
use commands::idempotency::IdempotencyStore;
use commands::notifications::Notifications;
use commands::passwords::Passwords;
use commands::payments::{PaymentProvider, SandboxProvider, WebhookSigner};
use commands::rate_limit::RateLimit;
use commands::throttle::{Throttle, ThrottleKind, ThrottlePolicy};
use commands::usage::TokenUsage;
use commands::{Clock, EventCodec, Executor, SystemClock};
use domain::catalog::Catalog;
use projections::{ProjectionRunner, Reactor};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use store::{Backend, Database, EventLog};
use store::{BlobStore, FolderBlobStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vault::UnsubscribeLinks;
use vault::{DataKeys, EmailIndex, FieldSealer, MasterKey};
use workers::billing::BillingReactor;
use workers::erasure::ErasureReactor;
use workers::scheduler::Scheduler;

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

/// The storage side of the service: database, log, keys, codec, and the executor every
/// command handler shares (one aggregate cache, one set of stream queues).
pub struct Storage {
    /// The database.
    pub db: Database,
    /// The log in it.
    pub log: Arc<dyn EventLog>,
    /// The codec sealing personal data.
    pub codec: EventCodec,
    /// The master key.
    pub master: MasterKey,
    /// Runs commands.
    pub exec: Executor,
}

impl Storage {
    /// Opens the database, applies migrations and opens the log; read models are not
    /// prepared yet.
    #[tracing::instrument(skip_all)]
    pub async fn open(args: &StorageArgs) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
        let url = match &args.database_url {
            Some(url) => url.clone(),
            None => Database::sqlite_url(&args.data_dir.join("accounts.db")),
        };
        let db = Database::connect(&url, args.db_max_connections)
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("applying migrations")?;
        let master = match &args.master_key {
            Some(key) => MasterKey::from_base64(key).context("ACCOUNTS_MASTER_KEY")?,
            None => {
                let path = args.data_dir.join("master.key");
                let (key, created) = MasterKey::load_or_create(&path)
                    .with_context(|| format!("master key file {}", path.display()))?;
                if created {
                    tracing::warn!(
                        path = %path.display(),
                        "created a new master key (mode 0600). Back it up: without it the \
                         personal data in the event log cannot be read. In production pass \
                         ACCOUNTS_MASTER_KEY instead."
                    );
                }
                key
            }
        };
        let log = db.event_log().await.context("opening the event log")?;
        workers::notifier::register(&db, &log)
            .await
            .context("registering the notifier")?;
        let keys = open_key_store(args, &db, &master).await?;
        let codec = EventCodec::new(Arc::new(keys));
        let exec = Executor::new(log.clone(), codec.clone());
        Ok(Self {
            db,
            log,
            codec,
            master,
            exec,
        })
    }

    /// The read models, plus `reactors`, over this storage (not prepared yet).
    pub fn runner(&self, reactors: Vec<Arc<dyn Reactor>>) -> Arc<ProjectionRunner> {
        Arc::new(
            ProjectionRunner::new(
                self.db.clone(),
                self.log.clone(),
                Arc::new(self.codec.clone()),
                projections::all(&FieldSealer::new(self.codec.keys().clone())),
            )
            .with_reactors(reactors),
        )
    }
}

/// The data keys, in their own store when one is configured (or, embedded, in
/// `<data-dir>/keys.db`): a backup of the data then holds none of them.
async fn open_key_store(
    args: &StorageArgs,
    db: &Database,
    master: &MasterKey,
) -> anyhow::Result<DataKeys> {
    let url = match (&args.key_database_url, db.backend()) {
        (Some(url), _) => Some(url.clone()),
        (None, Backend::Sqlite) => Some(Database::sqlite_url(&args.data_dir.join("keys.db"))),
        (None, Backend::Postgres) => None,
    };
    let Some(url) = url.filter(|url| url != db.url()) else {
        tracing::warn!(
            "the data keys are kept in the database they seal, so its backups hold them \
             too; set ACCOUNTS_KEY_DATABASE_URL to a database of their own"
        );
        return Ok(DataKeys::new(db.clone(), master));
    };
    let store = Database::connect(&url, 4)
        .await
        .context("connecting to the key store")?;
    DataKeys::prepare_store(&store)
        .await
        .context("preparing the key store")?;
    let keys = DataKeys::new(store, master);
    let moved = keys
        .adopt_from(db)
        .await
        .context("moving data keys to the key store")?;
    if moved > 0 {
        tracing::info!(moved, "data keys moved to the key store");
    }
    Ok(keys)
}

/// The shipped catalog (`config/catalog.toml`).
pub const DEFAULT_CATALOG: &str = include_str!("../../config/catalog.toml");

/// Loads and validates the catalog at `path`, or the shipped one.
pub fn load_catalog(path: Option<&std::path::Path>) -> anyhow::Result<Catalog> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the catalog {}", path.display()))?,
        None => DEFAULT_CATALOG.to_owned(),
    };
    let catalog: Catalog = toml::from_str(&text).context("parsing the catalog")?;
    catalog
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid catalog: {e}"))?;
    Ok(catalog)
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
        let storage = Storage::open(&serve.storage).await?;
        let catalog = Arc::new(load_catalog(serve.catalog.as_deref())?);
        let provider: Arc<dyn PaymentProvider> = Arc::new(SandboxProvider);
        let credits = Credits::new(storage.exec.clone(), clock.clone(), serve.hold_timeout);
        let billing = Billing::new(
            storage.exec.clone(),
            credits.clone(),
            catalog,
            provider,
            clock.clone(),
        );
        let blobs: Arc<dyn BlobStore> =
            Arc::new(FolderBlobStore::new(serve.storage.data_dir.join("blobs")));
        let webhook_secret = match &serve.payments_webhook_secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => storage.master.webhook_secret().to_vec(),
        };

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
        );
        let idempotency = IdempotencyStore::new(
            storage.db.clone(),
            FieldSealer::new(storage.codec.keys().clone()),
        );
        let notifications = Notifications::new(storage.exec.clone(), clock.clone());
        let unsubscribe_links = UnsubscribeLinks::new(storage.master.unsubscribe_secret());
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
        let access_tokens = AccessTokens::new(storage.exec.clone(), clock.clone());
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
        );
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
        let state = AppState {
            db: storage.db.clone(),
            log: storage.log.clone(),
            codec: storage.codec.clone(),
            sealer: FieldSealer::new(storage.codec.keys().clone()),
            accounts,
            credits: credits.clone(),
            billing: billing.clone(),
            scheduler: Scheduler::new(storage.db.clone(), billing, credits, clock.clone()),
            webhooks: WebhookSigner::new(webhook_secret),
            http_client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .context("HTTP client")?,
            projections: projections.clone(),
            idempotency,
            activity: activity.clone(),
            access_tokens,
            notifications,
            unsubscribe_links,
            token_usage: Arc::new(TokenUsage::new(storage.log.clone(), storage.codec.clone())),
            token_rate_limit: Arc::new(RateLimit::new(
                "token",
                serve.token_rate_limit,
                storage.db.clone(),
                throttle_clock.clone(),
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
            clock: clock.clone(),
            http: Arc::new(HttpSettings {
                client_ip_header: header(&serve.client_ip_header)?,
                country_header: header(&serve.country_header)?,
                city_header: header(&serve.city_header)?,
                projection_wait: Duration::from_secs(10),
                sessions,
                public_url: serve.public_url.clone(),
            }),
        };

        let (shutdown, stopping) = watch::channel(false);
        let mut tasks = projections.spawn(stopping.clone());
        tasks.push(tokio::spawn(
            state
                .scheduler
                .clone()
                .run(serve.scheduler_interval, stopping.clone()),
        ));
        tasks.push(tokio::spawn(flush_activity(
            state.clone(),
            serve.activity_flush_interval,
            stopping.clone(),
        )));
        if let Some((notifier, mailer)) = mail_workers {
            tasks.push(tokio::spawn(notifier.run(stopping.clone())));
            tasks.push(mail::spawn_mailer(
                &mail_queue,
                mailer,
                &serve.mail,
                stopping.clone(),
            ));
        }
        tasks.push(tokio::spawn(purge_idempotency_keys(
            state.clone(),
            stopping,
        )));
        Ok(Self {
            state,
            request_timeout: serve.request_timeout,
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

    /// Serves HTTP on `listener` until `signal` completes, then stops the background work.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await
        .context("serving HTTP")?;
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
        self.state.db.close().await;
    }
}

async fn flush_activity(state: AppState, interval: Duration, mut stopping: watch::Receiver<bool>) {
    loop {
        let stop = tokio::select! {
            () = tokio::time::sleep(interval) => false,
            _ = stopping.changed() => true,
        };
        let now = state.clock.now();
        if let Err(error) = state.activity.flush(now).await {
            tracing::warn!(%error, "could not record session activity; will retry");
        }
        if let Err(error) = state.token_usage.flush(now).await {
            tracing::warn!(%error, "could not record token usage; will retry");
        }
        let idle = state.http.sessions.idle_timeout;
        state
            .activity
            .forget_idle(domain::Timestamp::from_unix_micros(
                now.unix_micros().saturating_sub(idle.as_micros() as i64),
            ));
        if stop || *stopping.borrow() {
            break;
        }
    }
}

async fn purge_idempotency_keys(state: AppState, mut stopping: watch::Receiver<bool>) {
    loop {
        if let Err(error) = state.idempotency.purge(state.clock.now()).await {
            tracing::warn!(%error, "could not purge idempotency keys");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stopping.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_is_valid() {
        let catalog = load_catalog(None).unwrap();
        assert_eq!(catalog.currency, "EUR");
        assert!(catalog.claim("signup-bonus").is_some());
        assert!(catalog.plans.windows(2).all(|w| w[0].rank < w[1].rank));
    }

    #[test]
    fn a_broken_catalog_is_refused() {
        let path = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            "currency = \"EUR\"\n[[packs]]\nid = \"a\"\nname = \"A\"\ncredits = 0\nprice = 1\n",
        )
        .unwrap();
        assert!(load_catalog(Some(&path)).is_err());
        std::fs::remove_file(path).unwrap();
    }
}
