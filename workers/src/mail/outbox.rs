//! The embedded queue: a table. The notifier inserts, the in-process mailer loop takes
//! what is due, and failed messages wait in place until their retry time.

use super::mailer::{Mailer, Outcome};
use super::message::MailMessage;
use super::queue::{MailPublisher, QueueError};
use super::{now_micros, write};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use store::Database;
use tokio::sync::{Notify, watch};

/// Messages sent at once by the outbox loop.
const CONCURRENCY: usize = 8;

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

    /// Attempts every due message once; whether there were any.
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
        let results: Vec<Result<(), sqlx::Error>> = futures_util::stream::iter(due)
            .map(|(id, body, attempts)| self.attempt(mailer, id, body, attempts))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(true)
    }

    async fn attempt(
        &self,
        mailer: &Mailer,
        id: String,
        body: String,
        attempts: i64,
    ) -> Result<(), sqlx::Error> {
        let attempt = u32::try_from(attempts + 1).unwrap_or(u32::MAX);
        let outcome = match serde_json::from_str::<MailMessage>(&body) {
            Ok(message) => mailer.deliver(&message, attempt).await,
            Err(error) => Outcome::Dead {
                error: format!("unreadable message: {error}"),
            },
        };
        match outcome {
            Outcome::Retry { after, error } => {
                write(
                    &self.db,
                    sqlx::query(
                        "UPDATE mail_outbox SET attempts = $1, available_at = $2, last_error = $3 \
                     WHERE message_id = $4",
                    )
                    .bind(i64::from(attempt))
                    .bind(now_micros() + i64::try_from(after.as_micros()).unwrap_or(i64::MAX))
                    .bind(error)
                    .bind(&id),
                )
                .await?;
            }
            Outcome::Sent | Outcome::Duplicate | Outcome::Skipped | Outcome::Dead { .. } => {
                write(
                    &self.db,
                    sqlx::query("DELETE FROM mail_outbox WHERE message_id = $1").bind(&id),
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MailPublisher for OutboxQueue {
    async fn publish(&self, messages: &[MailMessage]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let now = now_micros();
        let mut w = self.db.begin_write().await?;
        for message in messages {
            let body = serde_json::to_string(message)
                .map_err(|e| QueueError::Broker(format!("encoding a message: {e}")))?;
            // A message republished after a crash keeps its place (same id).
            sqlx::query(
                "INSERT INTO mail_outbox (message_id, body, attempts, available_at, created_at) \
                 VALUES ($1, $2, 0, $3, $3) ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(message.message_id.to_string())
            .bind(body)
            .bind(now)
            .execute(&mut **w)
            .await?;
        }
        w.commit().await?;
        self.wake.notify_one();
        Ok(())
    }
}
