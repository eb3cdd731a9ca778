//! What travels through the mail queue: which e-mail, for whom, with what data. The
//! recipient's address is looked up when the mail is sent, so a queue never holds it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::notifications::Toggle;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace of message ids derived from events.
const MESSAGE_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_696c_2d6d_6573_7361_6765_2d69_6473);

/// Which e-mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// A generation completed through the public API.
    GenerationComplete,
    /// The balance dropped below the alert threshold.
    CreditsLow,
    /// An invoice was paid: the receipt, with the invoice PDF.
    BillingReceipt,
    /// A security notice (always sent).
    SecurityNotice,
    /// A newsletter or marketing campaign (with a one-click unsubscribe).
    Campaign,
    /// A workspace invitation, to an address (the message's subject is the workspace,
    /// whose key seals the address and which the link names).
    WorkspaceInvitation,
    /// The link that verifies the account's address, to that address (sealed with the
    /// account's key; always sent).
    EmailVerification,
    /// The link setting a new password for a forgotten one, to the account's address at the
    /// request (sealed with the account's key; always sent).
    PasswordReset,
    /// The link confirming a change of address, to the new address (sealed with the
    /// account's key; always sent).
    EmailChange,
    /// The notice that the account moved to another address, to the old one (both sealed
    /// with the account's key; always sent).
    EmailChangedNotice,
    /// A notice about a workspace: removed from it, its storage failing or working again.
    WorkspaceNotice,
    /// A provider key (the account's, or a workspace's it administers) turned invalid.
    ProviderKeyNotice,
    /// A generation completed: a Telegram message to the linked chat, not an e-mail.
    TelegramGenerationComplete,
    /// The balance dropped below the threshold: a Telegram message to the linked chat.
    TelegramCreditsLow,
}

impl MailKind {
    /// The template it is rendered from.
    pub fn template(self) -> &'static str {
        match self {
            Self::GenerationComplete => "generation_complete",
            Self::CreditsLow => "credits_low",
            Self::BillingReceipt => "billing_receipt",
            Self::SecurityNotice => "security_notice",
            Self::Campaign => "campaign",
            Self::WorkspaceInvitation => "workspace_invitation",
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
            Self::EmailChange => "email_change",
            Self::EmailChangedNotice => "email_changed",
            Self::WorkspaceNotice => "workspace_notice",
            Self::ProviderKeyNotice => "provider_key_notice",
            Self::TelegramGenerationComplete => "telegram_generation_complete",
            Self::TelegramCreditsLow => "telegram_credits_low",
        }
    }

    /// Whether it goes to an address it carries (sealed) rather than to its account's
    /// current one: an invitation (perhaps of no account yet), the link proving the
    /// address it was sent to, a reset link to the address it was asked for, the link to a
    /// new address, or the notice to the old one.
    pub fn carries_its_address(self) -> bool {
        matches!(
            self,
            Self::WorkspaceInvitation
                | Self::EmailVerification
                | Self::PasswordReset
                | Self::EmailChange
                | Self::EmailChangedNotice
        )
    }

    /// Whether it goes to the linked Telegram chat rather than by e-mail.
    pub fn is_telegram(self) -> bool {
        matches!(
            self,
            Self::TelegramGenerationComplete | Self::TelegramCreditsLow
        )
    }

    /// The preference that governs it; `None` for mail that is always sent.
    pub fn toggle(self) -> Option<Toggle> {
        match self {
            Self::GenerationComplete => Some(Toggle::GenerationComplete),
            Self::CreditsLow => Some(Toggle::CreditsLow),
            Self::BillingReceipt => Some(Toggle::BillingReceipts),
            Self::TelegramGenerationComplete => Some(Toggle::TelegramGenerationComplete),
            Self::TelegramCreditsLow => Some(Toggle::TelegramCreditsLow),
            Self::SecurityNotice
            | Self::Campaign
            | Self::WorkspaceInvitation
            | Self::EmailVerification
            | Self::PasswordReset
            | Self::EmailChange
            | Self::EmailChangedNotice
            | Self::WorkspaceNotice
            | Self::ProviderKeyNotice => None,
        }
    }
}

