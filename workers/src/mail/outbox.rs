//! The embedded queue: a table. The notifier inserts, the in-process mailer loop takes
//! what is due, and failed messages wait in place until their retry time.

use super::mailer::{Mailer, Outcome};
use super::message::MailMessage;
use super::queue::{MailPublisher, QueueError};
use super::{micros, now_micros};
use async_trait::async_trait;
use projections::batch::{Value, delete_keys, insert_rows};
use std::sync::Arc;
use std::time::Duration;
use store::Database;
use tokio::sync::{Notify, watch};

/// The `mail_outbox` table as a queue.
#[derive(Clone)]
pub struct OutboxQueue {
    db: Database,
    wake: Arc<Notify>,
}

impl OutboxQueue {
    /// The outbox of `db`.
    pub fn new(db: Database) -> Self {
        Self {
            db,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Sends what is due until `shutdown` turns true; wakes when a message is published
    /// in this process, and polls for the rest (retries, other processes).
    #[tracing::instrument(skip_all)]
    pub async fn run(self, mailer: Arc<Mailer>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let worked = match self.drain_once(&mailer).await {
                Ok(worked) => worked,
                Err(error) => {
                    tracing::warn!(%error, "mail outbox failed; retrying");
                    false
                }
            };
            if worked {
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Attempts up to 200 due messages once, as one batch of the mailer's
    /// ([`Mailer::deliver_all`]), then deletes or reschedules them in one write (on SQLite
    /// writes take turns, and a write per message held the write gate for a fifth of the
    /// time under a spend load that mails every settled generation); whether there were
    /// any. A crash after the mailer recorded the sends but before they leave the queue
    /// sends nothing twice: the next drain finds them done (`Outcome::Duplicate`).
    pub async fn drain_once(&self, mailer: &Mailer) -> Result<bool, sqlx::Error> {
        let due: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT message_id, body, attempts FROM mail_outbox WHERE available_at <= $1 \
             ORDER BY available_at, created_at LIMIT 200",
        )
        .bind(now_micros())
        .fetch_all(self.db.pool())
        .await?;
        if due.is_empty() {
            return Ok(false);
        }
        let mut messages = Vec::with_capacity(due.len());
        let mut attempted = Vec::new();
        for (id, body, attempts) in due {
            let attempt = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
            match serde_json::from_str::<MailMessage>(&body) {
                Ok(message) => messages.push((id, message, attempt)),
                Err(error) => {
                    tracing::error!(%error, message_id = %id, "unreadable message dropped");
                    attempted.push(Attempted {
                        id,
                        attempt,
                        retry: None,
                    });
                }
            }
        }
        let batch: Vec<(&MailMessage, u32)> = messages.iter().map(|(_, m, a)| (m, *a)).collect();
        let outcomes = mailer.deliver_all(&batch).await;
        for ((id, _, attempt), outcome) in messages.iter().zip(outcomes) {
            let (attempt, retry) = match outcome {
                Outcome::Retry { after, error } => (*attempt, Some((after, error))),
                // Not an attempt: the count stays where it was.
                Outcome::Held { after } => (
                    attempt.saturating_sub(1),
                    Some((after, "another mailer holds this message".to_owned())),
                ),
                Outcome::Sent | Outcome::Duplicate | Outcome::Skipped | Outcome::Dead { .. } => {
                    (*attempt, None)
                }
            };
            attempted.push(Attempted {
                id: id.clone(),
                attempt,
                retry,
            });
        }
        self.record(&attempted).await?;
        Ok(true)
    }

    /// Deletes the messages done with and reschedules the others, in one transaction.
    async fn record(&self, attempted: &[Attempted]) -> Result<(), sqlx::Error> {
        let mut w = self.db.begin_background_write().await?;
        let mut done = Vec::new();
        for Attempted { id, attempt, retry } in attempted {
            let Some((after, error)) = retry else {
                done.push(vec![Value::Text(id.clone())]);
                continue;
            };
            sqlx::query(
                "UPDATE mail_outbox SET attempts = $1, available_at = $2, last_error = $3 \
                 WHERE message_id = $4",
            )
            .bind(i64::from(*attempt))
            .bind(now_micros() + micros(*after))
            .bind(error)
            .bind(id)
            .execute(&mut **w)
            .await?;
        }
        delete_keys(&mut w, "mail_outbox", &["message_id"], &done).await?;
        w.commit().await
    }
}

/// What became of one attempt at a message.
struct Attempted {
    id: String,
    /// Its number (1 for the first).
    attempt: u32,
    /// When to try again and why it failed; `None`: done with (sent, a duplicate, skipped
    /// or dead).
    retry: Option<(Duration, String)>,
}

#[async_trait]
impl MailPublisher for OutboxQueue {
    async fn publish(&self, messages: &[MailMessage]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        let mut rows = Vec::with_capacity(messages.len());
        for message in messages {
            let body = serde_json::to_string(message)
                .map_err(|e| QueueError::Broker(format!("encoding a message: {e}")))?;
            rows.push(vec![
                Value::Text(message.message_id.to_string()),
                Value::Text(body),
                Value::Int(0),
                Value::Int(now),
                Value::Int(now),
            ]);
        }
        let mut w = self.db.begin_background_write().await?;
        // One statement for the batch (a notifier's batch holds a mail per settled
        // generation: a round trip each was most of the mail queue's statements). A message
        // republished after a crash keeps its place (same id).
        insert_rows(
            &mut w,
            "INSERT INTO mail_outbox (message_id, body, attempts, available_at, created_at)",
            "ON CONFLICT (message_id) DO NOTHING",
            5,
            &rows,
        )
        .await?;
        w.commit().await?;
        self.wake.notify_one();
        Ok(())
    }
}
