//! E-mail: the messages the notifier publishes, the queues they travel through (RabbitMQ,
//! or a table in the embedded default), the templates they are rendered from, and the
//! mailer that sends them.

mod claims;
pub mod mailer;
pub mod message;
pub mod outbox;
pub mod queue;
pub mod rabbit;
pub mod render;
pub mod transport;

pub use mailer::{Mailer, Outcome, RetryPolicy};
pub use message::{MailKind, MailMessage};
pub use queue::{MailPublisher, QueueError};

/// Now, in microseconds since the Unix epoch (what the mail tables store).
pub(crate) fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, micros)
}

/// `duration` in microseconds, as the mail tables count time.
pub(crate) fn micros(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Runs one write statement in its own write transaction (SQLite takes writes one at a
/// time through the database's write gate); returns the rows affected.
pub(crate) async fn write<'q>(
    db: &store::Database,
    statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
) -> Result<u64, sqlx::Error> {
    let mut w = db.begin_background_write().await?;
    let affected = statement.execute(&mut **w).await?.rows_affected();
    w.commit().await?;
    Ok(affected)
}
