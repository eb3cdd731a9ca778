//! Opening the database: SQLite (embedded default) or PostgreSQL, chosen by URL.
//!
//! Read models, checkpoints and the other tables are reached through one [`sqlx::AnyPool`]
//! with SQL written once for both databases; the PostgreSQL event log also keeps a native
//! pool for its array-typed append. Writes to SQLite go through [`Database::begin_write`],
//! which serialises in-process writers on a mutex and starts `BEGIN IMMEDIATE`, so a
//! transaction never has to upgrade a read lock and SQLite's busy-wait sleeps stay out
//! of the request path. Background writers (the followers of the log, the mail queue, work
//! a request leaves for after its answer such as the throttle's settlement) use
//! [`Database::begin_background_write`], which queues them among themselves first: a
//! request's write then waits for at most one of theirs, not for all of them.

use crate::error::StoreError;
use crate::log::EventLog;
use crate::migrations::{self, EmbeddedMigrations};
use crate::readers::{Reader, Readers};
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Any, AnyPool, Executor, PgConnection, PgPool, Transaction};
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

mod connections;

use connections::ping_if_idle;
pub(crate) use connections::{
    ACQUIRE_TIMEOUT, CLOSE_WHEN_IDLE_FOR, PING_WHEN_IDLE_FOR, connection_setup,
};

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A single file; the embedded default.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A connection to the service's database, with the pools each part needs.
#[derive(Clone)]
pub struct Database {
    backend: Backend,
    pool: AnyPool,
    pg: Option<PgPool>,
    write_gate: Option<Arc<Mutex<()>>>,
    /// On SQLite, taken by background writers before the write gate (and held until their
    /// transaction ends), so that at most one of them is ever queued for the gate.
    background_gate: Option<Arc<Mutex<()>>>,
    /// Shared: a handle is cloned per request (inside the HTTP state), and a `String`
    /// here made every clone an allocation.
    url: Arc<str>,
    /// Connections for the hot reads, outside the pool (`crate::readers`).
    readers: Readers,
    /// The PostgreSQL log's own connections, outside the pools too (`crate::postgres`).
    log_connections: Option<Readers<PgConnection>>,
}

