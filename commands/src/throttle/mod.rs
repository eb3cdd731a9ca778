//! Sign-in throttling, per account and per IP, that slows guessing without letting an
//! attacker lock the real user out for long.
//!
//! Three counters, each over a sliding window:
//! - per (account, IP): a few free failures, then an exponential back-off (1 s, 2 s, 4 s…
//!   capped). This is what stops one machine guessing one password.
//! - per IP: many failures against any accounts block that IP until its window ends
//!   (credential stuffing from one address).
//! - per account: many failures from many IPs lock the account for a short time only, and
//!   never for an IP that has signed in to it successfully before (the owner's devices).
//!
//! An attempt is counted when it starts and forgiven if it succeeds (`counters`), so
//! parallel guesses cannot all slip past the check. The counters live in the database
//! (`store`), shared by every API node, keyed by keyed hashes: neither an address nor an
//! IP is stored in clear. A forgiveness is stored after the attempt is answered; the next
//! attempt on the same counters waits for it (`settling`).

mod counters;
mod settling;
mod store;

use crate::clock::Clock;
use crate::error::CommandError;
use counters::Scope;
use hmac::{Hmac, Mac};
use settling::Settling;
use sha2::Sha256;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use store::Key;
use tracing::Instrument;

/// Thresholds.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// Failures from one IP on one account before back-off starts.
    pub free_attempts_per_pair: u32,
    /// The longest back-off for one IP on one account.
    pub max_pair_lockout: Duration,
    /// Failures from one IP, on any accounts, before it is blocked for the window.
    pub max_failures_per_ip: u32,
    /// Failures on one account, from any IPs, before a short lock.
    pub max_failures_per_account: u32,
    /// How long that account lock lasts.
    pub account_lockout: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            free_attempts_per_pair: 5,
            max_pair_lockout: Duration::from_secs(15 * 60),
            max_failures_per_ip: 100,
            max_failures_per_account: 20,
            account_lockout: Duration::from_secs(60),
        }
    }
}

impl ThrottlePolicy {
    /// For six-digit codes, far easier to guess than passwords: ten wrong codes on an
    /// account (from unknown IPs) lock it for 15 minutes, so an attacker who has the password
    /// gets about a thousand guesses a day, not tens of thousands.
    pub fn second_factor() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            free_attempts_per_pair: 5,
            max_pair_lockout: Duration::from_secs(15 * 60),
            max_failures_per_ip: 50,
            max_failures_per_account: 10,
            account_lockout: Duration::from_secs(15 * 60),
        }
    }
}

/// Which throttle a counter belongs to (they share the tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    /// Passwords: sign-in, re-authentication, password change, account deletion.
    Password,
    /// Second-factor codes, stricter.
    SecondFactor,
}

impl ThrottleKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::SecondFactor => "second_factor",
        }
    }
}

/// Why a throttled attempt may not run.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// Too many failures: retry after this long.
    #[error("too many attempts; retry after {0:?}")]
    Wait(Duration),
    /// The counters could not be read or written.
    #[error("throttle storage: {0}")]
    Database(#[from] sqlx::Error),
}

/// An attempt that passed the check and was counted as a failure; hand it back to
/// [`Throttle::succeeded`] if it succeeds. Dropping it leaves the failure counted.
#[derive(Debug)]
#[must_use = "a successful attempt must be forgiven with Throttle::succeeded"]
pub struct Attempt {
    keys: Vec<Key>,
    device: Option<(String, String)>,
}

/// A throttle shared by every API node. `account` is any stable key of the account (a
/// keyed hash of the e-mail, or the account id).
pub struct Throttle {
    kind: ThrottleKind,
    policy: ThrottlePolicy,
    db: ::store::Database,
    secret: [u8; 32],
    clock: Arc<dyn Clock>,
    started: AtomicU32,
    settling: Arc<Settling>,
}

/// Sweep expired counters once every this many attempts.
const SWEEP_EVERY: u32 = 512;

