//! What every connection of the service runs first, and when one is checked before it is
//! handed out: the pools of [`super::Database`] and the readers (`crate::readers`) alike.

use super::Backend;
use sqlx::Connection;
use sqlx::pool::PoolConnectionMetadata;
use std::pin::Pin;
use std::time::Duration;

/// Limits on every PostgreSQL session of the service. No lock a request or a projection
/// waits for is held for long, so a wait past `lock_timeout` is a fault to report, not to
/// sit out; and a transaction left idle (a task that stopped mid-way) is ended before it
/// holds back every reader of the log, whose visibility horizon is the oldest running
/// transaction.
const POSTGRES_SESSION_LIMITS: &str =
    "SET lock_timeout = '30s'; SET idle_in_transaction_session_timeout = '60s'";

/// What every SQLite connection of the service runs first. `secure_delete`: deleted rows
/// are overwritten with zeros, in the file and in the WAL, instead of lingering in free
/// pages.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;";

/// What a new connection of `backend` runs first, as every connection of the service does.
pub(crate) fn connection_setup(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => SQLITE_PRAGMAS,
        Backend::Postgres => POSTGRES_SESSION_LIMITS,
    }
}

/// A connection idle this long is pinged before it is handed out (a dead one, after a
/// PostgreSQL restart or a SQLite worker thread's end, is then replaced). One in use more
/// recently is not: the ping is a round trip of its own, and checking every checkout cost
/// the authenticated read path a round trip per query. The readers (`crate::readers`)
/// follow the same rule.
pub(crate) const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// A connection idle this long is closed, by the pools (sqlx's default, set explicitly) and
/// the readers (`crate::readers`) alike, so that a service no longer holds its busiest
/// moment's connections on the server.
pub(crate) const CLOSE_WHEN_IDLE_FOR: Duration = Duration::from_secs(600);

/// How long taking a connection waits before giving up, from the pools or the readers.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pings a pooled connection about to be handed out if it was idle for
/// [`PING_WHEN_IDLE_FOR`]; an error discards it and the pool opens another.
pub(super) fn ping_if_idle<C: Connection>(
    conn: &mut C,
    meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if meta.idle_for >= PING_WHEN_IDLE_FOR {
            conn.ping().await?;
        }
        Ok(true)
    })
}
