//! The service's periodic work besides the projectors: flushing session activity and
//! token usage, purging expired idempotency keys, probing the workspaces' storage and
//! verifying the stored provider keys again.

use crate::routes;
use crate::state::AppState;
use std::time::Duration;
use tokio::sync::watch;

pub(super) async fn flush_activity(
    state: AppState,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        let stop = tokio::select! {
            () = tokio::time::sleep(interval) => false,
            _ = stopping.changed() => true,
        };
        let now = state.core.clock.now();
        if let Err(error) = state.auth.activity.flush(now).await {
            tracing::warn!(%error, "could not record session activity; will retry");
        }
        if let Err(error) = state.tokens.usage.flush(now).await {
            tracing::warn!(%error, "could not record token usage; will retry");
        }
        let idle = state.core.http.sessions.idle_timeout;
        state
            .auth
            .activity
            .forget_idle(domain::Timestamp::from_unix_micros(
                now.unix_micros().saturating_sub(idle.as_micros() as i64),
            ));
        if stop || *stopping.borrow() {
            break;
        }
    }
}

pub(super) async fn purge_idempotency_keys(state: AppState, mut stopping: watch::Receiver<bool>) {
    loop {
        if let Err(error) = state.idempotency.purge(state.core.clock.now()).await {
            tracing::warn!(%error, "could not purge idempotency keys");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stopping.changed() => break,
        }
    }
}

/// Probes the workspaces' external storage every `interval`.
pub(super) async fn reprobe_storage(
    state: AppState,
    interval: Duration,
    stopping: watch::Receiver<bool>,
) {
    every(interval, stopping, || async {
        if let Err(error) = routes::storage::reprobe_all(&state).await {
            tracing::warn!(%error, "could not probe the workspaces' storage");
        }
    })
    .await;
}

/// Verifies the stored provider keys again every `interval`.
pub(super) async fn reverify_provider_keys(
    state: AppState,
    interval: Duration,
    stopping: watch::Receiver<bool>,
) {
    every(interval, stopping, || async {
        if let Err(error) = routes::provider_keys::reverify_all(&state).await {
            tracing::warn!(%error, "could not verify the provider keys again");
        }
    })
    .await;
}

/// Runs `work` every `interval` (first after one interval) until `stopping` changes.
async fn every<F, Fut>(interval: Duration, mut stopping: watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => break,
        }
        work().await;
    }
}
