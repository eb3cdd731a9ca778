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
//! Counters live in memory, per process; see the README for what that means when several
//! API nodes run.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Ip(IpAddr),
    Account(String),
}

#[derive(Debug)]
struct Counter {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    counters: HashMap<Key, Counter>,
    /// (account, IP) pairs that signed in successfully, and when.
    known: HashMap<(String, IpAddr), Instant>,
}

/// The throttle. `account` is any stable key of the account (a keyed hash of the e-mail,
/// or the account id), never the plain address.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    state: Mutex<State>,
}

/// How long known devices stay exempt from account locks.
const KNOWN_FOR: Duration = Duration::from_secs(90 * 24 * 3600);
/// Sweep expired counters when the map grows past this.
const SWEEP_ABOVE: usize = 10_000;

impl LoginThrottle {
    /// A throttle with `policy`.
    pub fn new(policy: ThrottlePolicy) -> Self {
        Self {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn keys(account: &str, ip: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::Account(account.to_owned())];
        if let Some(ip) = ip {
            keys.push(Key::Pair(account.to_owned(), ip));
            keys.push(Key::Ip(ip));
        }
        keys
    }

    /// `Err(retry_after)` if this attempt must be refused without checking the password.
    pub fn check(&self, account: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let known = ip.is_some_and(|ip| {
            state
                .known
                .get(&(account.to_owned(), ip))
                .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR)
        });
        let mut wait = Duration::ZERO;
        for key in Self::keys(account, ip) {
            if known && matches!(key, Key::Account(_)) {
                continue;
            }
            if let Some(until) = state.counters.get(&key).and_then(|c| c.blocked_until) {
                wait = wait.max(until.saturating_duration_since(now));
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Records a failed attempt.
    pub fn failed(&self, account: &str, ip: Option<IpAddr>, now: Instant) {
        let policy = self.policy;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.counters.len() > SWEEP_ABOVE {
            state.counters.retain(|_, c| {
                now.duration_since(c.window_start) < policy.window
                    || c.blocked_until.is_some_and(|until| until > now)
            });
        }
        for key in Self::keys(account, ip) {
            let counter = state.counters.entry(key.clone()).or_insert(Counter {
                failures: 0,
                window_start: now,
                blocked_until: None,
            });
            if now.duration_since(counter.window_start) >= policy.window {
                counter.failures = 0;
                counter.window_start = now;
            }
            counter.failures += 1;
            match key {
                Key::Pair(..) if counter.failures > policy.free_attempts_per_pair => {
                    let doublings = (counter.failures - policy.free_attempts_per_pair - 1).min(20);
                    let backoff =
                        Duration::from_secs(1u64 << doublings).min(policy.max_pair_lockout);
                    counter.blocked_until = Some(now + backoff);
                }
                Key::Ip(_) if counter.failures >= policy.max_failures_per_ip => {
                    counter.blocked_until = Some(counter.window_start + policy.window);
                }
                Key::Account(_) if counter.failures >= policy.max_failures_per_account => {
                    counter.blocked_until = Some(now + policy.account_lockout);
                    // The next lock needs a full new set of failures.
                    counter.failures = 0;
                    counter.window_start = now;
                }
                _ => {}
            }
        }
    }

    /// Records a successful sign-in: the pair's failures are forgiven and the IP becomes
    /// a known device of the account.
    pub fn succeeded(&self, account: &str, ip: Option<IpAddr>, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = ip {
            state.counters.remove(&Key::Pair(account.to_owned(), ip));
            if state.known.len() > SWEEP_ABOVE {
                state
                    .known
                    .retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            }
            state.known.insert((account.to_owned(), ip), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn one_ip_guessing_one_account_backs_off_exponentially() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(throttle.check("acct", ip(1), t0).is_ok());
            throttle.failed("acct", ip(1), t0);
        }
        assert!(
            throttle.check("acct", ip(1), t0).is_ok(),
            "five free attempts"
        );
        throttle.failed("acct", ip(1), t0);
        assert_eq!(
            throttle.check("acct", ip(1), t0),
            Err(Duration::from_secs(1))
        );
        throttle.failed("acct", ip(1), t0);
        assert_eq!(
            throttle.check("acct", ip(1), t0),
            Err(Duration::from_secs(2))
        );
        throttle.failed("acct", ip(1), t0);
        assert_eq!(
            throttle.check("acct", ip(1), t0),
            Err(Duration::from_secs(4))
        );
        assert!(
            throttle
                .check("acct", ip(1), t0 + Duration::from_secs(4))
                .is_ok()
        );
        // Another IP is not affected.
        assert!(throttle.check("acct", ip(2), t0).is_ok());
    }

    #[test]
    fn the_pair_back_off_is_capped() {
        let policy = ThrottlePolicy {
            max_pair_lockout: Duration::from_secs(60),
            ..Default::default()
        };
        let throttle = LoginThrottle::new(policy);
        let t0 = Instant::now();
        for _ in 0..30 {
            throttle.failed("acct", ip(1), t0);
        }
        assert_eq!(
            throttle.check("acct", ip(1), t0),
            Err(Duration::from_secs(60))
        );
    }

    #[test]
    fn many_ips_lock_the_account_briefly_but_never_its_known_devices() {
        let policy = ThrottlePolicy {
            max_failures_per_account: 10,
            ..Default::default()
        };
        let throttle = LoginThrottle::new(policy);
        let t0 = Instant::now();
        throttle.succeeded("acct", ip(200), t0);
        for n in 0..10 {
            throttle.failed("acct", ip(n), t0);
        }
        let wait = throttle.check("acct", ip(50), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(60), "short lock for unknown IPs");
        assert!(
            throttle.check("acct", ip(200), t0).is_ok(),
            "the owner's device still signs in"
        );
        assert!(
            throttle
                .check("acct", ip(50), t0 + Duration::from_secs(60))
                .is_ok(),
            "and it ends"
        );
        assert!(
            throttle.check("other", ip(50), t0).is_ok(),
            "other accounts unaffected"
        );
    }

    #[test]
    fn one_ip_spraying_many_accounts_is_blocked_for_the_window() {
        let policy = ThrottlePolicy {
            max_failures_per_ip: 20,
            ..Default::default()
        };
        let throttle = LoginThrottle::new(policy);
        let t0 = Instant::now();
        for n in 0..20 {
            throttle.failed(&format!("acct-{n}"), ip(9), t0);
        }
        assert_eq!(
            throttle.check("fresh", ip(9), t0),
            Err(Duration::from_secs(900))
        );
        assert!(throttle.check("fresh", ip(8), t0).is_ok());
        assert!(
            throttle
                .check("fresh", ip(9), t0 + Duration::from_secs(900))
                .is_ok()
        );
    }

    #[test]
    fn success_forgives_the_pair() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failed("acct", ip(1), t0);
        }
        throttle.succeeded("acct", ip(1), t0);
        throttle.failed("acct", ip(1), t0);
        assert!(throttle.check("acct", ip(1), t0).is_ok());
    }

    #[test]
    fn failures_age_out_of_the_window() {
        let throttle = LoginThrottle::new(ThrottlePolicy::default());
        let t0 = Instant::now();
        for _ in 0..5 {
            throttle.failed("acct", ip(1), t0);
        }
        let later = t0 + Duration::from_secs(16 * 60);
        throttle.failed("acct", ip(1), later);
        assert!(throttle.check("acct", ip(1), later).is_ok());
    }
}
