//! The [`EventLog`] trait every backend implements, [`LogWatch`] for waiting on it, and
//! [`Backlog`], what a follower of the log has still to read.

use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, NewEvent, RecordedEvent};
use crate::error::StoreError;
use async_trait::async_trait;
use domain::Timestamp;
use std::time::Duration;
use tokio::sync::watch;

/// A revision, a position or a count as SQL's signed 64-bit integer: one beyond its range
/// (a client's cursor, a limit meaning "all") is the largest, not a negative wrapped value.
pub fn sql_int<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

/// What lies beyond a follower's checkpoint: how far behind the log's head it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Committed events after the checkpoint.
    pub events: u64,
    /// When the oldest of them was recorded (none when there is none).
    pub oldest: Option<Timestamp>,
}

/// Where one event sits, enough to read it again from any log: its position and its
/// place in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventAt {
    /// Its position in the whole log.
    pub position: GlobalPosition,
    /// Its stream.
    pub stream: String,
    /// Its revision in the stream.
    pub revision: u64,
}

/// The SQL logs' scalar subquery giving the position of the last event of the stream
/// bound at `param` (`$3`), NULL while it has none; answered from the last entry of the
/// stream's unique (stream, revision) index. A read-model query may embed it when the log
/// shares its database ([`EventLog::shares_read_model_database`]).
pub fn stream_end_subquery(param: &str) -> String {
    format!(
        "(SELECT global_position FROM events WHERE stream_id = {param} \
         ORDER BY stream_revision DESC LIMIT 1)"
    )
}

/// The SQL logs' selection of `count` events by position (`$1` to `$count`), in log order:
/// what follows `FROM events`.
pub(crate) fn events_at(count: usize) -> String {
    format!(
        "WHERE global_position IN ({}) ORDER BY global_position",
        crate::sql::numbered(1, count)
    )
}

/// Which streams' events a reader of the whole log keeps ([`EventLog::read_all_where`]).
pub type StreamFilter<'a> = &'a (dyn Fn(&str) -> bool + Send + Sync);

/// A page of the whole log read for one follower ([`EventLog::read_all_where`]): how many
/// events it held and where it ended, which the follower reads past, and the events it
/// kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilteredPage {
    /// Events in the page, kept or not: fewer than asked means the end of the log, as for
    /// [`EventLog::read_all`].
    pub read: usize,
    /// The position of the page's last event, kept or not (`None`: the page was empty).
    pub last: Option<GlobalPosition>,
    /// The events of the streams the filter accepted, in log order.
    pub events: Vec<RecordedEvent>,
}

impl FilteredPage {
    /// Keeps the events of `page` whose streams `keep` accepts.
    pub fn of(mut page: Vec<RecordedEvent>, keep: StreamFilter<'_>) -> Self {
        let (read, last) = (page.len(), page.last().map(|e| e.position));
        page.retain(|e| keep(&e.stream));
        Self {
            read,
            last,
            events: page,
        }
    }
}

