//! The mailer: takes a message (or a batch of them) from a queue, makes sure no other copy
//! of it is being or has been sent (`super::claims`), looks up the recipient, renders and
//! sends it, and says what the queue should do with it (acknowledge, retry later, or
//! dead-letter). What a message says and to whom is `compose`'s.

mod compose;

use super::message::MailMessage;
use super::render::Templates;
use super::transport::MailTransport;
use crate::telegram::TelegramBot;
use commands::notifications::Notifications;
use lettre::message::Mailbox;
use std::sync::Arc;
use std::time::Duration;
use store::Database;
use uuid::Uuid;
use vault::DataKeys;
use vault::{AccountLinkSet, InvitationLinks, UnsubscribeLinks};

/// How the mailer retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before the second attempt; doubled each time after.
    pub first_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Attempts before a message is dead-lettered.
    pub max_attempts: u32,
    /// How long a mailer may hold a message while sending it before another may take over.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // About 40 minutes of retries: an SMTP relay restart or a short outage is ridden out.
        Self {
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(300),
            max_attempts: 15,
            lease: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What the queue should do with a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent now.
    Sent,
    /// Already sent (or skipped) by an earlier delivery: acknowledge.
    Duplicate,
    /// Nothing to send (the account is gone): acknowledge.
    Skipped,
    /// Try again after this delay.
    Retry {
        /// How long to wait.
        after: Duration,
        /// Why it failed.
        error: String,
    },
    /// Another mailer holds it (sending it, or a crashed one's lease not run out): look
    /// again after this delay. Not an attempt: waiting for a lease spends none of the
    /// message's retries.
    Held {
        /// How long to wait.
        after: Duration,
    },
    /// Give up: recorded in `mail_dead_letters`; the queue dead-letters it.
    Dead {
        /// Why.
        error: String,
    },
}

/// Sends messages.
pub struct Mailer {
    db: Database,
    transport: Arc<dyn MailTransport>,
    templates: Templates,
    from: Mailbox,
    public_url: String,
    settings_url: String,
    links: UnsubscribeLinks,
    policy: RetryPolicy,
    keys: Arc<DataKeys>,
    invitation_links: Option<InvitationLinks>,
    account_links: Option<AccountLinkSet>,
    telegram: Option<TelegramBot>,
    preferences: Option<Notifications>,
    /// Identifies this mailer's claims.
    id: Uuid,
}

use super::claims::{self, Claim, Settled};
use super::{now_micros, write};
use compose::Recipients;
use futures_util::StreamExt;
use tracing::Instrument;

/// Messages a mailer sends at once in [`Mailer::deliver_all`].
pub const SENDING_CONCURRENCY: usize = 8;

/// Messages claimed together in [`Mailer::deliver_all`]: two rounds of sends, so a claim's
/// lease runs while its message is sent, not while the rest of a long batch is.
pub const CLAIMED_TOGETHER: usize = 2 * SENDING_CONCURRENCY;

/// The span of one attempt at a message (what `deliver` was instrumented with).
fn span(message: &MailMessage, attempt: u32) -> tracing::Span {
    tracing::info_span!("deliver", message_id = %message.message_id, kind = ?message.kind, attempt)
}

impl Mailer {
    /// A mailer sending through `transport` as `from`; links point at `public_url`;
    /// sealed fields open with the data keys of `keys`.
    pub fn new(
        db: Database,
        transport: Arc<dyn MailTransport>,
        from: Mailbox,
        public_url: &str,
        links: UnsubscribeLinks,
        policy: RetryPolicy,
        keys: Arc<DataKeys>,
    ) -> Self {
        Self {
            db,
            transport,
            templates: Templates::new(),
            from,
            public_url: public_url.trim_end_matches('/').to_owned(),
            settings_url: public_url.trim_end_matches('/').to_owned(),
            links,
            policy,
            keys,
            invitation_links: None,
            account_links: None,
            telegram: None,
            preferences: None,
            id: Uuid::new_v4(),
        }
    }

