//! The KurrentDB event log: streams and `$all` of a KurrentDB (formerly EventStoreDB) server
//! or cluster, reached with the `kurrentdb` gRPC client.
//!
//! How the [`EventLog`] contract maps onto KurrentDB:
//!
//! - **Revisions.** KurrentDB numbers a stream's events from 0 like we do, so
//!   [`ExpectedRevision`] maps one to one: `NoStream` → `StreamState::NoStream`, `Exact(n)` →
//!   `StreamState::StreamRevision(n)`, `Any` → `StreamState::Any`. A wrong-expected-version
//!   answer becomes [`StoreError::WrongExpectedRevision`] with the stream's actual revision.
//! - **Global positions.** An event's [`GlobalPosition`] is its `$all` commit position. Every
//!   append writes one record per event and commits each at its own log position (the commit
//!   and prepare positions of an event written by a normal append are equal), so positions
//!   are unique and grow in `$all` order, but they are byte offsets: far from dense. Where a
//!   server leaves the commit position out (stream reads on older servers answer `u64::MAX`),
//!   the prepare position stands in for it.
//! - **Retries.** Our event id is sent as KurrentDB's event id. KurrentDB itself answers an
//!   identical append (same ids, same expectation) with success and writes nothing, but its
//!   answer does not say whether it wrote, and its check for `Any` is best-effort. So before
//!   writing, [`KurrentLog`] looks where the events would go (the revision after the
//!   expectation, or the stream's tail for `Any`): if they are already there it answers
//!   `already_appended: true` with their original positions, as the SQL logs do. An event id
//!   reused in *another* stream is not detected: KurrentDB keeps no index by event id, and the
//!   service never reuses one (ids are fresh UUIDv7s).
//! - **Reading the whole log.** [`EventLog::read_all`] reads `$all` forwards from a position
//!   with a server-side filter that leaves out system streams (`$…`); system events that slip
//!   through (links, `$metadata`) are skipped too. `$all` is gapless: a reader that has seen
//!   position P never later finds an event below it.
//! - **Waking.** A catch-up subscription to `$all` (same filter) bumps the log's
//!   `AppendSignal` on every new event, so other processes' appends wake projectors and
//!   workers at once; it resubscribes after a dropped connection, waking readers so they look
//!   for anything missed, and a 5 s fallback covers the time it is down.
//! - **Envelope.** Our event type is KurrentDB's event type; the data is the JSON payload
//!   (content type `application/json`); the custom metadata is a JSON object holding
//!   `schema_version`, our [`Metadata`](crate::envelope::Metadata) fields, and
//!   `$correlationId`/`$causationId` (the names KurrentDB's own `$by_correlation_id`
//!   projection reads). `recorded_at` is the server's
//!   `created` timestamp (100 ns ticks since the Unix epoch, kept to the microsecond).
//! - **A missing stream** reads as empty.
//!
//! The mapping lives in plain functions of `kurrentdb/mapping.rs` (`stream_state`,
//! `conflict`, `position_of`, `StoredMetadata`, `decode`), tested without a server;
//! `store/tests/contract.rs` runs the backend contract against a real server when
//! `KURRENTDB_URL` is set.

use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::log::{AppendSignal, EventLog, LogWatch, check_append};
use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, ReadAllOptions, ReadStreamOptions,
    StreamPosition, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use std::time::Duration;
use tokio::task::JoinHandle;

mod mapping;

use mapping::{
    RawEvent, all_position, backend, classify, decode, event_data, is_system, match_retry,
    position_of, stream_state, written_position,
};

/// URL schemes the `kurrentdb` client accepts (`+discover`: DNS discovery of a cluster).
pub const SCHEMES: &[&str] = &[
    "kurrentdb",
    "kurrentdb+discover",
    "kurrent",
    "kurrent+discover",
    "kdb",
    "kdb+discover",
    "esdb",
    "esdb+discover",
];

/// Whether `url` names a KurrentDB server or cluster (by its scheme).
pub fn is_kurrentdb_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// How long opening the log waits for the server to answer a first read.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The wake-up fallback of [`LogWatch`]: the subscription wakes readers at once; this only
/// covers the time it is being re-established.
const WATCH_FALLBACK: Duration = Duration::from_secs(5);

