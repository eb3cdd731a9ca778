//! A log for tests that counts what is asked of it and can hold an append.

use crate::{
    AppendResult, EventLog, ExpectedRevision, GlobalPosition, LogWatch, NewEvent, RecordedEvent,
    StoreError,
};
use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// A log that counts appends, reads of streams and their events and reads of the whole log,
/// and can hold the next append until the test lets it through.
pub struct ProbedLog {
    inner: Arc<dyn EventLog>,
    /// Appends asked for.
    pub appends: AtomicU64,
    /// Reads of a stream (`read_stream`).
    pub stream_reads: AtomicU64,
    /// The streams of those reads, in order.
    pub streams_read: Mutex<Vec<String>>,
    /// Events read from streams.
    pub stream_events_read: AtomicU64,
    /// Reads of the whole log (`read_all`).
    pub log_reads: AtomicU64,
    /// Set: the next append waits for a permit of [`ProbedLog::gate`].
    pub hold_next: AtomicBool,
    /// Set: the next append to a stream starting with it waits for a permit of
    /// [`ProbedLog::gate`] (once: it is taken by that append).
    pub hold_stream: Mutex<Option<String>>,
    /// Lets a held append through.
    pub gate: Semaphore,
}

impl ProbedLog {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn EventLog>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            appends: AtomicU64::new(0),
            stream_reads: AtomicU64::new(0),
            streams_read: Mutex::default(),
            stream_events_read: AtomicU64::new(0),
            log_reads: AtomicU64::new(0),
            hold_next: AtomicBool::new(false),
            hold_stream: Mutex::default(),
            gate: Semaphore::new(0),
        })
    }
}

#[async_trait]
impl EventLog for ProbedLog {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let held_stream = {
            let mut prefix = self.hold_stream.lock().expect("held stream");
            let matches = prefix.as_deref().is_some_and(|p| stream.starts_with(p));
            if matches {
                *prefix = None;
            }
            matches
        };
        if self.hold_next.swap(false, Ordering::SeqCst) || held_stream {
            self.gate.acquire().await.expect("gate").forget();
        }
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.streams_read
            .lock()
            .expect("streams read")
            .push(stream.to_owned());
        let events = self.inner.read_stream(stream, from, limit).await?;
        self.stream_events_read
            .fetch_add(events.len() as u64, Ordering::SeqCst);
        Ok(events)
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.log_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_all(after, limit).await
    }

    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError> {
        self.inner.stream_last_position(stream).await
    }

    async fn head(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.head().await
    }

    fn watch(&self) -> LogWatch {
        self.inner.watch()
    }
}