/// An append-only log of events, in streams, with one global order.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends `events` to `stream` if its revision is `expected`, atomically, and returns
    /// the global positions committed. Appending event ids that this stream already holds
    /// (a retry) writes nothing and returns the original positions.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Up to `limit` events of `stream` from revision `from` on, in revision order.
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the whole log after `after`, in global order. A reader that
    /// has seen position P never later finds a committed event at or below P. Fewer than
    /// `limit` events means the page reached the end of the log as this read saw it: a
    /// follower may then wait for its [`LogWatch`] (marked seen before the read) instead of
    /// reading again, and a log that hides committed events (PostgreSQL's visibility rule)
    /// wakes its watches again once they show.
    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// [`Self::read_all`], keeping only the events of the streams `keep` accepts: what the
    /// followers of the log read. The SQL logs share one page among the followers reading
    /// it and copy only the kept events for each (most followers keep few of any page),
    /// and answer from the latest events they read where they can (events never change
    /// once read); [`Self::read_all`] always reads the log as stored.
    async fn read_all_where(
        &self,
        after: GlobalPosition,
        limit: usize,
        keep: StreamFilter<'_>,
    ) -> Result<FilteredPage, StoreError> {
        Ok(FilteredPage::of(self.read_all(after, limit).await?, keep))
    }

    /// [`Self::read_all_where`] keeping every stream: a follower's read of the whole log
    /// (the chainer, the audit index, the notifier).
    async fn read_all_for_follower(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.read_all_where(after, limit, &|_| true).await?.events)
    }

    /// The position of the last event a reader can see (START for an empty log).
    async fn head(&self) -> Result<GlobalPosition, StoreError>;

    /// The position of `stream`'s last committed event (`None` while it has none), even
    /// if readers of the whole log cannot see it yet: what a read of one aggregate's read
    /// model waits for so that it shows everything committed to that aggregate.
    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError>;

    /// The position of the last committed event, even if readers of the whole log cannot
    /// see it yet (on PostgreSQL an older transaction still open hides it from them).
    /// Waiting for a projection to reach this position waits for everything committed.
    async fn committed_head(&self) -> Result<GlobalPosition, StoreError> {
        self.head().await
    }

    /// A handle that wakes when events may have been appended.
    fn watch(&self) -> LogWatch;

    /// Whether the events are stored in the read models' database (the SQL logs), so a
    /// read-model query can learn where a stream ends in its own statement
    /// ([`stream_end_subquery`]) rather than in a round trip to the log.
    fn shares_read_model_database(&self) -> bool {
        false
    }

    /// The committed events after `after` (a follower's checkpoint), counted, and when the
    /// oldest was recorded: how far that follower is behind. Positions are not counts
    /// (PostgreSQL's leave gaps), so this counts events. The default reads them; the SQL
    /// backends count in one query.
    async fn backlog(&self, after: GlobalPosition) -> Result<Backlog, StoreError> {
        const PAGE: usize = 1_000;
        let mut backlog = Backlog::default();
        let mut from = after;
        loop {
            let page = self.read_all(from, PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(backlog);
            };
            from = last.position;
            if backlog.oldest.is_none() {
                backlog.oldest = page.first().map(|e| e.recorded_at);
            }
            backlog.events += page.len() as u64;
            if page.len() < PAGE {
                return Ok(backlog);
            }
        }
    }

    /// The events `at` names (given in log order, as an index answers), in log order; one
    /// the log does not hold is left out. By default one stream read per event; the SQL
    /// logs read them all in one statement.
    async fn read_events(&self, at: &[EventAt]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::with_capacity(at.len());
        for wanted in at {
            let found = self.read_stream(&wanted.stream, wanted.revision, 1).await?;
            events.extend(
                found
                    .into_iter()
                    .filter(|e| e.revision == wanted.revision && e.position == wanted.position),
            );
        }
        Ok(events)
    }

    /// Every event of `stream`, in revision order.
    async fn read_stream_to_end(&self, stream: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_from(stream, 0).await
    }

    /// Every event of `stream` from revision `from` on.
    async fn read_stream_from(
        &self,
        stream: &str,
        from: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        const PAGE: usize = 1_000;
        let mut events = Vec::new();
        loop {
            let page = self
                .read_stream(stream, from + events.len() as u64, PAGE)
                .await?;
            let done = page.len() < PAGE;
            events.extend(page);
            if done {
                return Ok(events);
            }
        }
    }
}

/// Validates an append before any backend touches storage.
pub(crate) fn check_append(events: &[NewEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::Invalid(format!(
            "an append carries at most {MAX_EVENTS_PER_APPEND} events"
        )));
    }
    let mut ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.len() != events.len() {
        return Err(StoreError::Invalid(
            "event ids within an append must be distinct".into(),
        ));
    }
    Ok(())
}

/// The answer to an append some of whose event ids the log holds already, given those
/// events' streams and positions (in revision order) and the stream's current revision: the
/// original result if it is this very append again (a retry), else
/// [`StoreError::EventIdReused`].
pub(crate) fn earlier_append(
    known: Vec<(String, i64)>,
    stream: &str,
    events: usize,
    current: Option<u64>,
) -> Result<AppendResult, StoreError> {
    let same_append = known.len() == events && known.iter().all(|(s, _)| s == stream);
    if !same_append {
        return Err(StoreError::EventIdReused {
            stream: stream.into(),
        });
    }
    Ok(AppendResult {
        positions: known
            .into_iter()
            .map(|(_, p)| GlobalPosition(p as u64))
            .collect(),
        next_expected: current.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact),
        already_appended: true,
    })
}

/// The sending side of a [`LogWatch`]: bumped after every local commit, and by the
/// PostgreSQL listener when another process commits.
#[derive(Debug, Clone)]
pub(crate) struct AppendSignal(watch::Sender<u64>);

impl AppendSignal {
    pub(crate) fn new() -> Self {
        Self(watch::channel(0).0)
    }

    pub(crate) fn notify(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn watch(&self, fallback: Duration) -> LogWatch {
        LogWatch {
            rx: self.0.subscribe(),
            fallback,
        }
    }
}

/// Waits for new events without polling in a loop: it wakes on a notification, or after
/// a long fallback interval in case a notification from another process was missed.
///
/// Use it as: `mark_seen()`, read, and if the read found nothing, `changed().await`; an
/// append that lands between the read and the wait still wakes the waiter.
#[derive(Debug)]
pub struct LogWatch {
    rx: watch::Receiver<u64>,
    fallback: Duration,
}

impl LogWatch {
    /// Forgets notifications received so far; call before reading.
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Returns when an append may have happened since the last [`LogWatch::mark_seen`].
    pub async fn changed(&mut self) {
        tokio::select! {
            changed = self.rx.changed() => {
                if changed.is_err() {
                    // The log was dropped: nothing will ever notify again.
                    tokio::time::sleep(self.fallback).await;
                }
            }
            () = tokio::time::sleep(self.fallback) => {}
        }
    }
}
