//! Session activity: last-active times, counted in memory by the API and appended once per
//! account per flush interval rather than once per request (see the README's "Activity").

use crate::event::Event;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "activity")]
pub enum ActivityEvent {
    /// Sessions of one account were active during a flush interval.
    #[event(no_personal_data)]
    SessionsActive {
        /// One entry per session seen.
        sessions: Vec<SessionSeen>,
    },
}