impl Throttle {
    /// A throttle of `kind` with `policy`, storing counters in `db` under keys hashed with
    /// `secret`.
    pub fn new(
        kind: ThrottleKind,
        policy: ThrottlePolicy,
        db: ::store::Database,
        secret: [u8; 32],
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            kind,
            policy,
            db,
            secret,
            clock,
            started: AtomicU32::new(0),
            settling: Arc::default(),
        }
    }

    fn hash(&self, part: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(part.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    fn keys(&self, account: &str, ip: Option<IpAddr>) -> (Vec<Key>, Option<(String, String)>) {
        let account = self.hash(&format!("account:{account}"));
        let mut keys = vec![Key {
            scope: Scope::Account,
            key: format!("{}:{account}", Scope::Account.tag()),
        }];
        let mut device = None;
        if let Some(ip) = ip {
            let ip = self.hash(&format!("ip:{ip}"));
            keys.push(Key {
                scope: Scope::Pair,
                key: format!("{}:{account}:{ip}", Scope::Pair.tag()),
            });
            keys.push(Key {
                scope: Scope::Ip,
                key: format!("{}:{ip}", Scope::Ip.tag()),
            });
            device = Some((account, ip));
        }
        // Every transaction takes the rows in one order: no deadlocks between attempts.
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        (keys, device)
    }

    /// Starts an attempt: refused with [`ThrottleError::Wait`] if it must wait, else
    /// counted as a failure at once.
    #[tracing::instrument(skip_all, fields(throttle = self.kind.as_str()))]
    pub async fn begin(&self, account: &str, ip: Option<IpAddr>) -> Result<Attempt, ThrottleError> {
        let now = self.clock.now();
        if self.started.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            store::sweep(&self.db, now).await?;
        }
        let (keys, device) = self.keys(account, ip);
        self.settling.wait_for(&keys).await;
        let device_ref = device.as_ref().map(|(a, i)| (a.as_str(), i.as_str()));
        store::begin(
            &self.db,
            self.kind.as_str(),
            &self.policy,
            &keys,
            device_ref,
            now,
        )
        .await?
        .map_err(ThrottleError::Wait)?;
        Ok(Attempt { keys, device })
    }

    /// The attempt succeeded: the pair's failures are forgiven, the attempt's count is
    /// taken back elsewhere, and the IP becomes a known device of the account. Stored in
    /// the background (the next attempt on these counters waits for it); if storing fails,
    /// the attempt stays counted, and that is logged.
    pub fn succeeded(&self, attempt: Attempt) {
        self.settle(attempt, store::Outcome::Succeeded);
    }

    /// The attempt was never judged (another check refused it first, or it failed for a
    /// reason that says nothing about the secret): its count is taken back, in the
    /// background as for [`Throttle::succeeded`].
    pub fn cancelled(&self, attempt: Attempt) {
        self.settle(attempt, store::Outcome::Cancelled);
    }

    fn settle(&self, attempt: Attempt, outcome: store::Outcome) {
        let held = self.settling.hold(&attempt.keys);
        let (db, kind, policy, now) = (
            self.db.clone(),
            self.kind.as_str(),
            self.policy,
            self.clock.now(),
        );
        let span = tracing::info_span!("throttle_settle", throttle = kind, ?outcome);
        tokio::spawn(
            async move {
                let device = attempt
                    .device
                    .as_ref()
                    .map(|(a, i)| (a.as_str(), i.as_str()));
                let stored =
                    store::settle(&db, kind, &policy, &attempt.keys, device, outcome, now).await;
                if let Err(error) = stored {
                    tracing::warn!(%error, "settling an attempt failed: it stays counted");
                }
                drop(held);
            }
            .instrument(span),
        );
    }
}

/// The secret a throttle guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// A password: a wrong one is [`CommandError::InvalidCredentials`] or
    /// [`CommandError::WrongPassword`].
    Password,
    /// A second-factor code: a wrong one is [`CommandError::InvalidSecondFactor`].
    Code,
}

impl Secret {
    fn failed_by(self, error: &CommandError) -> bool {
        match self {
            Self::Password => matches!(
                error,
                CommandError::InvalidCredentials | CommandError::WrongPassword
            ),
            Self::Code => matches!(error, CommandError::InvalidSecondFactor),
        }
    }
}

/// Runs `command` (which checks the secrets) as one attempt of each throttle: refused
/// before it runs if any throttle makes it wait; afterwards each attempt is forgiven on
/// success, stays counted if its own secret was wrong, and is taken back otherwise.
pub async fn guarded<T>(
    throttles: &[(&Throttle, Secret)],
    account: &str,
    ip: Option<IpAddr>,
    command: impl Future<Output = Result<T, CommandError>>,
) -> Result<Result<T, CommandError>, ThrottleError> {
    let mut attempts = Vec::with_capacity(throttles.len());
    for (throttle, secret) in throttles {
        match throttle.begin(account, ip).await {
            Ok(attempt) => attempts.push((*throttle, *secret, attempt)),
            Err(refused) => {
                for (throttle, _, attempt) in attempts {
                    throttle.cancelled(attempt);
                }
                return Err(refused);
            }
        }
    }
    let result = command.await;
    for (throttle, secret, attempt) in attempts {
        match &result {
            Ok(_) => throttle.succeeded(attempt),
            // A wrong secret: the failure counted at the start stands.
            Err(error) if secret.failed_by(error) => drop(attempt),
            Err(_) => throttle.cancelled(attempt),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests;
