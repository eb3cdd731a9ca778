//! Hearing other processes' appends and telling them about ours: LISTEN/NOTIFY on
//! [`NOTIFY_CHANNEL`], each announcement signed with the announcing log's id.

use super::NOTIFY_CHANNEL;
use crate::error::StoreError;
use crate::log::AppendSignal;
use crate::readers::Readers;
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Wakes the readers of `signal` at every announcement but those signed `origin` (this
/// log's own: its readers were woken at the commit).
pub(super) async fn listen(
    pg: &PgPool,
    signal: AppendSignal,
    origin: String,
) -> Result<JoinHandle<()>, StoreError> {
    // The listener gets a connection of its own, outside the shared pool: a pool's
    // close() waits for every checked-out connection, and one parked in LISTEN would
    // make that wait depend on the listener noticing the close. It ends when the log
    // is dropped (the task is aborted).
    let listen_pool = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with((*pg.connect_options()).clone());
    let mut listener = PgListener::connect_with(&listen_pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(tokio::spawn(async move {
        loop {
            match listener.recv().await {
                Ok(notification) if notification.payload() == origin => {}
                Ok(_) => signal.notify(),
                Err(error) => {
                    // recv() reconnects on the next call; notifications may have been
                    // lost meanwhile, so wake every reader to look for itself.
                    tracing::warn!(%error, "event notification listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    signal.notify();
                }
            }
        }
    }))
}

/// Announces, signed `origin`, each time `announce` is notified (after a batch commits;
/// notifications arriving while one is sent are coalesced into the next).
pub(super) fn announcer(
    conns: Readers<PgConnection>,
    announce: Arc<Notify>,
    origin: String,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            announce.notified().await;
            if let Err(error) = notify(&conns, &origin).await {
                tracing::warn!(%error, "could not announce new events");
            }
        }
    })
}

async fn notify(conns: &Readers<PgConnection>, origin: &str) -> Result<(), sqlx::Error> {
    let mut conn = conns.acquire().await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(NOTIFY_CHANNEL)
        .bind(origin)
        .execute(conn.conn())
        .await?;
    conn.release();
    Ok(())
}
