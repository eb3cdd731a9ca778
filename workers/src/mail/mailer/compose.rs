//! What a message says and where it goes: the recipient looked up from the read models
//! (or, for an invitation, the address it travelled with, sealed), the template's context,
//! the rendering, and the call to the transport or the Telegram bot.

use super::{Failure, Mailer};
use crate::mail::message::{MailKind, MailMessage};
use crate::mail::render::{Extras, build_message};
use crate::mail::transport::{Handed, SendError};
use crate::telegram::BotError;
use domain::notifications::Toggle;
use domain::{AccountId, WorkspaceId};
use lettre::message::Mailbox;
use projections::accounts::AccountRow;
use std::collections::HashMap;
use uuid::Uuid;
use vault::{AccountLinks, FieldSealer};

/// Recipients read for a batch of messages, by account.
pub(super) type Recipients = HashMap<AccountId, AccountRow>;

impl Mailer {
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

    /// The recipients of `messages`, read together before they are sent (one statement
    /// instead of one per message: a mail per settled generation made it a round trip per
    /// credit spend); `None` when that read failed, and each message looks its own up, as
    /// one whose account the read did not find does.
    pub(super) async fn recipients(&self, messages: &[&MailMessage]) -> Option<Recipients> {
        let mut accounts: Vec<AccountId> = messages
            .iter()
            .filter(|m| !m.kind.is_telegram() && !m.kind.carries_its_address())
            .map(|m| AccountId(m.account_id))
            .collect();
        accounts.sort_unstable_by_key(|a| a.0);
        accounts.dedup();
        let sealer = FieldSealer::new(self.keys.clone());
        match projections::accounts::find_many(&self.db, &sealer, &accounts).await {
            Ok(found) => Some(found),
            Err(error) => {
                tracing::warn!(%error, "reading a batch's recipients; each looks its own up");
                None
            }
        }
    }

    /// Whether a campaign's recipient still takes its topic, as the account's preferences
    /// stream says now. The campaign was published to the notifier's view of the opt-ins,
    /// and may wait in the queue a while (a large one, a retry): an unsubscribe that came
    /// since, or that the view had not caught up with, is honoured.
    async fn still_subscribed(&self, message: &MailMessage) -> Result<bool, Failure> {
        let (Some(preferences), Ok(topic)) = (&self.preferences, campaign_topic(message)) else {
            // No topic: refused below, as a campaign without one.
            return Ok(true);
        };
        let current = preferences
            .preferences(AccountId(message.account_id))
            .await
            .map_err(|e| Failure::Transient(format!("preferences: {e}")))?;
        Ok(current.enabled(topic))
    }

