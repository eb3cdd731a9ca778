//! The envelope around every event: where it sits in the log, and who caused it.

use domain::{AccountId, SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The position of an event in the whole log. Positions grow in the order readers see
/// events and are unique, but need not be dense (see the PostgreSQL backend).
/// `GlobalPosition::START` is before the first event.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GlobalPosition(pub u64);

impl GlobalPosition {
    /// Before every event.
    pub const START: GlobalPosition = GlobalPosition(0);
}

impl fmt::Debug for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

impl fmt::Display for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What the appender believes about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be at this revision.
    Exact(u64),
}

impl ExpectedRevision {
    /// The revision a stream holding `events_so_far` events has.
    pub fn after(events_so_far: u64) -> Self {
        match events_so_far {
            0 => Self::NoStream,
            n => Self::Exact(n - 1),
        }
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// An unauthenticated caller (registration, sign-in).
    Anonymous,
    /// An account acting through one of its sessions.
    Session {
        /// The account.
        account_id: AccountId,
        /// The session used.
        session_id: SessionId,
    },
    /// An account acting through one of its API or CLI tokens.
    Token {
        /// The account.
        account_id: AccountId,
        /// The token used.
        token_id: Uuid,
    },
    /// The service itself (a worker, the activity flusher, a CLI command).
    System {
        /// Which part.
        component: String,
    },
}

/// Envelope metadata stored with every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Shared by every event one request caused (from `X-Request-Id`, or new).
    pub correlation_id: Uuid,
    /// The event or request that caused this one.
    pub causation_id: Option<Uuid>,
    /// Who.
    pub actor: Actor,
    /// When the command was decided.
    pub occurred_at: Timestamp,
    /// The `Idempotency-Key` of the request, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The account whose data key encrypts the personal fields of this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_subject: Option<Uuid>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique; a retried append with the same ids appends nothing twice.
    pub event_id: Uuid,
    /// The event's name, e.g. `SessionStarted`.
    pub event_type: String,
    /// The schema version of `data`.
    pub schema_version: u32,
    /// The payload (personal fields already encrypted).
    pub data: serde_json::Value,
    /// The envelope.
    pub metadata: Metadata,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Position in the whole log.
    pub position: GlobalPosition,
    /// The stream, e.g. `account-…`.
    pub stream: String,
    /// Position in the stream, from 0.
    pub revision: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The event's name.
    pub event_type: String,
    /// The schema version of `data`.
    pub schema_version: u32,
    /// The payload as stored.
    pub data: serde_json::Value,
    /// The envelope.
    pub metadata: Metadata,
    /// When the log committed it.
    pub recorded_at: Timestamp,
}

/// What an append committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The global positions of the appended events, in order.
    pub positions: Vec<GlobalPosition>,
    /// The stream's revision after the append; pass it as `Exact` to append next.
    pub next_expected: ExpectedRevision,
    /// True when these event ids were already appended and nothing was written.
    pub already_appended: bool,
}

impl AppendResult {
    /// What a SQL log answers for an append it wrote: the events' positions as stored, in
    /// stream order, and the stream's revision after them.
    pub(crate) fn written(positions: impl IntoIterator<Item = i64>, last_revision: u64) -> Self {
        Self {
            positions: positions
                .into_iter()
                .map(|position| GlobalPosition(position as u64))
                .collect(),
            next_expected: ExpectedRevision::Exact(last_revision),
            already_appended: false,
        }
    }

    /// The last committed position (START for an empty append).
    pub fn last_position(&self) -> GlobalPosition {
        self.positions
            .last()
            .copied()
            .unwrap_or(GlobalPosition::START)
    }
}
