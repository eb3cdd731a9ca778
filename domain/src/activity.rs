//! Session activity: last-active times, counted in memory by the API and appended once per
//! account per flush interval rather than once per request (see the README's "Activity").

use crate::{SessionId, Timestamp};
use serde::{Deserialize, Serialize};

/// The last time one session was seen within a flush interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSeen {
    /// The session.
    pub session_id: SessionId,
    /// The latest request it made in the interval.
    pub last_active_at: Timestamp,
}

/// Stored in the `activity-<account id>` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ActivityEvent {
    /// Sessions of one account were active during a flush interval.
    SessionsActive {
        /// One entry per session seen.
        sessions: Vec<SessionSeen>,
    },
}

impl ActivityEvent {
    /// The event's name as stored in the log.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::SessionsActive { .. } => "SessionsActive",
        }
    }
}
