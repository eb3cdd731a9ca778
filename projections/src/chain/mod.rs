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
use crate::checkpoints::{advance_checkpoint, stored, stored_or_registered};
use crate::runner::follow_log;
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
}

impl Chainer {
    /// A chainer of `log` writing its links to `db`.
    pub fn new(db: Database, log: Arc<dyn EventLog>) -> Self {
        Self { db, log }
    }

    /// Links one batch of events after the checkpoint; returns how many it read (0:
    /// caught up). Two chainers (two nodes) may run: the checkpoint, advanced first and
    /// guarded by its old value, lets one batch win and rolls the other back.
    #[tracing::instrument(skip_all)]
    pub async fn step(&self) -> Result<usize, ChainError> {
        let checkpoint = stored_or_registered(&self.db, CHECKPOINT).await?;
        let previous = stored_link(&self.db, checkpoint)
            .await?
            .and_then(|hash| hash.parse::<ChainHash>().ok())
            .ok_or(ChainError::HeadMissing(checkpoint))?;
        let batch = self.log.read_all(checkpoint, BATCH_SIZE).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(0);
        };
        let links = fold(previous, &batch);
        let mut w = self.db.begin_write().await?;
        if !advance_checkpoint(&mut w, CHECKPOINT, checkpoint, last).await? {
            // Another chainer linked this batch first; ours is rolled back.
            return Ok(batch.len());
        }
        for chunk in links.chunks(INSERT_CHUNK) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO event_chain (global_position, hash) VALUES {}",
                values.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (position, hash) in chunk {
                query = query.bind(position.0 as i64).bind(hash.to_hex());
            }
            query.execute(&mut **w).await?;
        }
        w.commit().await?;
        Ok(batch.len())
    }

    /// Links every event the log shows now.
    pub async fn catch_up(&self) -> Result<(), ChainError> {
        while self.step().await? > 0 {}
        Ok(())
    }

    /// Runs until `shutdown` turns true.
    #[tracing::instrument(skip_all)]
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        follow_log(&self.log, shutdown, Duration::from_secs(30), || async {
            self.step().await.map(|events| events > 0)
        })
        .await;
    }
}

mod verify;

pub use verify::{Anchor, AnchorCheck, BrokenLink, BrokenReason, VerifyReport, verify};

#[cfg(test)]
mod tests {
    use super::*;
    use domain::Timestamp;
    use serde_json::json;
    use store::{Actor, Metadata};
    use uuid::Uuid;

