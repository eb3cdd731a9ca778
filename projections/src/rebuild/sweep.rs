//! Rebuilds in progress, and what a dead one leaves behind. A rebuild registers itself in
//! `rebuilds` in the transaction that creates its fresh tables, renews its heartbeat while
//! it runs, and deletes its row in the transaction that swaps the tables in (or after
//! dropping them on failure). A process or server that dies mid-rebuild leaves the row
//! and the tables; [`sweep`], run before every rebuild and at every start, drops the
//! tables of rows whose heartbeat went stale, and rebuild tables that no row names (left
//! before rebuilds registered themselves). A rebuild still running elsewhere, in another
//! process or on another node, keeps its heartbeat fresh and is left alone.

use crate::{Follower, ProjectionError};
use sqlx::{AnyConnection, Row};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use store::{Backend, Database};
use tokio::sync::oneshot;

/// How often a running rebuild renews its heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// A heartbeat older than this (seconds) belongs to a rebuild that is no longer running:
/// twelve missed renewals, far beyond a pause of a live process.
pub const STALE_AFTER_SECS: i64 = 120;

/// The prefix of the suffix a rebuild gives its fresh tables (`<table>__rb<8 hex>`).
pub(super) const SUFFIX_PREFIX: &str = "__rb";

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The rebuild suffix of a table's name (`__rb` and 8 hex digits at its end), if it is a
/// rebuild's fresh table.
fn rebuild_suffix(table: &str) -> Option<&str> {
    let at = table.rfind(SUFFIX_PREFIX)?;
    let suffix = &table[at..];
    let digits = &suffix[SUFFIX_PREFIX.len()..];
    (at > 0 && digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_hexdigit())).then_some(suffix)
}

/// Records a rebuild inside `conn`'s transaction, the one creating its `shadow_tables`.
pub(super) async fn register(
    conn: &mut AnyConnection,
    suffix: &str,
    projection: Follower,
    shadow_tables: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rebuilds (suffix, projection, shadow_tables, heartbeat_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(suffix)
    .bind(projection.key())
    .bind(shadow_tables.join(","))
    .bind(now_secs())
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes a rebuild's row inside `conn`'s transaction: its tables were swapped in or
/// dropped.
pub(super) async fn forget(conn: &mut AnyConnection, suffix: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM rebuilds WHERE suffix = $1")
        .bind(suffix)
        .execute(conn)
        .await?;
    Ok(())
}

/// Renews the rebuild's heartbeat until the returned guard is dropped. A renewal that
/// fails is logged and tried again at the next beat.
pub(super) fn keep_alive(db: Database, suffix: String) -> Heartbeat {
    beat(db, suffix, HEARTBEAT)
}

/// Stops the heartbeat when dropped, after the renewal in flight if any.
#[derive(Debug)]
pub(super) struct Heartbeat {
    _stop: oneshot::Sender<()>,
}

fn beat(db: Database, suffix: String, every: Duration) -> Heartbeat {
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                // The guard was dropped (the sender with it).
                _ = &mut stopped => return,
                () = tokio::time::sleep(every) => {}
            }
            // Never cut short: a renewal aborted inside its transaction could leave the
            // connection holding SQLite's write lock, and the next writer "database is
            // locked".
            let renewed = async {
                let mut w = db.begin_write().await?;
                sqlx::query("UPDATE rebuilds SET heartbeat_at = $1 WHERE suffix = $2")
                    .bind(now_secs())
                    .bind(&suffix)
                    .execute(&mut **w)
                    .await?;
                w.commit().await
            };
            if let Err(error) = renewed.await {
                tracing::warn!(%error, suffix, "could not renew the rebuild's heartbeat");
            }
        }
    });
    Heartbeat { _stop: stop }
}

/// Every table of the database's current schema whose name marks it as a rebuild's.
async fn rebuild_tables(db: &Database) -> Result<Vec<String>, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table'",
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let names: Vec<String> = sqlx::query_scalar(sql).fetch_all(db.pool()).await?;
    Ok(names
        .into_iter()
        .filter(|name| rebuild_suffix(name).is_some())
        .collect())
}

