//! Tamper evidence: a hash chain over the stored log.
//!
//! The **chainer** follows the log in global order (through [`EventLog::read_all`], which
//! never later reveals an event below a position already seen) and records, for each event,
//! a link `hash = SHA-256(DOMAIN || previous hash || canonical bytes of the stored event)`
//! in `event_chain`, its checkpoint (`event-chain`) advancing in the same transaction. The
//! first event's previous hash is 32 zero bytes. The chain is computed after the append,
//! never inside it, so appends on PostgreSQL stay concurrent; and it lives in the SQL
//! database beside the read models, whatever holds the log.
//!
//! The canonical bytes ([`canonical_bytes`]) are those of the event **as stored**: the
//! payload with its personal fields still sealed, so erasing an account (destroying its
//! key) leaves every link valid.
//!
//! [`verify`] reads the log again from the start, recomputes every link and compares it
//! with the stored chain, page by page, and reports the first broken link, the head
//! (position and hash, to publish elsewhere) and how many recent events are not chained
//! yet. [`Anchor`] checks a head published before.

use crate::Follower;
use crate::checkpoints::{Remembered, advance_checkpoint, stored, stored_or_registered};
use crate::follow::follow_log_gathering;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use store::{Database, EventLog, GlobalPosition, RecordedEvent, StoreError};
use tokio::sync::watch;

/// The chainer's checkpoint: the last event it has linked.
pub const CHECKPOINT: Follower = Follower::EventChain;

/// Domain separation of the hash, versioned: a new way to hash would be `v2`, never a
/// silent change of `v1`.
pub const DOMAIN: &[u8] = b"accounts.event-chain.v1\n";

/// Events per chainer batch (and per transaction).
const BATCH_SIZE: usize = 500;

/// Events and links per page while verifying.
const PAGE: usize = 500;

/// Links per INSERT statement.
const INSERT_CHUNK: usize = 200;

/// A link of the chain: a SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The "previous hash" of the first event: 32 zero bytes.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Lower-case hex, as stored and printed.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

impl FromStr for ChainHash {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a chain hash is 32 bytes (64 hex digits)".to_owned())?;
        Ok(Self(bytes))
    }
}

impl Serialize for ChainHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

/// The bytes of a stored event the chain covers: one JSON object with the keys sorted (at
/// every depth) and no whitespace, holding its position, stream, revision, event id, type,
/// schema version, payload and metadata as stored (personal fields sealed), and the time
/// the log recorded it (microseconds since the Unix epoch). Reading the event again gives
/// the same bytes, whichever backend holds it. This is the one definition.
pub fn canonical_bytes(event: &RecordedEvent) -> Vec<u8> {
    // Metadata is a plain struct of strings, ids and times: serialising it cannot fail.
    let metadata = serde_json::to_value(&event.metadata).unwrap_or(serde_json::Value::Null);
    let record = serde_json::json!({
        "data": event.data,
        "event_id": event.event_id.to_string(),
        "metadata": metadata,
        "position": event.position.0,
        "recorded_at": event.recorded_at.unix_micros(),
        "revision": event.revision,
        "schema_version": event.schema_version,
        "stream": event.stream,
        "type": event.event_type,
    });
    let mut out = Vec::with_capacity(256);
    write_canonical(&record, &mut out);
    out
}

/// Writes `value` as JSON with object keys sorted by their bytes, without relying on how
/// `serde_json` orders maps (its `preserve_order` feature would keep insertion order).
fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (n, (key, item)) in entries.into_iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    // Writing a string, number, boolean or null into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// The link of `event` after `previous`.
pub fn link(previous: &ChainHash, event: &RecordedEvent) -> ChainHash {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    hasher.update(previous.0);
    hasher.update(canonical_bytes(event));
    ChainHash(hasher.finalize().into())
}

/// Folds `events` (in log order) into their links, starting after `previous`.
pub fn fold<'a>(
    previous: ChainHash,
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Vec<(GlobalPosition, ChainHash)> {
    let mut previous = previous;
    events
        .into_iter()
        .map(|event| {
            previous = link(&previous, event);
            (event.position, previous)
        })
        .collect()
}

/// Why chaining or verifying failed (not a broken link: that is a [`VerifyReport`]).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The chain's own head link is gone or unreadable: the chainer stops rather than
    /// continue a chain it cannot vouch for (`accounts audit verify` says where).
    #[error("the link of the chain head at position {0} is missing or unreadable")]
    HeadMissing(GlobalPosition),
}

