//! Errors of the event log.

use crate::envelope::ExpectedRevision;

/// Why an event-log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's revision is not the one expected; reload and decide again.
    #[error("stream {stream}: expected {expected:?}, but its revision is {actual:?}")]
    WrongExpectedRevision {
        /// The stream.
        stream: String,
        /// What the appender expected.
        expected: ExpectedRevision,
        /// The stream's last revision (`None`: the stream does not exist).
        actual: Option<u64>,
    },
    /// Some of the event ids exist already, but not as this exact append.
    #[error("stream {stream}: some of these event ids were already appended elsewhere")]
    EventIdReused {
        /// The stream.
        stream: String,
    },
    /// An append or read that can never succeed.
    #[error("invalid request to the event log: {0}")]
    Invalid(String),
    /// A stored event that cannot be decoded.
    #[error("corrupt event in the log: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The event store server (KurrentDB) failed or could not be reached.
    #[error("event store error: {0}")]
    EventStore(String),
}

impl StoreError {
    /// Whether reloading and deciding again may succeed.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::WrongExpectedRevision { .. })
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Corrupt(e.to_string())
    }
}