    /// Reads each campaign recipient's preferences from its stream at send time, so an
    /// unsubscribe that came after the campaign was published is honoured (without, the
    /// opt-ins the campaign was published to are trusted).
    pub fn with_preferences(mut self, preferences: Notifications) -> Self {
        self.preferences = Some(preferences);
        self
    }

    /// Links to the settings ("Manage these e-mails") point at the settings web app at
    /// `settings_url` (by default, the public URL).
    pub fn with_settings_url(mut self, settings_url: &str) -> Self {
        self.settings_url = settings_url.trim_end_matches('/').to_owned();
        self
    }

    /// Workspace invitations carry links signed with `links` (derived again from the
    /// invitation event: the token is stored nowhere).
    pub fn with_invitation_links(mut self, links: InvitationLinks) -> Self {
        self.invitation_links = Some(links);
        self
    }

    /// E-mail verifications, password resets and changes of address carry links signed
    /// with `links` (derived again from the request event: the token is stored nowhere).
    pub fn with_account_links(mut self, links: AccountLinkSet) -> Self {
        self.account_links = Some(links);
        self
    }

    /// Telegram messages go through `bot` (without one they are skipped).
    pub fn with_telegram(mut self, bot: Option<TelegramBot>) -> Self {
        self.telegram = bot;
        self
    }

    /// Attempt number `attempt` (1-based) at delivering `message`.
    pub async fn deliver(&self, message: &MailMessage, attempt: u32) -> Outcome {
        let mut outcomes = self.deliver_all(&[(message, attempt)]).await;
        outcomes.pop().unwrap_or(Outcome::Retry {
            after: self.policy.delay(attempt),
            error: "no outcome".into(),
        })
    }

    /// An attempt at delivering each of `messages` (with its attempt number, 1-based); the
    /// outcomes in the same order. They are delivered [`CLAIMED_TOGETHER`] at a time: a
    /// batch claimed all at once (its leases starting together) would see the leases of
    /// its last messages run out while the first were sent, and another mailer take them
    /// and send them too.
    pub async fn deliver_all(&self, messages: &[(&MailMessage, u32)]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(messages.len());
        for chunk in messages.chunks(CLAIMED_TOGETHER) {
            outcomes.extend(self.deliver_claimed_together(chunk).await);
        }
        outcomes
    }

