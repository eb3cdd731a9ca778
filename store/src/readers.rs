//! Connections for the hot reads of the request path (the balance card), and for every
//! statement of the PostgreSQL log (`crate::postgres`), kept apart from sqlx's pool
//! because that pool tests every connection given back to it: `ping` on release, which
//! nothing turns off (sqlx 0.8). On PostgreSQL that is a round trip of its own after every
//! query; on SQLite a second hop to the connection's worker thread and back. For a request
//! whose work is one indexed query, that doubled the database's share of its cost.
//!
//! What the ping guards against is kept another way: a connection goes back only when its
//! reader says it finished ([`Reader::release`]); one dropped mid-query or after an error
//! is closed, and the next reader opens a fresh one. A connection idle for a second is
//! pinged before use, as the pool's are ([`crate::db`]), so one a server restart broke is
//! replaced instead of failing a request; one idle for ten minutes is closed, as the
//! pool's are, so that a burst's connections do not stay open on the server for good.

use crate::db::{
    ACQUIRE_TIMEOUT, Backend, CLOSE_WHEN_IDLE_FOR, PING_WHEN_IDLE_FOR, connection_setup,
};
use sqlx::{AnyConnection, Connection, Executor};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Up to `max` connections, opened on demand and kept while in use: through the `Any`
/// driver for the request path's reads, native ones for the PostgreSQL log's statements
/// (`crate::postgres`), which would otherwise pay the pool's ping after each of them.
pub(crate) struct Readers<C = AnyConnection> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Readers<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C> {
    url: Arc<str>,
    backend: Backend,
    /// Oldest first: a released connection goes at the end, and is taken from there.
    idle: Mutex<Vec<Idle<C>>>,
    /// One permit per connection that may exist; closed by [`Readers::close`].
    permits: Arc<Semaphore>,
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

impl<C> Readers<C>
where
    C: Connection + 'static,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    /// At most `max` connections to `url`, none opened yet. Inside a runtime, a task closes
    /// those idle for [`CLOSE_WHEN_IDLE_FOR`] (looking every tenth of it) for as long as
    /// the set is in use.
    pub(crate) fn new(url: Arc<str>, backend: Backend, max: u32) -> Self {
        let readers = Self {
            inner: Arc::new(Inner {
                url,
                backend,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max.max(1) as usize)),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(close_idle_connections(Arc::downgrade(&readers.inner)));
        }
        readers
    }

    /// A connection: an idle one (pinged first if idle a while), or a new one.
    pub(crate) async fn acquire(&self) -> Result<Reader<C>, sqlx::Error> {
        let permit =
            tokio::time::timeout(ACQUIRE_TIMEOUT, self.inner.permits.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
        while let Some(mut idle) = self.take_idle() {
            if idle.since.elapsed() < PING_WHEN_IDLE_FOR || idle.conn.ping().await.is_ok() {
                return Ok(self.reader(idle.conn, permit));
            }
            // Broken while idle (a server restart): dropped, try the next.
        }
        let mut conn = C::connect(&self.inner.url).await?;
        conn.execute(connection_setup(self.inner.backend)).await?;
        Ok(self.reader(conn, permit))
    }

    fn take_idle(&self) -> Option<Idle<C>> {
        lock(&self.inner.idle).pop()
    }

    fn reader(&self, conn: C, permit: OwnedSemaphorePermit) -> Reader<C> {
        Reader {
            conn: Some(conn),
            inner: self.inner.clone(),
            _permit: permit,
        }
    }

    /// Refuses further readers and closes the idle connections.
    pub(crate) async fn close(&self) {
        self.inner.permits.close();
        self.close_idle_for(Duration::ZERO).await;
    }
}

impl<C: Connection + 'static> Readers<C> {
    /// Closes the connections idle for `at_least` or longer; how many there were.
    pub(crate) async fn close_idle_for(&self, at_least: Duration) -> usize {
        let expired: Vec<Idle<C>> = {
            let mut idle = lock(&self.inner.idle);
            let fresh = idle
                .iter()
                .position(|idle| idle.since.elapsed() < at_least)
                .unwrap_or(idle.len());
            idle.drain(..fresh).collect()
        };
        let closed = expired.len();
        for idle in expired {
            let _ = idle.conn.close().await;
        }
        closed
    }
}

/// Every tenth of [`CLOSE_WHEN_IDLE_FOR`], closes the connections of `readers` idle that
/// long, until the set is dropped or closed.
async fn close_idle_connections<C: Connection + 'static>(readers: Weak<Inner<C>>) {
    loop {
        tokio::time::sleep(CLOSE_WHEN_IDLE_FOR / 10).await;
        let Some(inner) = readers.upgrade() else {
            return;
        };
        if inner.permits.is_closed() {
            return;
        }
        let closed = Readers { inner }.close_idle_for(CLOSE_WHEN_IDLE_FOR).await;
        if closed > 0 {
            tracing::debug!(closed, "closed connections idle for a while");
        }
    }
}

