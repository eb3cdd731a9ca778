//! Checkpoints: how far each follower of the log has got (`projection_checkpoints`). The
//! one place that reads and writes that table.

use crate::Follower;
use sqlx::AnyConnection;
use store::{Database, GlobalPosition};

/// What a follower last stored itself (its checkpoint, the chainer's last link), so its
/// next step need not read it back: taken at a step's start, kept again once the step has
/// committed. A step that fails, or that loses the checkpoint to another process (its
/// guarded advance refused), leaves it empty, and the next step reads what is stored.
#[derive(Debug)]
pub struct Remembered<T>(std::sync::Mutex<Option<T>>);

impl<T> Default for Remembered<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(None))
    }
}

impl<T> Remembered<T> {
    /// The value kept by the last step, if it committed, or else what `read` finds
    /// stored; either way empty until kept again.
    pub async fn take_or<E, Read>(&self, read: impl FnOnce() -> Read) -> Result<T, E>
    where
        Read: Future<Output = Result<T, E>>,
    {
        let kept = self.lock().take();
        match kept {
            Some(value) => Ok(value),
            None => read().await,
        }
    }

    /// Keeps `value`, the state a step has just committed (or found unchanged).
    pub fn keep(&self, value: T) {
        *self.lock() = Some(value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The stored checkpoint of `follower`; the start of the log if there is none.
pub async fn stored_checkpoint(
    db: &Database,
    follower: Follower,
) -> Result<GlobalPosition, sqlx::Error> {
    Ok(stored(db, follower).await?.unwrap_or(GlobalPosition::START))
}

/// The stored checkpoint of `follower`, if it has one.
pub async fn stored(
    db: &Database,
    follower: Follower,
) -> Result<Option<GlobalPosition>, sqlx::Error> {
    let position: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
            .bind(follower.key())
            .fetch_optional(db.pool())
            .await?;
    Ok(position.map(|p| GlobalPosition(p as u64)))
}

/// The stored checkpoint of `follower`, registered first at the start of the log (at
/// version 1) if it has none: for followers that keep no read model of their own to
/// create, as the chainer and the audit index.
pub async fn stored_or_registered(
    db: &Database,
    follower: Follower,
) -> Result<GlobalPosition, sqlx::Error> {
    if let Some(position) = stored(db, follower).await? {
        return Ok(position);
    }
    let mut w = db.begin_write().await?;
    register_checkpoint(&mut w, follower, GlobalPosition::START, 1).await?;
    w.commit().await?;
    stored_checkpoint(db, follower).await
}

/// The stored version of `follower`'s checkpoint, if it has one.
pub(crate) async fn stored_version(
    db: &Database,
    follower: Follower,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT version FROM projection_checkpoints WHERE name = $1")
        .bind(follower.key())
        .fetch_optional(db.pool())
        .await
}

/// Every stored checkpoint, read inside `conn` (for a consistent snapshot with other reads).
pub async fn all_checkpoints(
    conn: &mut AnyConnection,
) -> Result<Vec<(Follower, GlobalPosition)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT name, position FROM projection_checkpoints")
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(name, position)| {
            Some((Follower::from_key(&name)?, GlobalPosition(position as u64)))
        })
        .collect())
}

/// Creates the checkpoint of `follower` at `position` (with `version`) unless it exists.
/// Returns whether it was created.
pub async fn register_checkpoint(
    conn: &mut AnyConnection,
    follower: Follower,
    position: GlobalPosition,
    version: i32,
) -> Result<bool, sqlx::Error> {
    let created = sqlx::query(
        "INSERT INTO projection_checkpoints (name, position, version, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
    )
    .bind(follower.key())
    .bind(position.0 as i64)
    .bind(version)
    .bind(now_micros())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(created == 1)
}

/// Sets the checkpoint of `follower` to `position` and `version`, whatever it was (a
/// rebuild's swap).
pub(crate) async fn reset_checkpoint(
    conn: &mut AnyConnection,
    follower: Follower,
    position: GlobalPosition,
    version: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_checkpoints (name, position, version, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
         version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(follower.key())
    .bind(position.0 as i64)
    .bind(version)
    .bind(now_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Locks the checkpoint row of `follower` until `conn`'s transaction ends (PostgreSQL; on
/// SQLite the write transaction already excludes every other writer).
pub(crate) async fn lock_checkpoint(
    conn: &mut AnyConnection,
    follower: Follower,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT position FROM projection_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(follower.key())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// Moves the checkpoint of `follower` from `from` to `to` inside `conn`'s transaction,
/// unless another runner moved it first (then `false`, and the caller rolls back): the
/// guard that lets several processes run the same subscriber without applying an event
/// twice.
pub async fn advance_checkpoint(
    conn: &mut AnyConnection,
    follower: Follower,
    from: GlobalPosition,
    to: GlobalPosition,
) -> Result<bool, sqlx::Error> {
    let advanced = sqlx::query(
        "UPDATE projection_checkpoints SET position = $1, updated_at = $2 \
         WHERE name = $3 AND position = $4",
    )
    .bind(to.0 as i64)
    .bind(now_micros())
    .bind(follower.key())
    .bind(from.0 as i64)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(advanced == 1)
}

fn now_micros() -> i64 {
    domain::Timestamp::from_datetime(time::OffsetDateTime::now_utc()).unix_micros()
}
