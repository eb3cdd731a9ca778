//! The audit index: for each account, the positions of the log's events that belong to it,
//! so that an audit page (`/admin/audit/accounts/{id}/…`, `accounts audit`) reads the
//! account's own events rather than the whole log from its start.
//!
//! Which events belong to an account is decided event by event in log order, from the
//! events **as stored** (ids are never sealed, so an erased account or a deleted workspace
//! indexes the same on every replay):
//!
//! - a stream named after the account (`account-<id>`, `credits-<id>`, …) belongs to it
//!   whole, and so does every event sealed with its data key (`data_subject`) or naming it
//!   as its `account_id`;
//! - a purchase stream whose `PurchaseStarted` names it, and an invoice stream whose
//!   `InvoiceIssued` (in the invoice series) names it, belong to it from then on;
//! - a workspace (`workspace-<id>`, and its provider keys `providerkeys-<workspace id>`)
//!   belongs to it while it is a member: from the event that made it one (creating the
//!   workspace, accepting an invitation) to the one that ended it (leaving, removal, the
//!   workspace's deletion), both included.
//!
//! These are the rules of the auditor's reference selector (`api::audit::select`), which
//! follows the whole log for one account; a test holds the two to the same answers.
//!
//! The indexer follows the log like the chainer ([`crate::chain`]): a batch's rows, the
//! changes to `audit_links` (what earlier events implied) and the checkpoint commit in one
//! transaction, the checkpoint advanced first and guarded by its old value, so two
//! indexers never index a batch twice. An audit read first brings the index up to the head
//! of the log ([`AuditIndex::catch_up`]), so it never misses a recent event.

use crate::Follower;
use crate::ProjectionError;
use crate::batch::{Value, delete_keys, insert_rows, select_keys, text_keys};
use crate::checkpoints::{Remembered, advance_checkpoint, stored, stored_or_registered};
use crate::follow::follow_log_gathering;
use domain::StreamCategory;
use serde_json::Value as Json;
use sqlx::{AnyConnection, Row};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use store::{Database, EventAt, EventLog, GlobalPosition, RecordedEvent};
use tokio::sync::watch;

/// The indexer's checkpoint: the last event it has indexed.
pub const CHECKPOINT: Follower = Follower::AuditIndex;

/// Events per indexer batch (and per transaction). On SQLite a request's write may wait for
/// one background transaction (`Database::begin_background_write`): batches of 1,000 held
/// the write gate 14-20 ms, these 3-8 ms.
const BATCH_SIZE: usize = 256;

/// Indexes the log's events by the accounts they belong to.
pub struct AuditIndex {
    db: Database,
    log: Arc<dyn EventLog>,
    /// The checkpoint this indexer last committed.
    checkpoint: Remembered<GlobalPosition>,
}

impl AuditIndex {
    /// An indexer of `log` writing to `db`.
    pub fn new(db: Database, log: Arc<dyn EventLog>) -> Self {
        Self {
            db,
            log,
            checkpoint: Remembered::default(),
        }
    }

    /// Indexes one batch of events after the checkpoint; returns how many it read (0:
    /// caught up, or another indexer took this batch).
    #[tracing::instrument(skip_all)]
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        let checkpoint = self
            .checkpoint
            .take_or(|| stored_or_registered(&self.db, CHECKPOINT))
            .await?;
        let batch = self
            .log
            .read_all_for_follower(checkpoint, BATCH_SIZE)
            .await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            self.checkpoint.keep(checkpoint);
            return Ok(0);
        };
        let mut w = self.db.begin_background_write().await?;
        if !advance_checkpoint(&mut w, CHECKPOINT, checkpoint, last).await? {
            // Another indexer took this batch; ours is rolled back.
            return Ok(0);
        }
        let mut links = Links::load(&mut w, &batch).await?;
        let mut rows = Vec::new();
        for event in &batch {
            for account in links.owners(event) {
                rows.push(vec![
                    Value::Text(account),
                    Value::Int(event.position.0 as i64),
                    Value::Text(event.stream.clone()),
                    Value::Int(event.revision as i64),
                ]);
            }
        }
        insert_rows(
            &mut w,
            "INSERT INTO audit_index (account_id, position, stream_id, revision)",
            "ON CONFLICT (account_id, position) DO NOTHING",
            4,
            &rows,
        )
        .await?;
        links.write(&mut w).await?;
        w.commit().await?;
        self.checkpoint.keep(last);
        Ok(batch.len())
    }

    /// Indexes every event the log shows now. Fails with [`ProjectionError::Lagging`] if
    /// the index stops moving short of the head for ten seconds (another indexer holding
    /// it that long).
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        let mut stalled_since = tokio::time::Instant::now();
        loop {
            if self.step().await? > 0 {
                stalled_since = tokio::time::Instant::now();
                continue;
            }
            // Caught up, or another indexer holds the batch: done only at the head.
            let head = self.log.head().await?;
            if stored(&self.db, CHECKPOINT).await?.unwrap_or_default() >= head {
                return Ok(());
            }
            if stalled_since.elapsed() > Duration::from_secs(10) {
                return Err(ProjectionError::Lagging {
                    name: CHECKPOINT,
                    position: head,
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Runs until `shutdown` turns true. Once caught up it lets the log's new events
    /// gather for [`crate::follow::GATHER`] before indexing them, so a busy log costs a few indexer
    /// transactions a second rather than one per append (audit reads catch up by
    /// themselves, so nothing waits on this).
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

/// Where up to `limit` of `account`'s events after `after` sit, in log order.
pub async fn events_of(
    db: &Database,
    account: &str,
    after: GlobalPosition,
    limit: usize,
) -> Result<Vec<EventAt>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT position, stream_id, revision FROM audit_index \
         WHERE account_id = $1 AND position > $2 ORDER BY position LIMIT $3",
    )
    .bind(account)
    // A cursor past SQL's integers (a client's) is past every position, not before them.
    .bind(store::sql_int(after.0))
    .bind(store::sql_int(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(EventAt {
                position: GlobalPosition(row.try_get::<i64, _>("position")? as u64),
                stream: row.try_get("stream_id")?,
                revision: row.try_get::<i64, _>("revision")? as u64,
            })
        })
        .collect()
}

fn text<'a>(data: &'a Json, field: &str) -> Option<&'a str> {
    data.get(field).and_then(Json::as_str)
}