fn lock<C>(idle: &Mutex<Vec<Idle<C>>>) -> std::sync::MutexGuard<'_, Vec<Idle<C>>> {
    // Nothing panics while holding it; a poisoned list is still a list.
    idle.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One connection of `Readers` (the database's hot-read connections); give it back with [`Reader::release`] once done with it,
/// else it is closed.
pub struct Reader<C = AnyConnection> {
    conn: Option<C>,
    inner: Arc<Inner<C>>,
    _permit: OwnedSemaphorePermit,
}

impl<C> Reader<C> {
    /// The connection, to run queries on.
    pub fn conn(&mut self) -> &mut C {
        self.conn
            .as_mut()
            .expect("a reader holds its connection until released")
    }

    /// Gives the connection back for the next reader: call it only after every query on
    /// it finished without error.
    pub fn release(mut self) {
        if let Some(conn) = self.conn.take()
            && !self.inner.permits.is_closed()
        {
            lock(&self.inner.idle).push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }
}

impl<C> std::fmt::Debug for Reader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, Reader, Readers};
    use crate::Database;
    use crate::testkit::{TestPostgres, TestSqlite};
    use sqlx::{AnyConnection, Executor};
    use std::time::Duration;

    /// Whether the connection `reader` holds is one that ran [`mark`] before.
    async fn marked(reader: &mut Reader) -> bool {
        sqlx::query("SELECT 1 FROM reader_mark")
            .fetch_optional(reader.conn())
            .await
            .is_ok()
    }

    /// A table only this connection sees.
    async fn mark(reader: &mut Reader) {
        reader
            .conn()
            .execute("CREATE TEMPORARY TABLE reader_mark (x INTEGER)")
            .await
            .unwrap();
    }

    async fn released_connections_come_back_and_dropped_ones_do_not(db: Database) {
        let mut first = db.reader().await.unwrap();
        mark(&mut first).await;
        first.release();
        let mut again = db.reader().await.unwrap();
        assert!(marked(&mut again).await, "a released connection is reused");
        // Not released (a request dropped mid-query, or an error): closed, not reused.
        drop(again);
        let mut fresh = db.reader().await.unwrap();
        assert!(
            !marked(&mut fresh).await,
            "a dropped connection is not reused"
        );
        fresh.release();

        // At most `max` (here 2) at once: a third waits for one to come back.
        let (a, b) = (db.reader().await.unwrap(), db.reader().await.unwrap());
        let third = tokio::spawn({
            let db = db.clone();
            async move { db.reader().await.map(Reader::release) }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!third.is_finished(), "a third reader waits");
        a.release();
        third.await.unwrap().unwrap();
        b.release();

        db.close().await;
        assert!(matches!(db.reader().await, Err(sqlx::Error::PoolClosed)));
    }

    #[tokio::test]
    async fn sqlite_readers() {
        let file = TestSqlite::create();
        let db = Database::connect(&file.url, 2).await.unwrap();
        released_connections_come_back_and_dropped_ones_do_not(db).await;
    }

    /// A connection the server dropped while it sat idle is replaced, not handed out.
    #[tokio::test]
    async fn a_connection_broken_while_idle_is_replaced() {
        let server = TestPostgres::create().await;
        let db = Database::connect(&server.url, 2).await.unwrap();
        let pid = |mut reader: Reader| async move {
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(reader.conn())
                .await
                .unwrap();
            reader.release();
            pid
        };
        let first = pid(db.reader().await.unwrap()).await;
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(first)
            .execute(db.pool())
            .await
            .unwrap();
        tokio::time::sleep(crate::db::PING_WHEN_IDLE_FOR).await;
        let second = pid(db.reader().await.unwrap()).await;
        assert_ne!(first, second);
    }

    /// Connections idle past the limit are closed, on the server too, the oldest first; one
    /// used more recently is kept.
    #[tokio::test]
    async fn connections_idle_too_long_are_closed() {
        let server = TestPostgres::create().await;
        let db = Database::connect(&server.url, 3).await.unwrap();
        let readers =
            Readers::<AnyConnection>::new(server.url.as_str().into(), Backend::Postgres, 3);
        let mut held = Vec::new();
        let mut pids = Vec::new();
        for _ in 0..3 {
            let mut reader = readers.acquire().await.unwrap();
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                .fetch_one(reader.conn())
                .await
                .unwrap();
            pids.push(pid);
            held.push(reader);
        }
        // Released in this order, each then idle longer than the next.
        held.into_iter().for_each(Reader::release);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut recent = readers.acquire().await.unwrap();
        mark(&mut recent).await;
        recent.release();
        let alive = || async {
            let alive: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE pid = ANY($1) ORDER BY pid",
            )
            .bind(&pids)
            .fetch_all(db.pg_pool().unwrap())
            .await
            .unwrap();
            alive
        };
        assert_eq!(alive().await.len(), 3);

        assert_eq!(readers.close_idle_for(Duration::from_secs(3600)).await, 0);
        assert_eq!(
            readers.close_idle_for(Duration::from_millis(50)).await,
            2,
            "the two idle longest"
        );
        let mut kept = readers.acquire().await.unwrap();
        assert!(marked(&mut kept).await, "the one used since is kept");
        kept.release();
        for _ in 0..100 {
            if alive().await.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(alive().await.len(), 1, "closed on the server too");
        assert_eq!(readers.close_idle_for(Duration::ZERO).await, 1);
    }

    #[tokio::test]
    async fn postgres_readers() {
        let server = TestPostgres::create().await;
        let db = Database::connect(&server.url, 2).await.unwrap();
        released_connections_come_back_and_dropped_ones_do_not(db).await;
    }
}
