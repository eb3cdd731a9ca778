//! The throttle's counters in the database, so every API node sees the same ones. An
//! attempt's check and its counting happen in one write transaction that holds its rows
//! (`FOR UPDATE` on PostgreSQL; SQLite has one writer), so parallel attempts queue on the
//! counters instead of all reading "not blocked".

use super::ThrottlePolicy;
use super::counters::{self, Counter, Scope};
use domain::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::time::Duration;
use store::sql::{numbered, placeholders};
use store::{Backend, Database};

/// One counter key of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub scope: Scope,
    /// The stored key: scope tag and keyed hashes.
    pub key: String,
}

/// How long a device stays known (exempt from account locks) after a success.
pub(super) const KNOWN_FOR: Duration = Duration::from_secs(90 * 24 * 3600);

async fn load(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    throttle: &str,
    keys: &[Key],
) -> Result<Vec<(Scope, Option<Counter>)>, sqlx::Error> {
    let lock = if backend == Backend::Postgres {
        " ORDER BY key FOR UPDATE"
    } else {
        ""
    };
    let sql = format!(
        "SELECT key, failures, window_start, blocked_until FROM throttle_counters \
         WHERE throttle = $1 AND key IN ({}){lock}",
        numbered(2, keys.len())
    );
    let mut query = sqlx::query(&sql).bind(throttle);
    for key in keys {
        query = query.bind(&key.key);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    counters_of(keys, &rows)
}

/// The counter of each of `keys` among `rows` (`None` where it has no row).
fn counters_of(
    keys: &[Key],
    rows: &[AnyRow],
) -> Result<Vec<(Scope, Option<Counter>)>, sqlx::Error> {
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        let row = rows
            .iter()
            .find(|row| row.try_get::<String, _>("key").is_ok_and(|k| k == key.key));
        let counter = match row {
            None => None,
            Some(row) => Some(Counter {
                failures: u32::try_from(row.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
                window_start: Timestamp::from_unix_micros(row.try_get("window_start")?),
                blocked_until: row
                    .try_get::<Option<i64>, _>("blocked_until")?
                    .map(Timestamp::from_unix_micros),
            }),
        };
        found.push((key.scope, counter));
    }
    Ok(found)
}

/// Stores `counters` (one per key) with one statement: the rows are held, so this is the
/// lock's last round trip before the commit.
async fn save(
    conn: &mut sqlx::AnyConnection,
    throttle: &str,
    policy: &ThrottlePolicy,
    counters: &[(&Key, Counter)],
) -> Result<(), sqlx::Error> {
    if counters.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO throttle_counters \
         (throttle, key, failures, window_start, blocked_until, expires_at) VALUES {} \
         ON CONFLICT (throttle, key) DO UPDATE SET failures = excluded.failures, \
         window_start = excluded.window_start, blocked_until = excluded.blocked_until, \
         expires_at = excluded.expires_at",
        placeholders(counters.len(), 6)
    );
    let mut query = sqlx::query(&sql);
    for (key, counter) in counters {
        query = query
            .bind(throttle)
            .bind(&key.key)
            .bind(i64::from(counter.failures))
            .bind(counter.window_start.unix_micros())
            .bind(counter.blocked_until.map(Timestamp::unix_micros))
            .bind(counter.expires_at(policy).unix_micros());
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Holds the rows of an attempt's keys and reads them, creating those that do not exist
/// yet (so two first attempts cannot both read "none"), in one statement: an upsert whose
/// conflict branch rewrites nothing but takes the row lock, and returns the row as it is.
/// The keys come sorted, so every attempt takes its rows in one order (no deadlocks).
async fn claim(
    conn: &mut sqlx::AnyConnection,
    throttle: &str,
    policy: &ThrottlePolicy,
    keys: &[Key],
    now: Timestamp,
) -> Result<Vec<(Scope, Option<Counter>)>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let fresh = Counter::fresh(now);
    let sql = format!(
        "INSERT INTO throttle_counters \
         (throttle, key, failures, window_start, blocked_until, expires_at) VALUES {} \
         ON CONFLICT (throttle, key) DO UPDATE SET failures = throttle_counters.failures \
         RETURNING key, failures, window_start, blocked_until",
        placeholders(keys.len(), 6)
    );
    let mut query = sqlx::query(&sql);
    for key in keys {
        query = query
            .bind(throttle)
            .bind(&key.key)
            .bind(0_i64)
            .bind(now.unix_micros())
            .bind(None::<i64>)
            .bind(fresh.expires_at(policy).unix_micros());
    }
    let rows = query.fetch_all(&mut *conn).await?;
    counters_of(keys, &rows)
}

async fn is_known(
    conn: &mut sqlx::AnyConnection,
    throttle: &str,
    device: Option<(&str, &str)>,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let Some((account, ip)) = device else {
        return Ok(false);
    };
    let seen: Option<i64> = sqlx::query_scalar(
        "SELECT seen_at FROM throttle_known_devices \
         WHERE throttle = $1 AND account_key = $2 AND ip_key = $3",
    )
    .bind(throttle)
    .bind(account)
    .bind(ip)
    .fetch_optional(conn)
    .await?;
    Ok(seen.is_some_and(|at| now.since(Timestamp::from_unix_micros(at)) < KNOWN_FOR))
}

/// Checks an attempt and, unless it must wait, counts it: `Ok(Err(wait))` when refused.
pub(super) async fn begin(
    db: &Database,
    throttle: &str,
    policy: &ThrottlePolicy,
    keys: &[Key],
    device: Option<(&str, &str)>,
    now: Timestamp,
) -> Result<Result<(), Duration>, sqlx::Error> {
    let mut w = db.begin_write().await?;
    let counters = claim(&mut w, throttle, policy, keys, now).await?;
    // Whether the device is known matters only to an attempt that would otherwise wait
    // (it exempts from the account's lock), so only such an attempt asks.
    if counters::wait(&counters, false, now).is_some() {
        let known = is_known(&mut w, throttle, device, now).await?;
        if let Some(wait) = counters::wait(&counters, known, now) {
            return Ok(Err(wait));
        }
    }
    let counted: Vec<(&Key, Counter)> = keys
        .iter()
        .zip(counters)
        .map(|(key, (scope, counter))| {
            let mut counter = counter.unwrap_or(Counter::fresh(now));
            counters::count(policy, scope, &mut counter, now);
            (key, counter)
        })
        .collect();
    save(&mut w, throttle, policy, &counted).await?;
    w.commit().await?;
    Ok(Ok(()))
}

/// How an attempt that was counted at its start ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// It succeeded: forgiven, and its device becomes known.
    Succeeded,
    /// It was never judged: its count is taken back.
    Cancelled,
}

