//! The event log.
//!
//! [`EventLog`] is the one interface commands, projections and workers use: append to a
//! stream with an expected revision, read a stream, read the whole log in global order from
//! a position, and wait for new events. Backends: [`sqlite`] (the embedded default),
//! [`postgres`], [`kurrentdb`] (a KurrentDB server or cluster), and [`memory`] for unit
//! tests. [`Database`] opens either SQL database, applies the migrations and hands out the
//! matching log; [`Database::open_event_log`] picks the log: KurrentDB when a KurrentDB URL is given,
//! else the database's own. Blobs (avatars) live beside the
//! log in a [`BlobStore`]: a folder ([`FolderBlobStore`]) or an S3 bucket ([`s3`]).

pub mod blobs;
pub mod db;
pub mod decoded;
pub mod envelope;
pub mod error;
mod group_commit;
pub mod kurrentdb;
pub mod log;
pub mod memory;
mod migrations;
pub mod postgres;
mod readers;
pub mod s3;
mod shared_reads;
pub mod snapshots;
pub mod sql;
pub mod sqlite;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use blobs::{BlobStore, FolderBlobStore};
pub use db::{Backend, Database, WriteTx};
pub use decoded::{DecodedEvent, EventDecoder, EventEnvelope, Payload};
pub use envelope::{
    Actor, AppendResult, ExpectedRevision, GlobalPosition, Metadata, NewEvent, RecordedEvent,
};
pub use error::StoreError;
pub use log::{
    Backlog, EventAt, EventLog, FilteredPage, LogWatch, StreamFilter, sql_int, stream_end_subquery,
};
pub use readers::Reader;
pub use snapshots::{Snapshot, SnapshotStore};

/// Which of `shards` lanes `key` (a stream, a rate-limit key) always goes to: the same
/// lane for the same key, in every process and run (the hasher's keys are fixed).
pub fn shard(key: &str, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_always_goes_to_the_same_shard_and_keys_spread() {
        assert_eq!(super::shard("credits-1", 8), super::shard("credits-1", 8));
        let used: std::collections::HashSet<usize> = (0..64)
            .map(|n| super::shard(&format!("credits-{n}"), 8))
            .collect();
        assert!(used.len() > 4 && used.iter().all(|&s| s < 8), "{used:?}");
        assert_eq!(super::shard("anything", 1), 0);
    }
}
