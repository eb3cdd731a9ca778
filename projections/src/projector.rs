//! What a follower of the log implements: a [`Projector`] folds events into SQL tables it
//! owns, a [`Reactor`] acts on them; and the [`ProjectionError`] either reports. The
//! runner that drives them is [`crate::runner`]; it and the rebuild decode what they hand
//! them with `decode_events`.

use crate::Follower;
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::AnyConnection;
use store::{DecodedEvent, EventDecoder, GlobalPosition, RecordedEvent, StoreError};

/// Folds events into the tables it owns.
#[async_trait]
pub trait Projector: Send + Sync {
    /// Its checkpoint's name, also the name `accounts rebuild` takes.
    fn name(&self) -> Follower;
    /// Bumped whenever the tables or the folding change; a new version rebuilds at start.
    fn version(&self) -> i32;
    /// The tables it owns.
    fn tables(&self) -> &'static [Table];
    /// The categories of the streams whose events it reads; it is handed no other.
    fn categories(&self) -> &'static [StreamCategory];
    /// Whether the rows one stream's events write never depend on another stream's
    /// events, so that a rebuild may apply different streams' events in concurrent
    /// transactions (each stream's in order). False unless a projector says so.
    fn streams_independent(&self) -> bool {
        false
    }
    /// Whether `event` may change its tables. The runner hands it only the events of a
    /// batch that may, and a batch with none costs no transaction: its checkpoint moves on
    /// as past other streams' events. True unless a projector says otherwise (one that
    /// reads the account stream for a few of its events: [`account_events_only`]).
    fn concerns(&self, event: &DecodedEvent) -> bool {
        let _ = event;
        true
    }
    /// Applies one event inside the batch's transaction. Must ignore events it does not
    /// care about, including erased and unknown ones.
    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        event: &DecodedEvent,
    ) -> Result<(), ProjectionError>;

    /// Applies a batch of events, in log order, inside one transaction. By default one
    /// by one; a projector that sees many events (the credit ledger) folds the batch in
    /// memory and writes it in a few set-based statements instead, so a batch costs a
    /// few round trips rather than several per event.
    async fn apply_batch(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        events: &[DecodedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(conn, tables, event).await?;
        }
        Ok(())
    }
}

/// [`Projector::concerns`] of a projector that reads the account stream for a few of its
/// events only: the account events `wanted` accepts, and every readable event of its other
/// streams (erased and unknown events change nobody's tables).
pub fn account_events_only(event: &DecodedEvent, wanted: impl Fn(&AccountEvent) -> bool) -> bool {
    match event.event() {
        Some(DomainEvent::Account(account)) => wanted(account),
        Some(_) => true,
        None => false,
    }
}

/// Reacts to events with side effects (commands, messages) instead of SQL rows: a process
/// manager. Delivery is at least once, so reactions must be idempotent.
#[async_trait]
pub trait Reactor: Send + Sync {
    /// Its checkpoint's name.
    fn name(&self) -> Follower;
    /// The categories of the streams whose events it reacts to; it is handed no other.
    fn categories(&self) -> &'static [StreamCategory];
    /// Handles one event; returns whether it did anything (its checkpoint is then saved at
    /// once, so a restart does not redo it).
    async fn react(
        &self,
        event: &DecodedEvent,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>>;
}

/// Why a projection operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read-model database failed.
    #[error("read model database: {0}")]
    Database(#[from] sqlx::Error),
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event could not be decoded.
    #[error("decoding an event: {0}")]
    Decode(String),
    /// A personal value could not be sealed or opened.
    #[error("sealing: {0}")]
    Crypto(#[from] vault::CryptoError),
    /// A reactor failed.
    #[error("reaction failed: {0}")]
    Reaction(String),
    /// No projector has this name.
    #[error("no projection is called {0:?}")]
    UnknownProjection(String),
    /// The projection did not reach the position in time.
    #[error("projection {name} has not reached position {position} yet")]
    Lagging {
        /// The projection.
        name: Follower,
        /// The position waited for.
        position: GlobalPosition,
    },
}

/// Decodes `batch` with `decoder`.
pub(crate) async fn decode_events(
    decoder: &dyn EventDecoder,
    batch: Vec<RecordedEvent>,
) -> Result<Vec<DecodedEvent>, ProjectionError> {
    let mut decoded = Vec::with_capacity(batch.len());
    for event in batch {
        decoded.push(
            decoder
                .decode_event(event)
                .await
                .map_err(|e| ProjectionError::Decode(e.to_string()))?,
        );
    }
    Ok(decoded)
}