    /// Renders and sends; `Ok(false)` when there is no one to send to (or the transport
    /// dropped it, the recipient's mail erased meanwhile). `recipients`: the batch's, read
    /// beforehand (an account missing from them is read alone).
    pub(super) async fn send(
        &self,
        message: &MailMessage,
        recipients: Option<&Recipients>,
    ) -> Result<bool, Failure> {
        if message.kind.is_telegram() {
            return self.send_telegram(message).await;
        }
        if message.kind == MailKind::Campaign && !self.still_subscribed(message).await? {
            tracing::info!("unsubscribed since the campaign was published; mail skipped");
            return Ok(false);
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
        } else if message.kind == MailKind::EmailChangedNotice {
            // To the address the account left (the read model shows the new one).
            let (to, _) = carried(&context, "an address change notice")?;
            (to, None)
        } else if let Some((links, path)) = self.account_links(message.kind) {
            // To the address the link was asked for (the account's row may not be projected
            // yet, or may hold another address by now).
            let to = account_link(&self.settings_url, links, path, account, &mut context)?;
            (to, None)
        } else {
            // Not among the batch's: read alone (gone, or not read with the batch).
            let recipient = match recipients.and_then(|found| found.get(&account)) {
                Some(recipient) => Some(recipient.clone()),
                None => projections::accounts::find(&self.db, &sealer, account)
                    .await
                    .map_err(|e| Failure::Transient(format!("recipient: {e}")))?,
            };
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
                let topic = campaign_topic(&message)?;
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
        let handed = self
            .transport
            .send(&mail, account)
            .await
            .map_err(|e| match e {
                SendError::Transient(e) => Failure::Transient(e),
                SendError::Permanent(e) => Failure::Permanent(e),
            })?;
        // Dropped for a recipient whose mail was erased meanwhile: skipped, not sent.
        Ok(handed == Handed::Delivered)
    }

    /// The links, and the settings app's path for them, of a mail that carries an account
    /// link (`vault::AccountLinks`).
    fn account_links(&self, kind: MailKind) -> Option<(Option<&AccountLinks>, &'static str)> {
        let set = self.account_links.as_ref();
        match kind {
            MailKind::EmailVerification => {
                Some((set.map(|s| &s.email_verification), "verify-email"))
            }
            MailKind::PasswordReset => Some((set.map(|s| &s.password_reset), "reset-password")),
            MailKind::EmailChange => Some((set.map(|s| &s.email_change), "confirm-email-change")),
            _ => None,
        }
    }

    /// The invitee's mailbox; puts the inviter's name and the link into `context`.
    async fn invitation(
        &self,
        sealer: &FieldSealer,
        workspace: Uuid,
        context: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<Mailbox, Failure> {
        let (to, generation) = carried(context, "an invitation")?;
        let uuid = |key: &str| {
            context
                .get(key)
                .and_then(|v| v.as_str())
                .and_then(|v| Uuid::parse_str(v).ok())
        };
        let (Some(invitation), Some(inviter)) = (uuid("invitation_id"), uuid("inviter_id")) else {
            return Err(Failure::Permanent(
                "an invitation without its fields".into(),
            ));
        };
        let inviter = projections::accounts::find(&self.db, sealer, AccountId(inviter))
            .await
            .map_err(|e| Failure::Transient(format!("inviter: {e}")))?
            .map_or_else(|| "A member".to_owned(), |a| a.display_name);
        context.insert("inviter".into(), inviter.into());
        let links = self
            .invitation_links
            .as_ref()
            .ok_or_else(|| Failure::Permanent("no key for invitation links".into()))?;
        let token = links.token(WorkspaceId(workspace), invitation, generation);
        context.insert(
            "link".into(),
            format!("{}/invitations/{token}", self.settings_url).into(),
        );
        Ok(to)
    }
}

/// The address an account link (`vault::AccountLinks`) goes to; puts the link, at
/// `<settings URL>/<path>/<token>`, into `context`.
fn account_link(
    settings_url: &str,
    links: Option<&AccountLinks>,
    path: &str,
    account: AccountId,
    context: &mut serde_json::Map<String, serde_json::Value>,
) -> Result<Mailbox, Failure> {
    let (to, generation) = carried(context, path)?;
    let links = links.ok_or_else(|| Failure::Permanent(format!("no key for {path} links")))?;
    let token = links.token(account, generation);
    context.insert(
        "link".into(),
        format!("{settings_url}/{path}/{token}").into(),
    );
    Ok(to)
}

/// The address and link generation a message that carries its address holds
/// ([`MailKind::carries_its_address`]); `what` names it in errors.
fn carried(
    context: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<(Mailbox, u32), Failure> {
    let (Some(to), Some(generation)) = (
        context.get("to").and_then(|v| v.as_str()),
        context.get("generation").and_then(|g| g.as_u64()),
    ) else {
        return Err(Failure::Permanent(format!("{what} without its fields")));
    };
    let generation = u32::try_from(generation)
        .map_err(|_| Failure::Permanent(format!("{what}'s generation out of range")))?;
    let to = to
        .parse()
        .map(|address| Mailbox::new(None, address))
        .map_err(|e| Failure::Permanent(format!("{what}'s address: {e}")))?;
    Ok((to, generation))
}

/// The topic a campaign was published on (in its data).
fn campaign_topic(message: &MailMessage) -> Result<Toggle, Failure> {
    message
        .data
        .get("topic")
        .and_then(|t| t.as_str())
        .and_then(Toggle::parse)
        .ok_or_else(|| Failure::Permanent("campaign without a topic".into()))
}
