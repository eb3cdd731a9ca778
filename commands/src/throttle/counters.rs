//! The throttle's rules, pure: given the counters of one attempt's keys, decide whether it
//! may run and how the counters change. Storage ([`super::store`]) only loads and saves.
//!
//! An attempt is counted as a failure **when it starts**, under the same lock that checked
//! it, and forgiven if it succeeds. So a burst of parallel guesses cannot all pass the
//! check before any of them is recorded: the sixth of a burst on one (account, IP) pair is
//! refused however fast the five before it are still running.

use super::ThrottlePolicy;
use domain::Timestamp;
use std::time::Duration;

/// What a counter counts failures of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// One IP on one account: a few free attempts, then an exponential back-off.
    Pair,
    /// One IP on any accounts: blocked for the window after many failures.
    Ip,
    /// One account from any IPs: a short lock after many failures, never applied to the
    /// account's known devices.
    Account,
}

impl Scope {
    /// Prefix of the stored key.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Pair => "p",
            Self::Ip => "i",
            Self::Account => "a",
        }
    }
}

/// One counter's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Failures (and attempts still running) in the current window.
    pub failures: u32,
    /// Start of the current window.
    pub window_start: Timestamp,
    /// Refused until then.
    pub blocked_until: Option<Timestamp>,
}

impl Counter {
    /// A counter with nothing counted.
    pub fn fresh(now: Timestamp) -> Self {
        Self {
            failures: 0,
            window_start: now,
            blocked_until: None,
        }
    }

    /// When it can be forgotten.
    pub fn expires_at(&self, policy: &ThrottlePolicy) -> Timestamp {
        let window_end = self.window_start.plus(policy.window);
        self.blocked_until.map_or(window_end, |b| b.max(window_end))
    }
}

/// How long an attempt must wait, from the counters of its keys (`None` where a key has no
/// counter yet); the account counter does not apply to a known device.
pub fn wait(
    counters: &[(Scope, Option<Counter>)],
    known_device: bool,
    now: Timestamp,
) -> Option<Duration> {
    counters
        .iter()
        .filter(|(scope, _)| !(known_device && *scope == Scope::Account))
        .filter_map(|(_, counter)| counter.and_then(|c| c.blocked_until))
        .filter(|until| *until > now)
        .map(|until| until.since(now))
        .max()
}

/// Counts a starting attempt as a failure of `scope`'s counter.
pub fn count(policy: &ThrottlePolicy, scope: Scope, counter: &mut Counter, now: Timestamp) {
    if now.since(counter.window_start) >= policy.window {
        *counter = Counter::fresh(now);
    }
    counter.failures += 1;
    match scope {
        // The n-th failure past the free ones waits 2^(n-1) s before the next attempt.
        Scope::Pair if counter.failures >= policy.free_attempts_per_pair => {
            let doublings = (counter.failures - policy.free_attempts_per_pair).min(20);
            let backoff = Duration::from_secs(1u64 << doublings).min(policy.max_pair_lockout);
            counter.blocked_until = Some(now.plus(backoff));
        }
        Scope::Ip if counter.failures >= policy.max_failures_per_ip => {
            counter.blocked_until = Some(counter.window_start.plus(policy.window));
        }
        Scope::Account if counter.failures >= policy.max_failures_per_account => {
            counter.blocked_until = Some(now.plus(policy.account_lockout));
            // The next lock needs a full new set of failures.
            counter.failures = 0;
            counter.window_start = now;
        }
        _ => {}
    }
}

/// Forgives a succeeded attempt that was counted at its start: the pair starts over; the
/// IP and account counters lose that one count.
pub fn forgive(scope: Scope, counter: &mut Counter, now: Timestamp) {
    match scope {
        Scope::Pair => *counter = Counter::fresh(now),
        Scope::Ip | Scope::Account => counter.failures = counter.failures.saturating_sub(1),
    }
}