    fn event(position: u64, data: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            position: GlobalPosition(position),
            stream: "account-0b1f7a4e-5d1c-4a7b-9a51-8c1c2a9d0e11".into(),
            revision: position - 1,
            event_id: Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0 + position as u128),
            event_type: "ProfileChanged".into(),
            schema_version: 1,
            data,
            metadata: Metadata {
                correlation_id: Uuid::from_u128(7),
                causation_id: None,
                actor: Actor::System {
                    component: "test".into(),
                },
                occurred_at: Timestamp::from_unix_micros(1_700_000_000_123_456),
                idempotency_key: None,
                data_subject: None,
            },
            recorded_at: Timestamp::from_unix_micros(1_700_000_000_654_321),
        }
    }

    #[test]
    fn canonical_bytes_sort_keys_at_every_depth_without_whitespace() {
        let e = event(3, json!({"z": 1, "a": {"y": [true, null, "é"], "b": 2.5}}));
        let text = String::from_utf8(canonical_bytes(&e)).unwrap();
        assert!(
            text.starts_with(r#"{"data":{"a":{"b":2.5,"y":[true,null,"é"]},"z":1},"event_id":"#),
            "{text}"
        );
        assert!(text.contains(r#""position":3,"recorded_at":1700000000654321,"revision":2,"schema_version":1,"stream":"account-"#), "{text}");
        assert!(text.ends_with(r#""type":"ProfileChanged"}"#), "{text}");
        assert!(!text.contains(": ") && !text.contains(", "), "{text}");
    }

    #[test]
    fn canonical_bytes_do_not_depend_on_the_order_keys_arrive_in() {
        let one: serde_json::Value =
            serde_json::from_str(r#"{"b": 1, "a": {"d": 2, "c": 3}}"#).unwrap();
        let two: serde_json::Value =
            serde_json::from_str(r#"{"a": {"c": 3, "d": 2}, "b": 1}"#).unwrap();
        assert_eq!(
            canonical_bytes(&event(1, one)),
            canonical_bytes(&event(1, two))
        );
    }

    #[test]
    fn every_stored_field_is_covered() {
        let base = event(5, json!({"name": "sealed:abc"}));
        let original = link(&ChainHash::GENESIS, &base);
        let mut changes: Vec<RecordedEvent> = Vec::new();
        let mut e = base.clone();
        e.position = GlobalPosition(6);
        changes.push(e);
        let mut e = base.clone();
        e.stream.push('x');
        changes.push(e);
        let mut e = base.clone();
        e.revision += 1;
        changes.push(e);
        let mut e = base.clone();
        e.event_id = Uuid::nil();
        changes.push(e);
        let mut e = base.clone();
        e.event_type = "ProfileChangee".into();
        changes.push(e);
        let mut e = base.clone();
        e.schema_version = 2;
        changes.push(e);
        let mut e = base.clone();
        e.data = json!({"name": "sealed:abd"});
        changes.push(e);
        let mut e = base.clone();
        e.metadata.idempotency_key = Some("k".into());
        changes.push(e);
        let mut e = base.clone();
        e.recorded_at = Timestamp::from_unix_micros(1);
        changes.push(e);
        for changed in &changes {
            assert_ne!(link(&ChainHash::GENESIS, changed), original, "{changed:?}");
        }
        assert_ne!(
            link(&ChainHash([1; 32]), &base),
            original,
            "the previous hash"
        );
    }

    /// The format is fixed: a change here means every chain already stored stops
    /// verifying, which needs a new `DOMAIN` version, not a new expected value.
    #[test]
    fn the_hash_of_a_known_event_is_pinned() {
        let e = event(
            1,
            json!({"email": "sealed:v1:AAAA", "at": "2023-11-14T22:13:20Z"}),
        );
        let mut hasher = Sha256::new();
        hasher.update(b"accounts.event-chain.v1\n");
        hasher.update([0u8; 32]);
        hasher.update(canonical_bytes(&e));
        let expected: [u8; 32] = hasher.finalize().into();
        assert_eq!(link(&ChainHash::GENESIS, &e).0, expected);
        assert_eq!(
            String::from_utf8(canonical_bytes(&e)).unwrap(),
            concat!(
                r#"{"data":{"at":"2023-11-14T22:13:20Z","email":"sealed:v1:AAAA"},"#,
                r#""event_id":"12345678-9abc-def0-1234-56789abcdef1","#,
                r#""metadata":{"actor":{"component":"test","kind":"system"},"causation_id":null,"#,
                r#""correlation_id":"00000000-0000-0000-0000-000000000007","#,
                r#""occurred_at":"2023-11-14T22:13:20.123456Z"},"#,
                r#""position":1,"recorded_at":1700000000654321,"revision":0,"schema_version":1,"#,
                r#""stream":"account-0b1f7a4e-5d1c-4a7b-9a51-8c1c2a9d0e11","type":"ProfileChanged"}"#
            )
        );
    }

    #[test]
    fn the_fold_links_each_event_to_the_one_before() {
        let events: Vec<_> = (1..=4).map(|p| event(p, json!({"n": p}))).collect();
        let links = fold(ChainHash::GENESIS, &events);
        assert_eq!(links.len(), 4);
        let mut previous = ChainHash::GENESIS;
        for ((position, hash), event) in links.iter().zip(&events) {
            assert_eq!(*position, event.position);
            assert_eq!(*hash, link(&previous, event));
            previous = *hash;
        }
        // Folding in two batches gives the same chain as one.
        let (first, rest) = events.split_at(2);
        let mut twice = fold(ChainHash::GENESIS, first);
        twice.extend(fold(twice[1].1, rest));
        assert_eq!(twice, links);
        // Editing one event changes its link and every later one, none before.
        let mut edited = events.clone();
        edited[1].data = json!({"n": 20});
        let relinked = fold(ChainHash::GENESIS, &edited);
        assert_eq!(relinked[0], links[0]);
        for n in 1..4 {
            assert_ne!(relinked[n].1, links[n].1);
        }
    }

    #[test]
    fn hashes_and_anchors_parse() {
        let hash = link(&ChainHash::GENESIS, &event(1, json!({})));
        assert_eq!(hash.to_hex().parse::<ChainHash>().unwrap(), hash);
        assert!("abc".parse::<ChainHash>().is_err());
        let anchor: Anchor = format!("42:{hash}").parse().unwrap();
        assert_eq!(anchor.position, GlobalPosition(42));
        assert_eq!(anchor.hash, hash);
        assert!(format!("0:{hash}").parse::<Anchor>().is_err());
        assert!(hash.to_hex().parse::<Anchor>().is_err());
        assert!("x:00".parse::<Anchor>().is_err());
    }
}