/// Drops what dead rebuilds left: the tables of rows whose heartbeat is older than
/// [`STALE_AFTER_SECS`] (and the rows), and rebuild tables no row names. Returns the
/// tables it dropped.
#[tracing::instrument(skip_all)]
pub async fn sweep(db: &Database) -> Result<Vec<String>, ProjectionError> {
    // Tables first: a rebuild registering meanwhile commits its row with its tables, so a
    // table listed here already had its row when the rows are read below.
    let tables = rebuild_tables(db).await?;
    let rows = sqlx::query("SELECT suffix, shadow_tables, heartbeat_at FROM rebuilds")
        .fetch_all(db.pool())
        .await?;
    let stale_before = now_secs() - STALE_AFTER_SECS;
    let mut registered = Vec::new();
    let mut stale = Vec::new();
    for row in rows {
        let suffix: String = row.try_get("suffix")?;
        let heartbeat: i64 = row.try_get("heartbeat_at")?;
        if heartbeat < stale_before {
            let shadow: String = row.try_get("shadow_tables")?;
            stale.push((suffix.clone(), shadow));
        }
        registered.push(suffix);
    }
    let mut doomed: Vec<String> = tables
        .into_iter()
        .filter(|table| rebuild_suffix(table).is_none_or(|s| !registered.iter().any(|r| r == s)))
        .collect();
    for (_, shadow) in &stale {
        doomed.extend(
            shadow
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        );
    }
    if doomed.is_empty() && stale.is_empty() {
        return Ok(doomed);
    }
    let mut w = db.begin_write().await?;
    for table in &doomed {
        // Only names that are a rebuild's: a row's list is data, not trusted as SQL.
        if rebuild_suffix(table).is_some()
            && table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            sqlx::query(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(&mut **w)
                .await?;
        }
    }
    for (suffix, _) in &stale {
        forget(&mut w, suffix).await?;
    }
    w.commit().await?;
    doomed.sort();
    doomed.dedup();
    tracing::warn!(tables = ?doomed, "dropped the tables of rebuilds that died before finishing");
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::testkit::TestSqlite;

    /// The heartbeat is renewed while the guard lives, and no longer once it is dropped.
    #[tokio::test]
    async fn a_running_rebuild_renews_its_heartbeat_until_it_ends() {
        let file = TestSqlite::create();
        let db = Database::connect(&file.url, 2).await.unwrap();
        db.migrate().await.unwrap();
        let heartbeat = || async {
            sqlx::query_scalar::<_, i64>("SELECT heartbeat_at FROM rebuilds")
                .fetch_one(db.pool())
                .await
                .unwrap()
        };
        let mut w = db.begin_write().await.unwrap();
        register(
            &mut w,
            "__rb0a1b2c3d",
            Follower::Credits,
            &["t__rb0a1b2c3d"],
        )
        .await
        .unwrap();
        w.commit().await.unwrap();
        sqlx::query("UPDATE rebuilds SET heartbeat_at = 0")
            .execute(db.pool())
            .await
            .unwrap();

        let alive = beat(db.clone(), "__rb0a1b2c3d".into(), Duration::from_millis(10));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while heartbeat().await == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never renewed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(heartbeat().await >= now_secs() - 1);
        drop(alive);
        tokio::time::sleep(Duration::from_millis(50)).await;
        sqlx::query("UPDATE rebuilds SET heartbeat_at = 0")
            .execute(db.pool())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(heartbeat().await, 0, "renewed after the rebuild ended");
        db.close().await;
    }

    #[test]
    fn only_a_rebuild_suffix_at_the_end_of_a_name_marks_a_rebuild_table() {
        assert_eq!(
            rebuild_suffix("credit_lots__rb0a1b2c3d"),
            Some("__rb0a1b2c3d")
        );
        assert_eq!(rebuild_suffix("credit_lots"), None);
        assert_eq!(rebuild_suffix("credit_lots__rb0a1b2c3"), None);
        assert_eq!(rebuild_suffix("credit_lots__rb0a1b2c3g"), None);
        assert_eq!(rebuild_suffix("__rb0a1b2c3d"), None);
        assert_eq!(rebuild_suffix("a__rb0a1b2c3d_idx"), None);
    }
}