/// Takes back the count of an attempt that was never judged (a second throttle refused
/// it, or it failed for another reason). A block it caused stays: that errs on the safe side.
pub fn uncount(counter: &mut Counter) {
    counter.failures = counter.failures.saturating_sub(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000).plus(Duration::from_secs(secs))
    }

    /// One key's life: attempts start (counted), none succeeds.
    fn attempts(policy: &ThrottlePolicy, scope: Scope, n: u32, now: Timestamp) -> Counter {
        let mut counter = Counter::fresh(now);
        for _ in 0..n {
            assert_eq!(wait(&[(scope, Some(counter))], false, now), None);
            count(policy, scope, &mut counter, now);
        }
        counter
    }

    #[test]
    fn a_pair_gets_five_free_attempts_then_backs_off_exponentially() {
        let policy = ThrottlePolicy::default();
        let mut pair = attempts(&policy, Scope::Pair, 5, t(0));
        let check = |c: Counter, at| wait(&[(Scope::Pair, Some(c))], false, at);
        assert_eq!(check(pair, t(0)), Some(Duration::from_secs(1)));
        count(&policy, Scope::Pair, &mut pair, t(1));
        assert_eq!(check(pair, t(1)), Some(Duration::from_secs(2)));
        count(&policy, Scope::Pair, &mut pair, t(3));
        assert_eq!(check(pair, t(3)), Some(Duration::from_secs(4)));
        assert_eq!(check(pair, t(7)), None);
    }

    #[test]
    fn the_pair_back_off_is_capped() {
        let policy = ThrottlePolicy {
            max_pair_lockout: Duration::from_secs(60),
            ..Default::default()
        };
        let pair = (0..30).fold(Counter::fresh(t(0)), |mut c, _| {
            count(&policy, Scope::Pair, &mut c, t(0));
            c
        });
        assert_eq!(
            wait(&[(Scope::Pair, Some(pair))], false, t(0)),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn many_failures_lock_the_account_briefly_but_never_for_its_known_devices() {
        let policy = ThrottlePolicy {
            max_failures_per_account: 10,
            ..Default::default()
        };
        let account = attempts(&policy, Scope::Account, 10, t(0));
        let keys = [(Scope::Account, Some(account))];
        assert_eq!(wait(&keys, false, t(0)), Some(Duration::from_secs(60)));
        assert_eq!(wait(&keys, true, t(0)), None, "the owner's device");
        assert_eq!(wait(&keys, false, t(60)), None, "and it ends");
    }

    #[test]
    fn one_ip_spraying_many_accounts_is_blocked_for_the_window() {
        let policy = ThrottlePolicy {
            max_failures_per_ip: 20,
            ..Default::default()
        };
        let ip = attempts(&policy, Scope::Ip, 20, t(0));
        let keys = [(Scope::Ip, Some(ip))];
        assert_eq!(wait(&keys, false, t(0)), Some(Duration::from_secs(900)));
        assert_eq!(wait(&keys, false, t(900)), None);
    }

    #[test]
    fn success_forgives_the_pair_and_its_one_count_elsewhere() {
        let policy = ThrottlePolicy::default();
        let mut pair = attempts(&policy, Scope::Pair, 4, t(0));
        let mut account = attempts(&policy, Scope::Account, 4, t(0));
        forgive(Scope::Pair, &mut pair, t(0));
        forgive(Scope::Account, &mut account, t(0));
        assert_eq!(pair.failures, 0);
        assert_eq!(account.failures, 3);
    }

    #[test]
    fn failures_age_out_of_the_window() {
        let policy = ThrottlePolicy::default();
        let mut pair = attempts(&policy, Scope::Pair, 4, t(0));
        count(&policy, Scope::Pair, &mut pair, t(16 * 60));
        assert_eq!(pair.failures, 1);
        assert_eq!(wait(&[(Scope::Pair, Some(pair))], false, t(16 * 60)), None);
    }

    #[test]
    fn a_counter_expires_after_its_window_or_its_block() {
        let policy = ThrottlePolicy::default();
        let pair = attempts(&policy, Scope::Pair, 1, t(0));
        assert_eq!(pair.expires_at(&policy), t(900));
        let account = Counter {
            blocked_until: Some(t(2000)),
            ..pair
        };
        assert_eq!(account.expires_at(&policy), t(2000));
    }
}