/// What earlier events implied, for the streams a batch touches: the accounts linked to
/// each stream (a workspace's members, a purchase's or an invoice's account), as stored
/// and as the batch leaves them.
#[derive(Debug)]
struct Links {
    stored: HashMap<String, BTreeSet<String>>,
    now: HashMap<String, BTreeSet<String>>,
}

/// The stream whose links decide who an event of `event_stream` belongs to, if any.
fn linked_stream(event_stream: &str) -> Option<String> {
    let category = StreamCategory::of_stream(event_stream)?;
    match category {
        StreamCategory::Workspace | StreamCategory::Purchase | StreamCategory::Invoice => {
            Some(event_stream.to_owned())
        }
        StreamCategory::ProviderKeys => category
            .id_in(event_stream)
            .map(|id| StreamCategory::Workspace.stream(id)),
        _ => None,
    }
}

impl Links {
    /// Reads the links of the streams `batch` refers to.
    async fn load(conn: &mut AnyConnection, batch: &[RecordedEvent]) -> Result<Self, sqlx::Error> {
        let mut streams: Vec<String> = batch
            .iter()
            .filter_map(|event| linked_stream(&event.stream))
            .collect();
        streams.sort_unstable();
        streams.dedup();
        let keys = text_keys(&streams);
        let mut stored: HashMap<String, BTreeSet<String>> = HashMap::new();
        for row in select_keys(
            conn,
            "SELECT stream_id, account_id FROM audit_links WHERE",
            &["stream_id"],
            &keys,
        )
        .await?
        {
            stored
                .entry(row.try_get("stream_id")?)
                .or_default()
                .insert(row.try_get("account_id")?);
        }
        Ok(Self {
            now: stored.clone(),
            stored,
        })
    }

    fn members(&self, stream: &str) -> BTreeSet<String> {
        self.now.get(stream).cloned().unwrap_or_default()
    }

    fn link(&mut self, stream: String, account: &str) {
        self.now
            .entry(stream)
            .or_default()
            .insert(account.to_owned());
    }

    /// The accounts `event` belongs to (learning what it implies for later events).
    fn owners(&mut self, event: &RecordedEvent) -> BTreeSet<String> {
        let Some(category) = StreamCategory::of_stream(&event.stream) else {
            return BTreeSet::new();
        };
        let id = category.id_in(&event.stream).unwrap_or_default();
        let data = &event.data;
        let named = text(data, "account_id");
        let stream = event.stream.clone();
        match category {
            StreamCategory::Workspace => {
                let mut owners = self.members(&stream);
                match (event.event_type.as_str(), text(data, "owner"), named) {
                    ("WorkspaceCreated", Some(owner), _)
                    | ("InvitationAccepted", _, Some(owner)) => {
                        self.link(stream, owner);
                        owners.insert(owner.to_owned());
                    }
                    ("MemberLeft" | "MemberRemoved", _, Some(member)) => {
                        if let Some(members) = self.now.get_mut(&stream) {
                            members.remove(member);
                        }
                        owners.insert(member.to_owned());
                    }
                    ("WorkspaceDeleted", _, _) => {
                        self.now.insert(stream, BTreeSet::new());
                    }
                    _ => {}
                }
                owners
            }
            StreamCategory::ProviderKeys => {
                let mut owners = self.members(&StreamCategory::Workspace.stream(id));
                owners.insert(id.to_owned());
                owners
            }
            StreamCategory::Purchase => {
                if let ("PurchaseStarted", Some(account)) = (event.event_type.as_str(), named) {
                    self.link(stream.clone(), account);
                }
                self.members(&stream)
            }
            StreamCategory::InvoiceSeries => {
                let Some(account) = named else {
                    return BTreeSet::new();
                };
                if let Some(invoice) = text(data, "invoice_id") {
                    self.link(StreamCategory::Invoice.stream(invoice), account);
                }
                BTreeSet::from([account.to_owned()])
            }
            StreamCategory::Invoice => self.members(&stream),
            _ => {
                let mut owners = BTreeSet::from([id.to_owned()]);
                if let Some(subject) = event.metadata.data_subject {
                    owners.insert(subject.to_string());
                }
                if let Some(account) = named {
                    owners.insert(account.to_owned());
                }
                owners
            }
        }
    }

    /// Writes the links the batch added and removed.
    async fn write(self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        let empty = BTreeSet::new();
        for (stream, now) in &self.now {
            let before = self.stored.get(stream).unwrap_or(&empty);
            for account in now.difference(before) {
                added.push(vec![
                    Value::Text(stream.clone()),
                    Value::Text(account.clone()),
                ]);
            }
            for account in before.difference(now) {
                removed.push(vec![
                    Value::Text(stream.clone()),
                    Value::Text(account.clone()),
                ]);
            }
        }
        delete_keys(conn, "audit_links", &["stream_id", "account_id"], &removed).await?;
        insert_rows(
            conn,
            "INSERT INTO audit_links (stream_id, account_id)",
            "ON CONFLICT (stream_id, account_id) DO NOTHING",
            2,
            &added,
        )
        .await
    }
}
