//! Request budgets shared by every API node: `count` requests a period per key (a token,
//! a keyed hash of a client IP), in bursts of as many, by the generic cell rate algorithm
//! (one theoretical arrival time per key), kept in the database.
//!
//! A round trip per request would cost more than the request itself, so a node leases a
//! slice of a key's budget at a time (a twentieth of a minute's, at least one request) and
//! spends it in memory. A lease is taken from the shared budget when claimed, so all nodes
//! together never admit more than the budget; a slice one node leaves unused within a minute
//! is lost (the error is on the safe side).

use crate::clock::Clock;
use domain::Timestamp;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Backend, Database};

/// How long a leased slice may be spent.
const LEASE_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Lease {
    remaining: u32,
    until: Timestamp,
}

/// A shared per-key rate limit.
pub struct RateLimit {
    name: &'static str,
    interval: Duration,
    burst: Duration,
    slice: u32,
    db: Database,
    clock: Arc<dyn Clock>,
    leases: Mutex<HashMap<String, Lease>>,
    claims: AtomicU32,
    /// One is taken (by the key's hash) while claiming a slice: requests of a key that find
    /// its lease empty at once wait for the one claim in flight and spend its slice,
    /// instead of each claiming a slice of its own from the shared budget (a parallel
    /// burst would take many slices, keep only the last lease, and be refused long before
    /// the budget was spent). Keys of different lanes claim in parallel.
    claiming: Box<[tokio::sync::Mutex<()>]>,
}

/// Claims of different keys that may run at once in one process.
const CLAIM_LANES: usize = 64;

/// Sweep idle keys once every this many claims.
const SWEEP_EVERY: u32 = 1024;

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("name", &self.name)
            .field("interval", &self.interval)
            .finish()
    }
}

/// The decision on `wanted` requests at `now`, given the key's theoretical arrival time:
/// how many are admitted and the new arrival time, or how long to wait for one.
fn admit(
    tat: Timestamp,
    now: Timestamp,
    interval: Duration,
    burst: Duration,
    wanted: u32,
) -> Result<(u32, Timestamp), Duration> {
    let tat = tat.max(now);
    // Requests fit while the arrival time stays within the burst allowance ahead of now.
    let ahead = tat.since(now);
    if ahead > burst {
        return Err(ahead - burst);
    }
    let room = (burst - ahead).as_micros() / interval.as_micros().max(1) + 1;
    let admitted = u32::try_from(room).unwrap_or(u32::MAX).min(wanted);
    Ok((admitted, tat.plus(interval * admitted)))
}

impl RateLimit {
    /// `per_minute` requests a minute per key (at least 1), named `name` in the shared table.
    pub fn new(name: &'static str, per_minute: u32, db: Database, clock: Arc<dyn Clock>) -> Self {
        Self::per_period(name, per_minute, Duration::from_secs(60), db, clock)
    }

    /// `count` requests per `period` per key (at least 1), in bursts of as many, named
    /// `name` in the shared table.
    pub fn per_period(
        name: &'static str,
        count: u32,
        period: Duration,
        db: Database,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let count = count.max(1);
        let interval = period / count;
        Self {
            name,
            interval,
            burst: interval * (count - 1),
            slice: (count / 20).max(1),
            db,
            clock,
            leases: Mutex::new(HashMap::new()),
            claims: AtomicU32::new(0),
            claiming: (0..CLAIM_LANES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Admits one request of `key`, or says how long to wait.
    #[tracing::instrument(skip_all, fields(limit = self.name))]
    pub async fn check(&self, key: &str) -> Result<Result<(), Duration>, sqlx::Error> {
        if self.spend_lease(key, self.clock.now()) {
            return Ok(Ok(()));
        }
        let lane = store::shard(key, self.claiming.len());
        let _claiming = self.claiming[lane].lock().await;
        // The claim this request waited for may have left a slice to spend.
        let now = self.clock.now();
        if self.spend_lease(key, now) {
            return Ok(Ok(()));
        }
        if self.claims.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep().await?;
        }
        let admitted = match self.claim(key, now).await? {
            Ok(admitted) => admitted,
            Err(wait) => return Ok(Err(wait)),
        };
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key.to_owned(),
                Lease {
                    remaining: admitted - 1,
                    until: now.plus(LEASE_LIFETIME),
                },
            );
        Ok(Ok(()))
    }

    /// Spends one request of `key`'s leased slice, if it has one left at `now`.
    fn spend_lease(&self, key: &str, now: Timestamp) -> bool {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lease) = leases.get_mut(key)
            && lease.remaining > 0
            && lease.until > now
        {
            lease.remaining -= 1;
            return true;
        }
        if leases.len() > 100_000 {
            leases.retain(|_, lease| lease.until > now && lease.remaining > 0);
        }
        false
    }