/// A write transaction; on SQLite it also holds the in-process write gate.
pub struct WriteTx {
    /// The transaction; commit it with `tx.commit()`.
    pub tx: Transaction<'static, Any>,
    _gate: Option<OwnedMutexGuard<()>>,
    _background: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// Commits the transaction and releases the write gate.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = Transaction<'static, Any>;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

impl Database {
    /// The SQLite URL of a file, created if missing.
    pub fn sqlite_url(path: &Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`) with at most `max_connections`
    /// connections per pool.
    #[tracing::instrument(skip_all, fields(backend))]
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Invalid(
                "the database URL must start with sqlite:// or postgres://".into(),
            ));
        };
        tracing::Span::current().record("backend", tracing::field::debug(backend));
        let options = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(CLOSE_WHEN_IDLE_FOR);
        let (pool, pg, write_gate) = match backend {
            Backend::Sqlite => {
                // sqlx tests a connection at every checkout by default: on SQLite a hop to
                // the connection's worker thread and back before the query's own hop.
                let pool = options
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(connection_setup(Backend::Sqlite)).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                (pool, None, Some(Arc::new(Mutex::new(()))))
            }
            Backend::Postgres => {
                let pool = options
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(connection_setup(Backend::Postgres)).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?;
                // Opened on demand: only `append_in` (the store's tests and benches) runs
                // on it, and the listener takes its connect options from it.
                let pg = PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .idle_timeout(CLOSE_WHEN_IDLE_FOR)
                    .test_before_acquire(false)
                    .before_acquire(ping_if_idle)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(connection_setup(Backend::Postgres)).await?;
                            Ok(())
                        })
                    })
                    .connect_lazy(url)?;
                (pool, Some(pg), None)
            }
        };
        let url: Arc<str> = Arc::from(url);
        let log_connections = pg
            .as_ref()
            .map(|_| Readers::new(url.clone(), backend, max_connections));
        Ok(Self {
            backend,
            pool,
            pg,
            background_gate: write_gate.as_ref().map(|_| Arc::new(Mutex::new(()))),
            write_gate,
            readers: Readers::new(url.clone(), backend, max_connections),
            log_connections,
            url,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool for read models and other tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The native PostgreSQL pool, if this is PostgreSQL.
    pub fn pg_pool(&self) -> Option<&PgPool> {
        self.pg.as_ref()
    }

    /// A connection for a short read on the request path, outside the pool (see
    /// `store::readers`): give it back with [`Reader::release`] once its queries succeeded.
    pub async fn reader(&self) -> Result<Reader, sqlx::Error> {
        self.readers.acquire().await
    }

    /// The connections the PostgreSQL log runs its statements on, if this is PostgreSQL.
    pub(crate) fn log_connections(&self) -> Option<&Readers<PgConnection>> {
        self.log_connections.as_ref()
    }

    /// The URL this database was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Starts a write transaction (see the module notes for SQLite).
    pub async fn begin_write(&self) -> Result<WriteTx, sqlx::Error> {
        self.begin(None).await
    }

    /// Starts a write transaction of a background writer (a follower of the log, the mail
    /// queue, the throttle's settlement written after its answer). On SQLite it first waits
    /// for the other background writers' transactions: the write gate is fair (first come,
    /// first served), and with a dozen followers each queued for it, an append of a request
    /// waited behind all of them (3-4 ms on average and up to 20 ms under a write load); now
    /// it waits for at most one.
    pub async fn begin_background_write(&self) -> Result<WriteTx, sqlx::Error> {
        let background = take(&self.background_gate).await;
        self.begin(background).await
    }

    async fn begin(&self, background: Option<OwnedMutexGuard<()>>) -> Result<WriteTx, sqlx::Error> {
        let gate = take(&self.write_gate).await;
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            _gate: gate,
            _background: background,
        })
    }

    /// Applies the migrations of this backend that are not applied yet.
    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = Migrator::new(EmbeddedMigrations(self.backend))
            .await
            .map_err(|e| StoreError::Invalid(format!("migrations: {e}")))?;
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Invalid(format!("migrations failed: {e}")))?;
        Ok(())
    }

    /// How many of the embedded migrations this database has not applied yet.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        // A database never migrated has no bookkeeping table: everything is pending.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
                .unwrap_or_default();
        Ok(migrations::listed(self.backend)
            .iter()
            .filter(|(version, _, _)| !applied.contains(version))
            .count())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Opens the event log stored in this database.
    pub async fn event_log(&self) -> Result<Arc<dyn EventLog>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => Arc::new(crate::sqlite::SqliteLog::new(self.clone())),
            Backend::Postgres => Arc::new(crate::postgres::PostgresLog::open(self.clone()).await?),
        })
    }

    /// Opens the event log of the service: the KurrentDB server or cluster at
    /// `event_store` when one is given (`kurrentdb://…`, `esdb://…`, see
    /// [`crate::kurrentdb::SCHEMES`]), else the log stored in this database. Every part of
    /// the service (commands, projectors, workers, the CLI) obtains its log here.
    #[tracing::instrument(skip_all, fields(kurrentdb = event_store.is_some()))]
    pub async fn open_event_log(
        &self,
        event_store: Option<&str>,
    ) -> Result<Arc<dyn EventLog>, StoreError> {
        match event_store {
            None => self.event_log().await,
            Some(url) if crate::kurrentdb::is_kurrentdb_url(url) => {
                Ok(Arc::new(crate::kurrentdb::KurrentLog::connect(url).await?))
            }
            Some(_) => Err(StoreError::Invalid(format!(
                "the event store URL must start with one of {}://",
                crate::kurrentdb::SCHEMES.join("://, ")
            ))),
        }
    }

    /// Closes every pool.
    pub async fn close(&self) {
        self.readers.close().await;
        if let Some(log) = &self.log_connections {
            log.close().await;
        }
        self.pool.close().await;
        if let Some(pg) = &self.pg {
            pg.close().await;
        }
    }
}

/// Waits for `gate`, if there is one (SQLite's), and holds it until the guard drops.
async fn take(gate: &Option<Arc<Mutex<()>>>) -> Option<OwnedMutexGuard<()>> {
    match gate {
        Some(gate) => Some(gate.clone().lock_owned().await),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Only KurrentDB URLs select another log, and a refusal never repeats the URL.
    #[tokio::test]
    async fn the_event_store_url_must_name_kurrentdb() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&Database::sqlite_url(&dir.path().join("a.db")), 1)
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let error = db
            .open_event_log(Some("redis://user:s3cret@cache:6379"))
            .await
            .err()
            .unwrap();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let error = db
            .open_event_log(Some("kurrentdb://user:s3cret@host:2113/a/path"))
            .await
            .err()
            .unwrap();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        // Without one, the database's own log.
        let log = db.open_event_log(None).await.unwrap();
        assert_eq!(log.head().await.unwrap(), crate::GlobalPosition::START);
        db.close().await;
    }

    /// On SQLite a request's write waits for the background write that holds the gate, not
    /// for every background write queued before it.
    #[tokio::test]
    async fn a_write_goes_before_background_writes_queued_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::connect(&Database::sqlite_url(&dir.path().join("a.db")), 4)
            .await
            .unwrap();
        let holding = db.begin_background_write().await.unwrap();
        let (order, mut got) = tokio::sync::mpsc::unbounded_channel();
        let queued = |background: bool| {
            let (db, order) = (db.clone(), order.clone());
            tokio::spawn(async move {
                let w = if background {
                    db.begin_background_write().await
                } else {
                    db.begin_write().await
                };
                order.send(background).unwrap();
                w.unwrap().commit().await.unwrap();
            })
        };
        let background = queued(true);
        // The background write is queued first.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let write = queued(false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        holding.commit().await.unwrap();
        assert_eq!(got.recv().await, Some(false), "the request's write first");
        assert_eq!(got.recv().await, Some(true));
        background.await.unwrap();
        write.await.unwrap();
        db.close().await;
    }
}