/// Pause before resubscribing to `$all` after the subscription dropped.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// The longest pause between attempts to resubscribe while the server stays unreachable.
const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(30);

/// How far back from the end of `$all` [`EventLog::head`] looks for an event of the
/// service's (the server-side filter normally leaves none of KurrentDB's own in the way).
const HEAD_SCAN: usize = 1_000;

/// The event log in a KurrentDB server or cluster.
pub struct KurrentLog {
    client: Client,
    signal: AppendSignal,
    follower: JoinHandle<()>,
}

impl Drop for KurrentLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl KurrentLog {
    /// Connects to `url` (`kurrentdb://host:2113?tls=false`, `kurrentdb+discover://…`,
    /// `esdb://…`; credentials as `user:password@`), checks that the server answers a read
    /// of `$all`, and starts following `$all` for [`EventLog::watch`]. Errors never repeat
    /// the URL, which may hold a password.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let settings: ClientSettings =
            url.parse()
                .map_err(|e: kurrentdb::ClientSettingsParseError| {
                    StoreError::Invalid(format!("the KurrentDB connection string: {}", e.message()))
                })?;
        let client = Client::new(settings)
            .map_err(|e| StoreError::EventStore(format!("creating the KurrentDB client: {e}")))?;
        let signal = AppendSignal::new();
        let follower = tokio::spawn(follow(client.clone(), signal.clone()));
        let log = Self {
            client,
            signal,
            follower,
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, log.head()).await {
            Ok(Ok(head)) => {
                tracing::info!(%head, "KurrentDB event log opened");
                Ok(log)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(StoreError::EventStore(format!(
                "KurrentDB did not answer within {}s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Up to `count` events of `stream` from revision `from` on (forwards), or the last
    /// `count` events in stream order (`from` = `None`).
    async fn read_raw(
        &self,
        stream: &str,
        from: Option<u64>,
        count: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let options = match from {
            Some(from) => ReadStreamOptions::default()
                .forwards()
                .position(StreamPosition::Position(from)),
            None => ReadStreamOptions::default()
                .backwards()
                .position(StreamPosition::End),
        }
        .max_count(count);
        let mut read = match self.client.read_stream(stream, &options).await {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(backend(e)),
        };
        let mut events = Vec::new();
        loop {
            match read.next().await {
                Ok(Some(resolved)) => {
                    if let Some(event) = resolved.event.as_ref() {
                        events.push(decode(&RawEvent::of(event))?);
                    }
                }
                Ok(None) | Err(kurrentdb::Error::ResourceNotFound) => break,
                Err(e) => return Err(backend(e)),
            }
            if events.len() >= count {
                break;
            }
        }
        if from.is_none() {
            events.reverse();
        }
        Ok(events)
    }

    /// If `events` are already in `stream` where this append would put them (a retry),
    /// what the original append committed.
    async fn find_retry(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        let found = match expected {
            ExpectedRevision::NoStream => self.read_raw(stream, Some(0), events.len()).await?,
            ExpectedRevision::Exact(n) => self.read_raw(stream, Some(n + 1), events.len()).await?,
            ExpectedRevision::Any => self.read_raw(stream, None, events.len()).await?,
        };
        match match_retry(stream, events, &found)? {
            None => Ok(None),
            Some(positions) => {
                let current = self.read_raw(stream, None, 1).await?;
                let next_expected = current.last().map_or(ExpectedRevision::NoStream, |e| {
                    ExpectedRevision::Exact(e.revision)
                });
                Ok(Some(AppendResult {
                    positions,
                    next_expected,
                    already_appended: true,
                }))
            }
        }
    }
}

#[async_trait]
impl EventLog for KurrentLog {
    #[tracing::instrument(skip_all, fields(stream = %stream, events = events.len(), ?expected))]
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(&events)?;
        if let Some(retry) = self.find_retry(stream, expected, &events).await? {
            return Ok(retry);
        }
        let data = events
            .iter()
            .map(event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let options = AppendToStreamOptions::default().stream_state(stream_state(expected));
        let written = self
            .client
            .append_to_stream(stream, &options, data)
            .await
            .map_err(|e| classify(stream, expected, e))?;
        let last = written.next_expected_version;
        let positions = match written_position(written.position) {
            Some(position) if events.len() == 1 => vec![position],
            _ => {
                // One position per event: read the events back where they were written.
                let first = (last + 1).checked_sub(events.len() as u64).ok_or_else(|| {
                    StoreError::EventStore(format!(
                        "KurrentDB answered revision {last} for {} events",
                        events.len()
                    ))
                })?;
                let back = self.read_raw(stream, Some(first), events.len()).await?;
                match_retry(stream, &events, &back)?.ok_or_else(|| {
                    StoreError::EventStore(
                        "the appended events are not where KurrentDB said it wrote them".into(),
                    )
                })?
            }
        };
        self.signal.notify();
        Ok(AppendResult {
            positions,
            next_expected: ExpectedRevision::Exact(last),
            // No position in a successful answer: KurrentDB recognised a retry itself.
            already_appended: written_position(written.position).is_none(),
        })
    }

    #[tracing::instrument(skip_all, fields(stream = %stream, from = from, limit = limit))]
    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_raw(stream, Some(from), limit).await
    }

    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError> {
        let last = self.read_raw(stream, None, 1).await?;
        Ok(last.last().map(|e| e.position))
    }

    #[tracing::instrument(skip_all, fields(after = after.0, limit = limit))]
    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut kept = Vec::new();
        let mut cursor = after;
        // Until `limit` events are kept or the end of `$all` is reached: an empty answer
        // must mean "nothing after `after`", or a reader would stop short of later events.
        loop {
            if kept.len() >= limit {
                break;
            }
            // One more than asked: a read from a position may start with the event at it.
            let asked = limit - kept.len() + 1;
            let options = ReadAllOptions::default()
                .forwards()
                .position(all_position(cursor))
                .filter(service_filter())
                .max_count(asked);
            let mut read = self.client.read_all(&options).await.map_err(backend)?;
            let mut returned = 0;
            while let Some(resolved) = read.next().await.map_err(backend)? {
                returned += 1;
                let Some(event) = resolved.event.as_ref() else {
                    continue;
                };
                let raw = RawEvent::of(event);
                let position = position_of(raw.position);
                if position <= cursor {
                    continue;
                }
                cursor = position;
                if is_system(raw.stream, raw.event_type) {
                    continue;
                }
                kept.push(decode(&raw)?);
                if kept.len() >= limit {
                    break;
                }
            }
            if returned < asked {
                break;
            }
        }
        Ok(kept)
    }

    #[tracing::instrument(skip_all)]
    async fn head(&self) -> Result<GlobalPosition, StoreError> {
        let options = ReadAllOptions::default()
            .position(StreamPosition::End)
            .backwards()
            .filter(service_filter())
            .max_count(HEAD_SCAN);
        let mut read = self.client.read_all(&options).await.map_err(backend)?;
        while let Some(resolved) = read.next().await.map_err(backend)? {
            if let Some(event) = resolved.event.as_ref() {
                let raw = RawEvent::of(event);
                if !is_system(raw.stream, raw.event_type) {
                    return Ok(position_of(raw.position));
                }
            }
        }
        Ok(GlobalPosition::START)
    }

    fn watch(&self) -> LogWatch {
        self.signal.watch(WATCH_FALLBACK)
    }
}

/// Follows `$all` (the service's streams) from its end and bumps `signal` for every new
/// event, resubscribing whenever the subscription drops (waiting longer each time it fails
/// again, up to [`MAX_RESUBSCRIBE_DELAY`]).
async fn follow(client: Client, signal: AppendSignal) {
    let mut delay = RESUBSCRIBE_DELAY;
    loop {
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(service_filter());
        let mut subscription = client.subscribe_to_all(&options).await;
        loop {
            match subscription.next_subscription_event().await {
                Ok(SubscriptionEvent::EventAppeared(_)) => signal.notify(),
                // (Re)subscribed: events may have been appended while it was down.
                Ok(SubscriptionEvent::Confirmed(_)) => {
                    delay = RESUBSCRIBE_DELAY;
                    signal.notify();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        retry_in_s = delay.as_secs(),
                        "the subscription to $all dropped; resubscribing"
                    );
                    break;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
    }
}

/// The server-side filter for reading and following the service's streams: every stream
/// whose name does not start with `$`.
fn service_filter() -> SubscriptionFilter {
    SubscriptionFilter::on_stream_name().exclude_system_events()
}
