//! What the notifier publishes through, and what operators read about the mail: dead
//! letters and counts (the same tables whichever queue carries the mail).

use super::message::MailMessage;
use async_trait::async_trait;
use projections::{After, Page, Paged};
use serde::Serialize;
use sqlx::Row;
use store::Database;

/// Why publishing failed; the notifier keeps its checkpoint and tries again.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker is unreachable or refused the message.
    #[error("broker: {0}")]
    Broker(String),
    /// The outbox table failed.
    #[error("outbox: {0}")]
    Database(#[from] sqlx::Error),
}

/// Publishes messages durably.
#[async_trait]
pub trait MailPublisher: Send + Sync {
    /// Publishes every message; `Ok` only once the queue has confirmed all of them.
    async fn publish(&self, messages: &[MailMessage]) -> Result<(), QueueError>;
}

/// A message the mailer gave up on.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The message.
    pub message: serde_json::Value,
    /// Attempts made.
    pub attempts: i64,
    /// The last failure.
    pub last_error: String,
    /// When it was given up (microseconds since the epoch).
    pub dead_at: i64,
}

/// A page of the dead letters, newest first (ties by message id).
pub async fn dead_letters(db: &Database, page: &Page) -> Result<Paged<DeadLetter>, sqlx::Error> {
    let (at, key, limit) = page.bounds();
    let rows = sqlx::query(
        "SELECT message_id, body, attempts, last_error, dead_at FROM mail_dead_letters \
         WHERE dead_at < $1 OR (dead_at = $1 AND message_id > $2) \
         ORDER BY dead_at DESC, message_id LIMIT $3",
    )
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let letters = rows
        .iter()
        .map(|row| {
            let body: String = row.try_get("body")?;
            let letter = DeadLetter {
                message: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                attempts: row.try_get("attempts")?,
                last_error: row.try_get("last_error")?,
                dead_at: row.try_get("dead_at")?,
            };
            Ok((row.try_get::<String, _>("message_id")?, letter))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let Paged { items, next } = Paged::cut(letters, page, |(id, letter)| After {
        at: letter.dead_at,
        key: id.clone(),
    });
    Ok(Paged {
        items: items.into_iter().map(|(_, letter)| letter).collect(),
        next,
    })
}

/// Counts for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MailStats {
    /// Messages sent.
    pub sent: i64,
    /// Messages skipped (their account was gone).
    pub skipped: i64,
    /// Messages being sent right now.
    pub sending: i64,
    /// Messages dead-lettered.
    pub dead_letters: i64,
    /// Messages waiting in the embedded outbox (0 with a broker).
    pub outbox: i64,
}

/// The current counts.
pub async fn stats(db: &Database) -> Result<MailStats, sqlx::Error> {
    let mut stats = MailStats::default();
    // Kept as messages are settled: the ledger itself holds every message ever sent.
    let counted: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, messages FROM mail_delivery_counts")
            .fetch_all(db.pool())
            .await?;
    for (status, count) in counted {
        match status.as_str() {
            "sent" => stats.sent = count,
            "skipped" => stats.skipped = count,
            _ => {}
        }
    }
    stats.sending =
        sqlx::query_scalar("SELECT COUNT(*) FROM mail_deliveries WHERE status = 'sending'")
            .fetch_one(db.pool())
            .await?;
    stats.dead_letters = sqlx::query_scalar("SELECT COUNT(*) FROM mail_dead_letters")
        .fetch_one(db.pool())
        .await?;
    stats.outbox = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox")
        .fetch_one(db.pool())
        .await?;
    Ok(stats)
}
