//! The service's work beside HTTP and the projectors: erased keys' eviction, the token
//! cache's follower, the chainer, the audit index, the billing scheduler, the mail workers,
//! and the periodic work: flushing session activity and token usage, purging expired
//! idempotency keys, probing the workspaces' storage and verifying the stored provider
//! keys again.

use crate::config::ServeArgs;
use crate::mail::{self, MailQueue};
use crate::routes;
use crate::state::AppState;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use workers::key_eviction::KeyEviction;
use workers::mail::Mailer;
use workers::notifier::Notifier;

/// Starts the work that runs beside HTTP and the projectors, each task stopping when
/// `stopping` turns true; `mail_workers` are the notifier and mailer this process runs, if
/// any.
pub(super) async fn spawn(
    state: &AppState,
    serve: &ServeArgs,
    mail_queue: &MailQueue,
    mail_workers: Option<(Arc<Notifier>, Arc<Mailer>)>,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let eviction = KeyEviction::new(state.core.log.clone(), state.core.codec.keys().clone())
        .await
        .context("following the log for erased keys")?;
    tasks.push(tokio::spawn(eviction.run(stopping.clone())));
    tasks.push(tokio::spawn(crate::read_cache::follow(
        vec![state.tokens.cache.followed(), state.auth.sessions.clone()],
        state.core.projections.clone(),
        state.core.log.clone(),
        stopping.clone(),
    )));
    // Tamper evidence: links each event to the one before, after it is appended.
    let chainer = Arc::new(projections::chain::Chainer::new(
        state.core.db.clone(),
        state.core.log.clone(),
    ));
    tasks.push(tokio::spawn(chainer.run(stopping.clone())));
    // Audit reads find an account's events through this index (they also bring it up
    // to the head themselves; following the log keeps that step short).
    let audit_index = Arc::new(projections::audit_index::AuditIndex::new(
        state.core.db.clone(),
        state.core.log.clone(),
    ));
    tasks.push(tokio::spawn(audit_index.run(stopping.clone())));
    tasks.push(tokio::spawn(
        state
            .payments
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
            mail_queue,
            mailer,
            &serve.mail,
            stopping.clone(),
        ));
    }
    tasks.push(tokio::spawn(purge_idempotency_keys(
        state.clone(),
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(reprobe_storage(
        state.clone(),
        serve.storage_probe_interval,
        stopping.clone(),
    )));
    tasks.push(tokio::spawn(reverify_provider_keys(
        state.clone(),
        serve.provider_key_verify_interval,
        stopping,
    )));
    Ok(tasks)
}

async fn flush_activity(state: AppState, interval: Duration, mut stopping: watch::Receiver<bool>) {
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

async fn purge_idempotency_keys(state: AppState, mut stopping: watch::Receiver<bool>) {
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
async fn reprobe_storage(state: AppState, interval: Duration, stopping: watch::Receiver<bool>) {
    every(interval, stopping, || async {
        if let Err(error) = routes::storage::reprobe_all(&state).await {
            tracing::warn!(%error, "could not probe the workspaces' storage");
        }
    })
    .await;
}

/// Verifies the stored provider keys again every `interval`.
async fn reverify_provider_keys(
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
