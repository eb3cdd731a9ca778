//! Sessions: the signed-in devices of an account.
//!
//! A session lives inside its account's stream rather than a stream of its own. That keeps
//! two rules atomic that would otherwise race: a password change that signs out the other
//! sessions revokes them in the same append, and a sign-in whose password was checked
//! against a hash that changed meanwhile fails on the expected revision and is re-decided.

use crate::{SessionId, Timestamp};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Why a session ended before its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    /// The session signed itself out.
    Logout,
    /// The account revoked it from its session list.
    Revoked,
    /// The account revoked every session but the one it used.
    SignedOutOthers,
    /// The password changed with "sign out other sessions".
    PasswordChanged,
    /// The account was deleted.
    AccountDeleted,
    /// A sign-in found [`MAX_LIVE_SESSIONS`] live sessions: the oldest made room for it.
    Superseded,
}

/// The live sessions an account holds at most: a sign-in beyond them ends the oldest. Keeps
/// every decision that ends them all (a deletion, a password change signing the others out)
/// within one append, however often a script signs in without signing out.
pub const MAX_LIVE_SESSIONS: usize = 1_000;

/// Where and on what a session was started; personal data, encrypted in the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionOrigin {
    /// A readable device, e.g. "Firefox 128 on Linux".
    pub device: String,
    /// The client IP address, as seen by the service or the trusted proxy.
    pub ip: Option<String>,
    /// The raw User-Agent header.
    pub user_agent: Option<String>,
    /// A coarse location from a trusted proxy header, e.g. "Paris, FR".
    pub location: Option<String>,
}

impl SessionOrigin {
    /// What makes a sign-in's device known to an account: its device class (the device
    /// without version numbers, e.g. "Firefox on Linux", so an update is not news) and where
    /// it connects from: the IP network (/24 for IPv4, /48 for IPv6), else the location.
    /// The same browser elsewhere is a new device; the same one a few addresses away on its
    /// network is not.
    pub fn device_key(&self) -> String {
        let class: Vec<&str> = self
            .device
            .split_whitespace()
            .filter(|word| !word.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        let place = match self.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok()) {
            Some(ip) => network(ip),
            None => self
                .location
                .as_deref()
                .map_or_else(String::new, |location| format!("in {location}")),
        };
        format!("{} | {place}", class.join(" "))
    }
}

/// The network of `ip`: its /24 (IPv4, also when mapped into IPv6) or its /48 (IPv6).
fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let [a, b, c, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}::/48")
        }
    }
}

/// A session the account still holds, as the aggregate needs it for decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    /// SHA-256 of the bearer token.
    pub token_hash: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Absolute expiry: the session is dead after this whatever its activity.
    pub expires_at: Timestamp,
    /// When it last proved the password (and second factor): sign-in or re-authentication.
    pub authenticated_at: Timestamp,
}

impl ActiveSession {
    /// Whether the absolute expiry has passed at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at
    }
}

/// Whether a session id was ever issued by this account, and whether it still lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Never issued by this account.
    Unknown,
    /// Issued and not revoked.
    Active,
    /// Issued and revoked.
    Ended,
}

/// The session id the account is acting through, if the caller is a session.
pub type CallerSession = Option<SessionId>;