/// The stored hash at `position` (the genesis hash before the first event).
async fn stored_link(
    db: &Database,
    position: GlobalPosition,
) -> Result<Option<String>, sqlx::Error> {
    if position == GlobalPosition::START {
        return Ok(Some(ChainHash::GENESIS.to_hex()));
    }
    sqlx::query_scalar("SELECT hash FROM event_chain WHERE global_position = $1")
        .bind(position.0 as i64)
        .fetch_optional(db.pool())
        .await
}

/// The last event chained, and its link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainHead {
    /// Its position (0: nothing chained yet).
    pub position: u64,
    /// Its stored link, lower-case hex (absent if the row is gone).
    pub hash: Option<String>,
}

/// The head of the chain as stored.
#[tracing::instrument(skip_all)]
pub async fn head(db: &Database) -> Result<ChainHead, ChainError> {
    let position = stored(db, CHECKPOINT)
        .await?
        .unwrap_or(GlobalPosition::START);
    Ok(ChainHead {
        position: position.0,
        hash: stored_link(db, position).await?,
    })
}

/// Links the log's events as they are appended.
pub struct Chainer {
    db: Database,
    log: Arc<dyn EventLog>,
    /// The checkpoint and link this chainer last committed.
    head: Remembered<(GlobalPosition, ChainHash)>,
}

impl Chainer {
    /// A chainer of `log` writing its links to `db`.
    pub fn new(db: Database, log: Arc<dyn EventLog>) -> Self {
        Self {
            db,
            log,
            head: Remembered::default(),
        }
    }

    /// Links one batch of events after the checkpoint; returns how many it read (0:
    /// caught up). Two chainers (two nodes) may run: the checkpoint, advanced first and
    /// guarded by its old value, lets one batch win and rolls the other back. The head
    /// this chainer committed last is remembered ([`Remembered`]); it reads the stored
    /// head only at its first step and after a step that failed or lost its batch.
    #[tracing::instrument(skip_all)]
    pub async fn step(&self) -> Result<usize, ChainError> {
        let (checkpoint, previous) = self
            .head
            .take_or(|| async {
                let checkpoint = stored_or_registered(&self.db, CHECKPOINT).await?;
                let previous = stored_link(&self.db, checkpoint)
                    .await?
                    .and_then(|hash| hash.parse::<ChainHash>().ok())
                    .ok_or(ChainError::HeadMissing(checkpoint))?;
                Ok::<_, ChainError>((checkpoint, previous))
            })
            .await?;
        let batch = self
            .log
            .read_all_for_follower(checkpoint, BATCH_SIZE)
            .await?;
        let links = fold(previous, &batch);
        // The batch's last event and its link: the head once this batch commits.
        let Some(&(last, head)) = links.last() else {
            self.head.keep((checkpoint, previous));
            return Ok(0);
        };
        let mut w = self.db.begin_background_write().await?;
        if !advance_checkpoint(&mut w, CHECKPOINT, checkpoint, last).await? {
            // Another chainer linked this batch first; ours is rolled back.
            return Ok(batch.len());
        }
        for chunk in links.chunks(INSERT_CHUNK) {
            let sql = crate::batch::for_connection(
                &w,
                format!(
                    "INSERT INTO event_chain (global_position, hash) VALUES {}",
                    crate::batch::placeholders(chunk.len(), 2)
                ),
            );
            let mut query = sqlx::query(&sql);
            for (position, hash) in chunk {
                query = query.bind(position.0 as i64).bind(hash.to_hex());
            }
            query.execute(&mut **w).await?;
        }
        w.commit().await?;
        self.head.keep((last, head));
        Ok(batch.len())
    }

    /// Links every event the log shows now.
    pub async fn catch_up(&self) -> Result<(), ChainError> {
        while self.step().await? > 0 {}
        Ok(())
    }

    /// Runs until `shutdown` turns true. Once caught up it lets new events gather before
    /// linking them ([`follow_log_gathering`]): nothing waits on the chain, and a busy log then
    /// costs a few transactions a second rather than one per append.
    #[tracing::instrument(skip_all)]
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        follow_log_gathering(
            &self.log,
            shutdown,
            Duration::from_secs(30),
            BATCH_SIZE,
            || self.step(),
        )
        .await;
    }
}

mod verify;

pub use verify::{Anchor, AnchorCheck, BrokenLink, BrokenReason, VerifyReport, verify};

#[cfg(test)]
mod tests;
