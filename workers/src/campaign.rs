//! `accounts send-campaign`: one newsletter or marketing e-mail to every live account that
//! turned the topic on (as the notifier's view records it), each with a one-click
//! unsubscribe link added by the mailer.

use crate::mail::{MailKind, MailMessage, MailPublisher, QueueError};
use store::Database;
use uuid::Uuid;

/// Messages published per confirm round.
const CHUNK: usize = 500;

/// Why a campaign could not be published.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// Not a promotional topic.
    #[error("a campaign goes to `newsletter` or `marketing`, not {0:?}")]
    Topic(String),
    /// Listing the recipients failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Publishing failed (running it again with the same id finishes it).
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Publishes campaign `campaign` on `topic` to its subscribers; returns how many. Message
/// ids derive from the campaign and the account, so running it again sends nothing twice.
pub async fn publish(
    db: &Database,
    publisher: &dyn MailPublisher,
    campaign: Uuid,
    topic: &str,
    subject: &str,
    body: &str,
) -> Result<usize, CampaignError> {
    if !matches!(topic, "newsletter" | "marketing") {
        return Err(CampaignError::Topic(topic.to_owned()));
    }
    let recipients: Vec<String> = sqlx::query_scalar(
        "SELECT p.account_id FROM notifier_preferences p \
         JOIN accounts a ON a.account_id = p.account_id \
         WHERE p.toggle = $1 AND p.enabled = 1 ORDER BY p.account_id",
    )
    .bind(topic)
    .fetch_all(db.pool())
    .await?;
    let paragraphs: Vec<&str> = body
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let messages: Vec<MailMessage> = recipients
        .iter()
        .filter_map(|id| Uuid::parse_str(id).ok())
        .map(|account| {
            MailMessage::caused_by(
                Uuid::new_v5(&campaign, account.as_bytes()),
                MailKind::Campaign,
                account,
                serde_json::json!({
                    "topic": topic,
                    "subject": subject,
                    "body": body,
                    "paragraphs": paragraphs,
                    "campaign_id": campaign,
                }),
            )
        })
        .collect();
    for chunk in messages.chunks(CHUNK) {
        publisher.publish(chunk).await?;
    }
    tracing::info!(%campaign, topic, recipients = messages.len(), "campaign published");
    Ok(messages.len())
}
