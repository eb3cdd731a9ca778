//! The loop every follower of the log runs in ([`follow_log`]): it calls the follower's
//! step again when the step's [`Next`] says (at once, at the log's next append, or after a
//! delay), and backs off while the step fails. What a step does is the follower's own
//! ([`crate::runner`] for projectors and reactors, the chainer, the audit index, the
//! notifier, the caches' reader).

use std::sync::Arc;
use std::time::Duration;
use store::EventLog;
use tokio::sync::watch;

/// When a follower's loop calls its step again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It did work: at once.
    Now,
    /// Nothing new: at the log's next append.
    AtNextAppend,
    /// Nothing new, but something is due within this long (a checkpoint to store): at the
    /// next append or then, whichever comes first.
    AtNextAppendOrAfter(Duration),
}

impl Next {
    /// After a step that read `read` events of a page of at most `limit`: a full page may
    /// have more behind it (at once); a shorter one ended where the log ended for that read
    /// (`EventLog::read_all`), so at the next append, without a read that finds nothing.
    pub fn after_page(read: usize, limit: usize) -> Self {
        if read >= limit {
            Self::Now
        } else {
            Self::AtNextAppend
        }
    }
}

/// How long a follower nothing waits on (the audit index, the chainer, the notifier) lets
/// the log's new events gather once it has caught up ([`follow_log_gathering`]). Short, so that
/// its work stays spread out: a second's gathering made a burst of back-to-back batches
/// every second (2,000 events under the write bench), whose CPU showed up as a latency
/// spike for every request in flight.
pub const GATHER: Duration = Duration::from_millis(100);

/// [`follow_log`] for a follower nothing waits on (the audit index, the chainer, the
/// notifier), whose step returns how many events it read of a page of at most `limit`.
/// When a page was neither empty nor full (it has just caught up), it waits [`GATHER`]
/// before the next step, so that a busy log costs it a few transactions a second rather
/// than one per append.
pub async fn follow_log_gathering<F, Fut, E>(
    log: &Arc<dyn EventLog>,
    shutdown: watch::Receiver<bool>,
    max_backoff: Duration,
    limit: usize,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<usize, E>>,
    E: std::fmt::Display,
{
    let stop = shutdown.clone();
    follow_log(log, shutdown, max_backoff, || {
        let mut stop = stop.clone();
        let stepped = step();
        async move {
            let read = stepped.await?;
            if read > 0 && read < limit {
                tokio::select! {
                    () = tokio::time::sleep(GATHER) => {}
                    _ = stop.changed() => {}
                }
            }
            Ok::<_, E>(Next::after_page(read, limit))
        }
    })
    .await;
}

/// Calls `step` until `shutdown` turns true: when the step's [`Next`] says, and after a
/// backoff growing up to `max_backoff` while it fails. Every follower of the log (the
/// projections, the reactors, the notifier) runs in this loop.
pub async fn follow_log<F, Fut, E>(
    log: &Arc<dyn EventLog>,
    mut shutdown: watch::Receiver<bool>,
    max_backoff: Duration,
    mut step: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Next, E>>,
    E: std::fmt::Display,
{
    let mut watch = log.watch();
    let mut backoff = Duration::from_millis(100);
    while !*shutdown.borrow() {
        watch.mark_seen();
        match step().await {
            Ok(Next::Now) => backoff = Duration::from_millis(100),
            Ok(Next::AtNextAppend) => {
                tokio::select! {
                    () = watch.changed() => {}
                    _ = shutdown.changed() => {}
                }
            }
            Ok(Next::AtNextAppendOrAfter(due)) => {
                tokio::select! {
                    () = watch.changed() => {}
                    () = tokio::time::sleep(due) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProjectionError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use store::memory::MemoryLog;

    /// A step that has something due soon is called again then, with no append to wake it
    /// (the in-memory log's own fallback wake is a minute away).
    #[tokio::test]
    async fn a_step_with_something_due_is_called_again_without_an_append() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let (stop, stopped) = watch::channel(false);
        let calls = Arc::new(AtomicUsize::new(0));
        let (second, mut called_twice) = watch::channel(false);
        let counted = calls.clone();
        let follower = tokio::spawn(async move {
            follow_log(&log, stopped, Duration::from_secs(1), || {
                let call = counted.fetch_add(1, Ordering::SeqCst);
                if call == 1 {
                    let _ = second.send(true);
                }
                async move {
                    Ok::<_, ProjectionError>(if call == 0 {
                        Next::AtNextAppendOrAfter(Duration::from_millis(10))
                    } else {
                        Next::AtNextAppend
                    })
                }
            })
            .await;
        });
        tokio::time::timeout(Duration::from_secs(10), called_twice.wait_for(|c| *c))
            .await
            .expect("called again once due")
            .unwrap();
        stop.send(true).unwrap();
        follower.await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "then it waits for an append"
        );
    }
}