    /// Takes a slice of `key`'s shared budget: how many requests it holds (at least one).
    async fn claim(&self, key: &str, now: Timestamp) -> Result<Result<u32, Duration>, sqlx::Error> {
        let mut w = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO rate_limits (name, key, tat) VALUES ($1, $2, $3) \
             ON CONFLICT (name, key) DO NOTHING",
        )
        .bind(self.name)
        .bind(key)
        .bind(now.unix_micros())
        .execute(&mut **w)
        .await?;
        let lock = if self.db.backend() == Backend::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let tat: i64 = sqlx::query_scalar(&format!(
            "SELECT tat FROM rate_limits WHERE name = $1 AND key = $2{lock}"
        ))
        .bind(self.name)
        .bind(key)
        .fetch_one(&mut **w)
        .await?;
        let tat = Timestamp::from_unix_micros(tat);
        let (admitted, tat) = match admit(tat, now, self.interval, self.burst, self.slice) {
            Ok(decision) => decision,
            Err(wait) => return Ok(Err(wait)),
        };
        sqlx::query("UPDATE rate_limits SET tat = $3 WHERE name = $1 AND key = $2")
            .bind(self.name)
            .bind(key)
            .bind(tat.unix_micros())
            .execute(&mut **w)
            .await?;
        w.commit().await?;
        Ok(Ok(admitted))
    }

    /// Deletes the budgets of keys idle for longer than a full burst.
    pub async fn sweep(&self) -> Result<u64, sqlx::Error> {
        let cutoff = self.clock.now().unix_micros();
        let mut w = self.db.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM rate_limits WHERE name = $1 AND tat < $2")
            .bind(self.name)
            .bind(cutoff)
            .execute(&mut **w)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(deleted)
    }
}

/// A [`RateLimit`] per client IP (registrations), kept under a keyed hash of the address:
/// neither the database nor memory holds the address itself.
#[derive(Debug)]
pub struct IpRateLimit {
    limit: RateLimit,
    secret: [u8; 32],
}

impl IpRateLimit {
    /// `limit`, keyed by the IP hashed with `secret`.
    pub fn new(limit: RateLimit, secret: [u8; 32]) -> Self {
        Self { limit, secret }
    }

    /// The key of `ip` (requests whose IP is unknown share one).
    fn key(&self, ip: Option<IpAddr>) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(format!("ip:{}", ip.map_or_else(String::new, |ip| ip.to_string())).as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Admits one request from `ip`, or says how long to wait.
    pub async fn check(&self, ip: Option<IpAddr>) -> Result<Result<(), Duration>, sqlx::Error> {
        self.limit.check(&self.key(ip)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(millis: u64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000).plus(Duration::from_millis(millis))
    }

    #[test]
    fn a_burst_then_one_request_per_interval() {
        // 3 a minute: one every 20 s, bursts of 3.
        let interval = Duration::from_secs(20);
        let burst = interval * 2;
        let (admitted, tat) = admit(t(0), t(0), interval, burst, 10).unwrap();
        assert_eq!(admitted, 3);
        assert_eq!(
            admit(tat, t(0), interval, burst, 1),
            Err(Duration::from_secs(20))
        );
        let (admitted, tat) = admit(tat, t(20_000), interval, burst, 10).unwrap();
        assert_eq!(admitted, 1);
        assert!(admit(tat, t(20_000), interval, burst, 1).is_err());
    }

    #[test]
    fn a_budget_per_hour_spaces_requests_by_its_share_of_the_hour() {
        // 20 an hour: one every 3 minutes once the burst of 20 is spent.
        let interval = Duration::from_secs(3600) / 20;
        let burst = interval * 19;
        let (admitted, tat) = admit(t(0), t(0), interval, burst, 100).unwrap();
        assert_eq!(admitted, 20);
        assert_eq!(
            admit(tat, t(0), interval, burst, 1),
            Err(Duration::from_secs(180))
        );
    }

    /// A parallel burst within the budget is admitted whole: the requests that find the
    /// lease empty together wait for one claim instead of each taking a slice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_parallel_burst_within_the_budget_is_admitted() {
        let file = store::testkit::TestSqlite::create();
        let db = Database::connect(&file.url, 4).await.unwrap();
        db.migrate().await.unwrap();
        let limit = Arc::new(RateLimit::new(
            "burst",
            1_000,
            db,
            Arc::new(crate::clock::SystemClock),
        ));
        let checks: Vec<_> = (0..200)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move { limit.check("token").await.unwrap() })
            })
            .collect();
        for check in checks {
            assert_eq!(check.await.unwrap(), Ok(()));
        }
    }

    #[test]
    fn slices_are_taken_from_the_shared_budget() {
        let interval = Duration::from_secs(1);
        let burst = interval * 59;
        let (first, tat) = admit(t(0), t(0), interval, burst, 30).unwrap();
        let (second, tat) = admit(tat, t(0), interval, burst, 30).unwrap();
        assert_eq!((first, second), (30, 30));
        assert!(admit(tat, t(0), interval, burst, 30).is_err(), "60 in all");
        let (later, _) = admit(tat, t(5_000), interval, burst, 30).unwrap();
        assert_eq!(later, 5, "five intervals later, five more");
    }
}