/// Settles an attempt that did not fail.
pub(super) async fn settle(
    db: &Database,
    throttle: &str,
    policy: &ThrottlePolicy,
    keys: &[Key],
    device: Option<(&str, &str)>,
    outcome: Outcome,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    // Written after the answer (`settling.rs`): on SQLite it queues behind the background
    // writers, so that requests' writes and the read models they wait for go first.
    let mut w = db.begin_background_write().await?;
    let counters = load(&mut w, db.backend(), throttle, keys).await?;
    let settled: Vec<(&Key, Counter)> = keys
        .iter()
        .zip(counters)
        .filter_map(|(key, (scope, counter))| {
            let mut counter = counter?;
            match outcome {
                Outcome::Succeeded => counters::forgive(scope, &mut counter, now),
                Outcome::Cancelled => counters::uncount(&mut counter),
            }
            Some((key, counter))
        })
        .collect();
    save(&mut w, throttle, policy, &settled).await?;
    let device = device.filter(|_| outcome == Outcome::Succeeded);
    if let Some((account, ip)) = device {
        sqlx::query(
            "INSERT INTO throttle_known_devices (throttle, account_key, ip_key, seen_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (throttle, account_key, ip_key) \
             DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(throttle)
        .bind(account)
        .bind(ip)
        .bind(now.unix_micros())
        .execute(&mut **w)
        .await?;
    }
    w.commit().await?;
    Ok(())
}

/// Deletes counters and known devices that no longer matter.
pub(super) async fn sweep(db: &Database, now: Timestamp) -> Result<(), sqlx::Error> {
    let mut w = db.begin_write().await?;
    sqlx::query("DELETE FROM throttle_counters WHERE expires_at < $1")
        .bind(now.unix_micros())
        .execute(&mut **w)
        .await?;
    sqlx::query("DELETE FROM throttle_known_devices WHERE seen_at < $1")
        .bind(now.unix_micros() - i64::try_from(KNOWN_FOR.as_micros()).unwrap_or(i64::MAX))
        .execute(&mut **w)
        .await?;
    w.commit().await?;
    Ok(())
}
