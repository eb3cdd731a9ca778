//! The mailer: takes a message (or a batch of them) from a queue, makes sure no other copy
//! of it is being or has been sent (`super::claims`), looks up the recipient, renders and
//! sends it, and says what the queue should do with it (acknowledge, retry later, or
//! dead-letter).

use super::message::{MailKind, MailMessage};
use super::render::{Extras, Templates, build_message};
use super::transport::{MailTransport, SendError};
use crate::telegram::{BotError, TelegramBot};
use domain::notifications::Toggle;
use domain::{AccountId, WorkspaceId};
use lettre::message::Mailbox;
use std::sync::Arc;
use std::time::Duration;
use store::Database;
use uuid::Uuid;
use vault::{DataKeys, FieldSealer};
use vault::{InvitationLinks, UnsubscribeLinks};

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
    telegram: Option<TelegramBot>,
    /// Identifies this mailer's claims.
    id: Uuid,
}

use super::claims::{self, Claim, Settled};
use super::{now_micros, write};
use futures_util::StreamExt;
use tracing::Instrument;

/// Messages a mailer sends at once in [`Mailer::deliver_all`].
pub const SENDING_CONCURRENCY: usize = 8;

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
            telegram: None,
            id: Uuid::new_v4(),
        }
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
    /// outcomes in the same order. Their claims are taken in one write and what became of
    /// them recorded in another (`super::claims`); up to [`SENDING_CONCURRENCY`] are sent
    /// at once.
    pub async fn deliver_all(&self, messages: &[(&MailMessage, u32)]) -> Vec<Outcome> {
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
        let attempts: Vec<_> = messages
            .iter()
            .zip(claims)
            .map(|((message, attempt), claim)| self.try_claimed(message, *attempt, claim))
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
                Tried::HeldElsewhere(wait) => Outcome::Retry {
                    after: wait,
                    error: "another mailer is sending this message".into(),
                },
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
    async fn try_claimed(&self, message: &MailMessage, attempt: u32, claim: Claim) -> Tried {
        match claim {
            Claim::Taken => {
                Tried::Sent(self.send(message).instrument(span(message, attempt)).await)
            }
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

    /// Sends a Telegram message to the chat linked to its account *now*; `Ok(false)` when
    /// none is (or no bot is configured, or the user blocked the bot).
    async fn send_telegram(&self, message: &MailMessage) -> Result<bool, Failure> {
        let Some(bot) = &self.telegram else {
            tracing::info!("no Telegram bot configured; message skipped");
            return Ok(false);
        };
        let sealer = FieldSealer::new(self.keys.clone());
        let chat = projections::telegram::chat(&self.db, &sealer, AccountId(message.account_id))
            .await
            .map_err(|e| Failure::Transient(format!("linked chat: {e}")))?;
        let Some(chat) = chat else {
            tracing::info!("no Telegram chat linked; message skipped");
            return Ok(false);
        };
        let number = |key: &str| message.data.get(key).and_then(|v| v.as_i64()).unwrap_or(0);
        let text = match message.kind {
            MailKind::TelegramGenerationComplete => format!(
                "Your generation {} is complete ({} credits).",
                message
                    .data
                    .get("generation_id")
                    .and_then(|v| v.as_str())
                    .unwrap_or(""),
                number("credits")
            ),
            _ => format!(
                "Your balance is {} credits, below {}.",
                number("balance"),
                number("threshold")
            ),
        };
        match bot.send_message(chat.chat_id, &text).await {
            Ok(()) => Ok(true),
            Err(BotError::Blocked) => Ok(false),
            Err(BotError::Transient(e)) => Err(Failure::Transient(e)),
            Err(BotError::Permanent(e)) => Err(Failure::Permanent(e)),
        }
    }

    /// Renders and sends; `Ok(false)` when there is no one to send to.
    async fn send(&self, message: &MailMessage) -> Result<bool, Failure> {
        if message.kind.is_telegram() {
            return self.send_telegram(message).await;
        }
        let account = AccountId(message.account_id);
        let mut message = message.clone();
        if message.sealed.is_some() {
            let key = self
                .keys
                .get(message.account_id)
                .await
                .map_err(|e| Failure::Transient(format!("data key: {e}")))?;
            let Some(key) = key else {
                tracing::info!("the account was erased; mail skipped");
                return Ok(false);
            };
            message
                .open_private(&key)
                .map_err(|e| Failure::Permanent(format!("sealed fields: {e}")))?;
        }
        let mut context = match &message.data {
            serde_json::Value::Object(map) => map.clone(),
            _ => serde_json::Map::new(),
        };
        let sealer = FieldSealer::new(self.keys.clone());
        let (to, recipient) = if message.kind == MailKind::WorkspaceInvitation {
            // To an address, perhaps of no account yet: it travelled sealed.
            let to = self
                .invitation(&sealer, message.account_id, &mut context)
                .await?;
            (to, None)
        } else {
            let recipient = projections::accounts::find(&self.db, &sealer, account)
                .await
                .map_err(|e| Failure::Transient(format!("recipient: {e}")))?;
            let Some(recipient) = recipient else {
                tracing::info!("the account is gone; mail skipped");
                return Ok(false);
            };
            let to = Mailbox::new(
                Some(recipient.display_name.clone()),
                recipient
                    .email
                    .parse()
                    .map_err(|e| Failure::Permanent(format!("recipient address: {e}")))?,
            );
            context.insert("name".into(), recipient.display_name.clone().into());
            (to, Some(recipient))
        };
        context.insert(
            "settings_url".into(),
            format!("{}/settings/notifications", self.settings_url).into(),
        );
        let mut extras = Extras::default();
        match message.kind {
            MailKind::Campaign => {
                let topic = context
                    .get("topic")
                    .and_then(|t| t.as_str())
                    .and_then(Toggle::parse)
                    .ok_or_else(|| Failure::Permanent("campaign without a topic".into()))?;
                let url = format!(
                    "{}/unsubscribe?token={}",
                    self.public_url,
                    self.links.token(account, topic)
                );
                context.insert("unsubscribe_url".into(), url.clone().into());
                extras.unsubscribe_url = Some(url);
            }
            MailKind::BillingReceipt => {
                let invoice_id = context
                    .get("invoice_id")
                    .and_then(|i| i.as_str())
                    .and_then(|i| Uuid::parse_str(i).ok())
                    .ok_or_else(|| Failure::Permanent("receipt without an invoice".into()))?;
                // The read model may lag the notifier by a moment: retried if not there yet.
                let invoice = projections::billing::invoice_of(&self.db, account, invoice_id)
                    .await?
                    .filter(|i| i.status == "paid")
                    .ok_or_else(|| Failure::Transient("the invoice is not projected yet".into()))?;
                context.insert("number".into(), invoice.number.clone().into());
                context.insert(
                    "total".into(),
                    format!("{:.2} {}", invoice.total as f64 / 100.0, invoice.currency).into(),
                );
                let recipient = recipient
                    .as_ref()
                    .ok_or_else(|| Failure::Permanent("receipt without a recipient".into()))?;
                let bill_to = format!("{} <{}>", recipient.display_name, recipient.email);
                extras.pdf = Some((
                    format!("invoice-{}.pdf", invoice.number),
                    crate::pdf::invoice(&invoice, &bill_to),
                ));
            }
            _ => {}
        }
        let rendered = self
            .templates
            .render(message.kind.template(), &serde_json::Value::Object(context))
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        let mail = build_message(
            &self.from,
            to,
            &message.message_id.to_string(),
            rendered,
            extras,
        )
        .map_err(|e| Failure::Permanent(e.to_string()))?;
        self.transport
            .send(&mail, account)
            .await
            .map_err(|e| match e {
                SendError::Transient(e) => Failure::Transient(e),
                SendError::Permanent(e) => Failure::Permanent(e),
            })?;
        Ok(true)
    }
}

impl Mailer {
    /// The invitee's mailbox; puts the inviter's name and the link into `context`.
    async fn invitation(
        &self,
        sealer: &FieldSealer,
        workspace: Uuid,
        context: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Mailbox, Failure> {
        let text = |key: &str| context.get(key).and_then(|v| v.as_str()).map(str::to_owned);
        let uuid = |key: &str| text(key).and_then(|v| Uuid::parse_str(&v).ok());
        let (Some(to), Some(invitation), Some(inviter), Some(generation)) = (
            text("to"),
            uuid("invitation_id"),
            uuid("inviter_id"),
            context.get("generation").and_then(|g| g.as_u64()),
        ) else {
            return Err(Failure::Permanent(
                "an invitation without its fields".into(),
            ));
        };
        let inviter = projections::accounts::find(&self.db, sealer, AccountId(inviter))
            .await
            .map_err(|e| Failure::Transient(format!("inviter: {e}")))?
            .map_or_else(|| "A member".to_owned(), |a| a.display_name);
        context.insert("inviter".into(), inviter.into());
        let generation = u32::try_from(generation)
            .map_err(|_| Failure::Permanent("an invitation's generation out of range".into()))?;
        let links = self
            .invitation_links
            .as_ref()
            .ok_or_else(|| Failure::Permanent("no key for invitation links".into()))?;
        let token = links.token(WorkspaceId(workspace), invitation, generation);
        context.insert(
            "link".into(),
            format!("{}/invitations/{token}", self.settings_url).into(),
        );
        to.parse()
            .map(|address| Mailbox::new(None, address))
            .map_err(|e| Failure::Permanent(format!("invitee address: {e}")))
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