    /// Delivers `messages` (at most [`CLAIMED_TOGETHER`]): their claims are taken in one
    /// write and what became of them recorded in another (`super::claims`); up to
    /// [`SENDING_CONCURRENCY`] are sent at once.
    async fn deliver_claimed_together(&self, messages: &[(&MailMessage, u32)]) -> Vec<Outcome> {
        let ids: Vec<Uuid> = messages.iter().map(|(m, _)| m.message_id).collect();
        let claims = match claims::claim_all(&self.db, self.id, self.policy.lease, &ids).await {
            Ok(claims) => claims,
            Err(error) => {
                let error = format!("database: {error}");
                let mut outcomes = Vec::with_capacity(messages.len());
                for (message, attempt) in messages {
                    let failed = self.failed(message, *attempt, error.clone());
                    outcomes.push(failed.instrument(span(message, *attempt)).await);
                }
                return outcomes;
            }
        };
        // The recipients of the messages this mailer will send (not of those already sent or
        // held by another mailer).
        let taken: Vec<&MailMessage> = messages
            .iter()
            .zip(&claims)
            .filter(|(_, claim)| matches!(claim, Claim::Taken))
            .map(|((message, _), _)| *message)
            .collect();
        let recipients = self.recipients(&taken).await;
        let attempts: Vec<_> = messages
            .iter()
            .zip(claims)
            .map(|((message, attempt), claim)| {
                self.try_claimed(message, *attempt, claim, recipients.as_ref())
            })
            .collect();
        let tried: Vec<Tried> = futures_util::stream::iter(attempts)
            .buffered(SENDING_CONCURRENCY)
            .collect()
            .await;
        let settled: Vec<(Uuid, Settled)> = ids
            .iter()
            .zip(&tried)
            .filter_map(|(id, tried)| match tried {
                Tried::Sent(Ok(true)) => Some((*id, Settled::Sent)),
                Tried::Sent(Ok(false)) => Some((*id, Settled::Skipped)),
                // Released, for the retry (or nobody) to take.
                Tried::Sent(Err(_)) => Some((*id, Settled::Released)),
                Tried::Done | Tried::HeldElsewhere(_) => None,
            })
            .collect();
        if let Err(error) = claims::settle_all(&self.db, self.id, &settled).await {
            // Done, but not recorded: the leases keep other mailers off them until they run
            // out; acknowledging is right, since retrying would send them twice.
            tracing::error!(%error, messages = settled.len(), "mail handled but not recorded");
        }
        let mut outcomes = Vec::with_capacity(messages.len());
        for ((message, attempt), tried) in messages.iter().zip(tried) {
            let span = span(message, *attempt);
            let outcome = match tried {
                Tried::Done => Outcome::Duplicate,
                Tried::HeldElsewhere(wait) => Outcome::Held { after: wait },
                Tried::Sent(Ok(true)) => {
                    span.in_scope(|| tracing::info!("mail sent"));
                    Outcome::Sent
                }
                Tried::Sent(Ok(false)) => Outcome::Skipped,
                Tried::Sent(Err(Failure::Transient(error))) => {
                    self.failed(message, *attempt, error).instrument(span).await
                }
                Tried::Sent(Err(Failure::Permanent(error))) => {
                    self.dead(message, *attempt, error).instrument(span).await
                }
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Sends `message` if its claim was taken.
    async fn try_claimed(
        &self,
        message: &MailMessage,
        attempt: u32,
        claim: Claim,
        recipients: Option<&Recipients>,
    ) -> Tried {
        match claim {
            Claim::Taken => Tried::Sent(
                self.send(message, recipients)
                    .instrument(span(message, attempt))
                    .await,
            ),
            Claim::Done => Tried::Done,
            Claim::HeldElsewhere(wait) => Tried::HeldElsewhere(wait),
        }
    }

    async fn failed(&self, message: &MailMessage, attempt: u32, error: String) -> Outcome {
        if attempt >= self.policy.max_attempts {
            return self.dead(message, attempt, error).await;
        }
        tracing::warn!(%error, "mail not sent; will retry");
        Outcome::Retry {
            after: self.policy.delay(attempt),
            error,
        }
    }

    async fn dead(&self, message: &MailMessage, attempt: u32, error: String) -> Outcome {
        tracing::error!(%error, "mail dead-lettered");
        let body = serde_json::to_string(message).unwrap_or_default();
        let recorded = write(
            &self.db,
            sqlx::query(
            "INSERT INTO mail_dead_letters (message_id, body, attempts, last_error, dead_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO UPDATE SET \
             attempts = excluded.attempts, last_error = excluded.last_error, dead_at = excluded.dead_at",
        )
        .bind(message.message_id.to_string())
        .bind(body)
        .bind(i64::from(attempt))
            .bind(&error)
            .bind(now_micros()),
        )
        .await;
        if let Err(db_error) = recorded {
            // Without the record the operator would not see it: retry instead.
            return Outcome::Retry {
                after: self.policy.delay(attempt),
                error: format!("{error}; recording the dead letter failed: {db_error}"),
            };
        }
        Outcome::Dead { error }
    }
}

/// One message of a batch after its claim.
enum Tried {
    /// Already sent or skipped (a redelivered copy).
    Done,
    /// Another mailer holds it; look again after this long.
    HeldElsewhere(Duration),
    /// Claimed and sent (`Ok(false)`: nobody to send to).
    Sent(Result<bool, Failure>),
}

enum Failure {
    Transient(String),
    Permanent(String),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(format!("database: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_a_ceiling() {
        let policy = RetryPolicy {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            max_attempts: 5,
            lease: Duration::from_secs(60),
        };
        let delays: Vec<u64> = (1..=6).map(|a| policy.delay(a).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(policy.delay(u32::MAX).as_secs(), 10);
    }
}
