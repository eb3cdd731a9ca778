//! The live sessions this process has read, keyed by the hash of their token, so a
//! request with a known session costs no database round trip (see the README's
//! "Security" part and `docs/ARCHITECTURE.md`, "The session cache").
//!
//! [`crate::read_cache`] keeps an entry from outliving the read model showing a change of
//! the account's sessions: a sign-out, a revocation, a password change that signs other
//! sessions out and a deletion are events of the account's stream, and the commands that
//! make them answer once the sessions read model shows them, so the node that made one
//! refuses the session on the very next request; other nodes once they see the read model
//! show it (about a second), at most the TTL (`--session-cache-ttl`, 10 s) after should
//! their follower be stuck.
//!
//! The absolute expiry is checked against the clock on every request. The last-active
//! time of an entry may be older than the read model's (activity is written to the log
//! every few seconds, from every node), which only makes a session look idler than it
//! is: a session the cached row shows idle is read again before it is refused
//! ([`crate::extract::live_session`]).

use crate::read_cache::{Owned, ReadCache};
use domain::{AccountId, StreamCategory};
use projections::sessions::LiveSession;
use projections::{Follower, ProjectionRunner};
use std::sync::Arc;
use std::time::Duration;

/// The default of `--session-cache-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// Live sessions by the hash of their token.
pub type SessionCache = ReadCache<LiveSession>;

impl Owned for LiveSession {
    fn owner(&self) -> AccountId {
        self.account_id
    }
}

/// A cache whose entries live at most `ttl` (zero: no cache), gated on the sessions read
/// model of `projections`; every event of an account's stream forgets its sessions (the
/// activity stream's last-active times do not).
pub fn new(ttl: Duration, projections: Arc<ProjectionRunner>) -> SessionCache {
    ReadCache::new(
        Follower::Sessions,
        &[StreamCategory::Account],
        ttl,
        projections,
    )
}
