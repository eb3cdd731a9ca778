//! Session activity: last-active times, counted in memory by the API and appended once per
//! account per flush interval rather than once per request (see the README's "Activity");
//! and refused sign-ins ([`SignInEvent`]), for the account holder's security log.

use crate::event::Event;
use crate::session::SessionOrigin;
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

/// Stored in the `signins-<account id>` stream, apart from the account's own stream so
/// that recording a refused sign-in never races a command of the account, and apart from
/// the activity stream so that the security log reads it without the activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "signins")]
pub enum SignInEvent {
    /// A sign-in to this account was refused: the password (or the second factor) was
    /// wrong. Recorded for the account holder's security log; sign-ins with an address no
    /// account has leave nothing, since there is no account to record them on.
    #[event(personal(origin))]
    SignInFailed {
        /// What was wrong.
        reason: SignInFailure,
        /// Device, IP, user agent and location of the attempt.
        origin: SessionOrigin,
        /// When.
        at: Timestamp,
    },
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInFailure {
    /// The password did not match.
    Password,
    /// The password matched; the TOTP or recovery code did not.
    SecondFactor,
}