/// One e-mail to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailMessage {
    /// Derived from what caused it, so a republished message is recognised.
    pub message_id: Uuid,
    /// The recipient's account.
    pub account_id: Uuid,
    /// Which e-mail.
    pub kind: MailKind,
    /// What the template shows, without personal data.
    #[serde(default)]
    pub data: serde_json::Value,
    /// The personal part of what the template shows (an IP, a device, a token label),
    /// sealed with the account's data key (AES-256-GCM, base64): queues, outbox and dead
    /// letters never hold it in clear, and it is unreadable once the account is erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
}

impl MailMessage {
    /// The message `kind` that the event `cause` causes for `account_id`: its id is the
    /// same however often the event is handled.
    pub fn caused_by(
        cause: Uuid,
        kind: MailKind,
        account_id: Uuid,
        data: serde_json::Value,
    ) -> Self {
        Self {
            message_id: Uuid::new_v5(
                &MESSAGE_NAMESPACE,
                format!("{cause}:{}", kind.template()).as_bytes(),
            ),
            account_id,
            kind,
            data,
            sealed: None,
        }
    }

    /// Moves `data.private` (if any) into [`MailMessage::sealed`], sealed with `key`.
    pub fn seal_private(&mut self, key: &[u8; 32]) {
        let Some(private) = self.data.as_object_mut().and_then(|d| d.remove(PRIVATE)) else {
            return;
        };
        let plaintext = serde_json::to_vec(&private).unwrap_or_default();
        let sealed = vault::seal(key, self.message_id.as_bytes(), &plaintext);
        self.sealed = Some(STANDARD.encode(sealed));
    }

    /// Opens [`MailMessage::sealed`] with `key` into the fields of `data`.
    pub fn open_private(&mut self, key: &[u8; 32]) -> Result<(), String> {
        let Some(sealed) = self.sealed.take() else {
            return Ok(());
        };
        let bytes = STANDARD.decode(sealed).map_err(|e| e.to_string())?;
        let plaintext =
            vault::open(key, self.message_id.as_bytes(), &bytes).map_err(|e| e.to_string())?;
        let private: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&plaintext).map_err(|e| e.to_string())?;
        if let Some(data) = self.data.as_object_mut() {
            data.extend(private);
        }
        Ok(())
    }
}

/// The key of `data` whose fields are personal, sealed before publishing.
pub const PRIVATE: &str = "private";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_cause_gives_the_same_message_id() {
        let cause = Uuid::new_v4();
        let account = Uuid::new_v4();
        let a = MailMessage::caused_by(cause, MailKind::CreditsLow, account, serde_json::json!({}));
        let b = MailMessage::caused_by(
            cause,
            MailKind::CreditsLow,
            account,
            serde_json::json!({"x": 1}),
        );
        let c = MailMessage::caused_by(
            cause,
            MailKind::SecurityNotice,
            account,
            serde_json::json!({}),
        );
        assert_eq!(a.message_id, b.message_id);
        assert_ne!(a.message_id, c.message_id);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<MailMessage>(&json).unwrap(), a);
    }

    #[test]
    fn personal_fields_travel_sealed_and_open_only_with_the_key() {
        let mut message = MailMessage::caused_by(
            Uuid::new_v4(),
            MailKind::SecurityNotice,
            Uuid::new_v4(),
            serde_json::json!({"headline": "New sign-in", "private": {"detail": "Firefox, 203.0.113.9"}}),
        );
        message.seal_private(&[7; 32]);
        let json = serde_json::to_string(&message).unwrap();
        assert!(!json.contains("203.0.113.9"), "{json}");
        assert!(json.contains("New sign-in"));
        let mut wrong = serde_json::from_str::<MailMessage>(&json).unwrap();
        assert!(wrong.open_private(&[8; 32]).is_err());
        let mut right = serde_json::from_str::<MailMessage>(&json).unwrap();
        right.open_private(&[7; 32]).unwrap();
        assert_eq!(right.data["detail"], "Firefox, 203.0.113.9");
    }
}
