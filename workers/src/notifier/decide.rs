//! Which e-mails an event causes: a pure function of the event and the notifier's view
//! (preferences, balances, invoice owners) as of the event before it.

use crate::mail::{MailKind, MailMessage};
use domain::access_token::{AccessTokenEvent, TokenKind};
use domain::account::AccountEvent;
use domain::credits::CreditsEvent;
use domain::email::EmailAddress;
use domain::invoice::{InvoiceEvent, InvoiceSeriesEvent};
use domain::notifications::{PreferencesEvent, Toggle};
use domain::provider_key::ProviderKeyEvent;
use domain::{DomainEvent, StreamCategory, Timestamp};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// An account's balance as the notifier folds it, and whether it is below the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// Credits neither held, spent nor expired.
    pub balance: i64,
    /// Below the alert threshold (an alert was sent, or it never was above).
    pub low: bool,
}

impl Default for Balance {
    /// A new account: nothing, and no alert until it has been above the threshold.
    fn default() -> Self {
        Self {
            balance: 0,
            low: true,
        }
    }
}

/// The notifier's view; the caller loads the rows an event needs before deciding, and
/// saves what changed with the checkpoint.
#[derive(Debug, Default)]
pub struct View {
    /// Toggles set explicitly (absent: the default).
    pub preferences: HashMap<(Uuid, Toggle), bool>,
    /// Balances.
    pub balances: HashMap<Uuid, Balance>,
    /// Invoice → (account, number).
    pub invoices: HashMap<Uuid, (Uuid, String)>,
    /// Accounts deleted: their rows go.
    pub forgotten: HashSet<Uuid>,
    /// Rows changed, to save.
    pub changed_preferences: HashSet<(Uuid, Toggle)>,
    /// Balances changed, to save.
    pub changed_balances: HashSet<Uuid>,
    /// Invoices learnt, to save.
    pub new_invoices: HashSet<Uuid>,
}

impl View {
    fn enabled(&self, account: Uuid, toggle: Toggle) -> bool {
        self.preferences
            .get(&(account, toggle))
            .copied()
            .unwrap_or(toggle.default_enabled())
    }
}

/// What the caller must load for `event`: the account it concerns and the invoice it pays.
pub fn touches(stream: &str, event: &DomainEvent) -> (Option<Uuid>, Option<Uuid>) {
    let id_in = |category: StreamCategory| {
        category
            .id_in(stream)
            .and_then(|id| Uuid::parse_str(id).ok())
    };
    match event {
        DomainEvent::Account(_) => (id_in(StreamCategory::Account), None),
        DomainEvent::Preferences(_) => (id_in(StreamCategory::Preferences), None),
        DomainEvent::Credits(_) => (id_in(StreamCategory::Credits), None),
        DomainEvent::AccessToken(AccessTokenEvent::AccessTokenCreated { account_id, .. }) => {
            (Some(account_id.0), None)
        }
        DomainEvent::InvoiceSeries(InvoiceSeriesEvent::InvoiceIssued { account_id, .. }) => {
            (Some(account_id.0), None)
        }
        DomainEvent::Invoice(_) => (None, id_in(StreamCategory::Invoice)),
        _ => (None, None),
    }
}

fn security(
    cause: Uuid,
    account: Uuid,
    headline: &str,
    detail: String,
    at: Timestamp,
) -> MailMessage {
    MailMessage::caused_by(
        cause,
        MailKind::SecurityNotice,
        account,
        // The detail names devices, IPs and labels: personal, so sealed before publishing.
        json!({ "headline": headline, "at": at.to_string(), "private": { "detail": detail } }),
    )
}

/// A mail carrying an account link of `generation` (which the mailer derives again) to
/// `email`, sealed in the queue; `expires_at` when the mail gives the link's date.
fn link_mail(
    cause: Uuid,
    kind: MailKind,
    account: Uuid,
    email: &EmailAddress,
    generation: u32,
    expires_at: Option<Timestamp>,
) -> MailMessage {
    let mut data = json!({ "generation": generation, "private": { "to": email.as_str() } });
    if let (Some(expires_at), Some(fields)) = (expires_at, data.as_object_mut()) {
        fields.insert("expires_at".into(), expires_at.human_date().into());
    }
    MailMessage::caused_by(cause, kind, account, data)
}

/// The e-mails `event` (id `cause`, in `stream`) causes, updating `view`. `threshold` is
/// the credits-low alert threshold.
pub fn decide(
    view: &mut View,
    stream: &str,
    cause: Uuid,
    event: &DomainEvent,
    threshold: u64,
) -> Vec<MailMessage> {
    let (account, invoice) = touches(stream, event);
    let mut mails = Vec::new();
    match (event, account) {
        (
            DomainEvent::Preferences(PreferencesEvent::NotificationPreferenceChanged {
                toggle,
                enabled,
                ..
            }),
            Some(account),
        ) => {
            view.preferences.insert((account, *toggle), *enabled);
            view.changed_preferences.insert((account, *toggle));
        }
        (DomainEvent::Account(event), Some(account)) => {
            let notice = match event {
                AccountEvent::NewDeviceSignedIn {
                    device,
                    ip,
                    location,
                    at,
                    ..
                } => {
                    let mut detail = device.clone();
                    for part in [ip, location].into_iter().flatten() {
                        detail.push_str(", ");
                        detail.push_str(part);
                    }
                    Some(("New sign-in from a new device", detail, *at))
                }
                AccountEvent::PasswordChanged { changed_at, .. } => Some((
                    "Your password was changed",
                    "If this was not you, reset your password and sign out other sessions."
                        .to_owned(),
                    *changed_at,
                )),
                AccountEvent::DataExported { at, .. } => Some((
                    "A copy of your account's data was downloaded",
                    "If this was not you, sign out other sessions and change your password."
                        .to_owned(),
                    *at,
                )),
                AccountEvent::TotpEnabled { at, .. } => Some((
                    "Two-factor authentication is on",
                    "Sign-ins now need a code from your authenticator app.".to_owned(),
                    *at,
                )),
                AccountEvent::TotpDisabled { at, .. } => Some((
                    "Two-factor authentication is off",
                    "Sign-ins no longer need a second factor.".to_owned(),
                    *at,
                )),
                AccountEvent::RecoveryCodeUsed { remaining, at, .. } => Some((
                    "A recovery code was used",
                    format!("{remaining} recovery codes are left."),
                    *at,
                )),
                AccountEvent::AccountDeleted { .. } => {
                    view.forgotten.insert(account);
                    None
                }
                AccountEvent::EmailVerificationRequested {
                    email,
                    generation,
                    expires_at,
                    ..
                } => {
                    // To the address the link proves.
                    let kind = MailKind::EmailVerification;
                    let dated = Some(*expires_at);
                    mails.push(link_mail(cause, kind, account, email, *generation, dated));
                    None
                }
                AccountEvent::EmailChangeRequested {
                    email,
                    generation,
                    expires_at,
                    ..
                } => {
                    // To the new address.
                    let dated = Some(*expires_at);
                    let kind = MailKind::EmailChange;
                    mails.push(link_mail(cause, kind, account, email, *generation, dated));
                    None
                }
                AccountEvent::EmailChanged {
                    old_email,
                    new_email,
                    generation,
                    at,
                } => {
                    // To the old address, which may be someone else's by now (a mailbox
                    // recycled by its domain): the new address masked, enough for the
                    // owner to recognise it or to see that it is not theirs.
                    mails.push(MailMessage::caused_by(
                        cause,
                        MailKind::EmailChangedNotice,
                        account,
                        json!({
                            "generation": generation,
                            "at": at.human_date(),
                            "private": {
                                "to": old_email.as_str(),
                                "new_email": new_email.masked(),
                            },
                        }),
                    ));
                    None
                }
                AccountEvent::PasswordResetRequested {
                    email, generation, ..
                } => {
                    // To the address it was asked for (the mail says "within the hour").
                    let kind = MailKind::PasswordReset;
                    mails.push(link_mail(cause, kind, account, email, *generation, None));
                    None
                }
                _ => None,
            };
            if let Some((headline, detail, at)) = notice {
                mails.push(security(cause, account, headline, detail, at));
            }
        }
        (
            DomainEvent::AccessToken(AccessTokenEvent::AccessTokenCreated {
                kind, label, at, ..
            }),
            Some(account),
        ) => {
            let headline = match kind {
                TokenKind::Api => "A new API token was created",
                TokenKind::CliDevice | TokenKind::CliRecorder => "A new CLI token was created",
            };
            mails.push(security(
                cause,
                account,
                headline,
                format!("Label: {label}"),
                *at,
            ));
        }
        (DomainEvent::Credits(event), Some(account)) => {
            let delta: i64 = match event {
                CreditsEvent::CreditsGranted { amount, .. } => *amount as i64,
                CreditsEvent::CreditsHeld { amount, .. } => -(*amount as i64),
                CreditsEvent::CreditsSpent { released, .. }
                | CreditsEvent::HoldReleased { released, .. } => {
                    released.iter().map(|a| a.amount as i64).sum()
                }
                CreditsEvent::CreditsExpired { amount, .. } => -(*amount as i64),
            };
            // Every completed generation, whichever surface settled it (the web app's
            // session or an API token).
            if let CreditsEvent::CreditsSpent {
                generation_id,
                feature,
                amount,
                ..
            } = event
            {
                let data = json!({ "generation_id": generation_id, "credits": amount, "feature": feature });
                // The e-mail and the Telegram message are two messages with ids of their
                // own (derived from the event and the kind).
                for (toggle, kind) in [
                    (Toggle::GenerationComplete, MailKind::GenerationComplete),
                    (
                        Toggle::TelegramGenerationComplete,
                        MailKind::TelegramGenerationComplete,
                    ),
                ] {
                    if view.enabled(account, toggle) {
                        mails.push(MailMessage::caused_by(cause, kind, account, data.clone()));
                    }
                }
            }
            let balance = view.balances.entry(account).or_default();
            balance.balance += delta;
            let threshold = threshold as i64;
            let crossed = !balance.low && balance.balance < threshold;
            balance.low = balance.balance < threshold;
            let now = balance.balance;
            view.changed_balances.insert(account);
            if crossed {
                for (toggle, kind) in [
                    (Toggle::CreditsLow, MailKind::CreditsLow),
                    (Toggle::TelegramCreditsLow, MailKind::TelegramCreditsLow),
                ] {
                    if view.enabled(account, toggle) {
                        mails.push(MailMessage::caused_by(
                            cause,
                            kind,
                            account,
                            json!({ "balance": now, "threshold": threshold }),
                        ));
                    }
                }
            }
        }
        (
            DomainEvent::InvoiceSeries(InvoiceSeriesEvent::InvoiceIssued {
                invoice_id,
                number,
                ..
            }),
            Some(account),
        ) => {
            view.invoices.insert(*invoice_id, (account, number.clone()));
            view.new_invoices.insert(*invoice_id);
        }
        (DomainEvent::Invoice(InvoiceEvent::InvoicePaid { .. }), None) => {
            if let Some((account, number)) = invoice.and_then(|i| view.invoices.get(&i)).cloned()
                && view.enabled(account, Toggle::BillingReceipts)
            {
                mails.push(MailMessage::caused_by(
                    cause,
                    MailKind::BillingReceipt,
                    account,
                    json!({ "invoice_id": invoice, "number": number }),
                ));
            }
        }
        (DomainEvent::Workspace(event), _) => {
            mails.extend(super::workspace_mail::decide(stream, cause, event));
        }
        (
            DomainEvent::ProviderKey(ProviderKeyEvent::ProviderKeyVerified {
                provider,
                problem,
                notify,
                workspace,
                ..
            }),
            _,
        ) => {
            let whose = if *workspace { "A workspace's" } else { "Your" };
            let headline = format!("{whose} {} key stopped working", provider.title());
            let detail = format!(
                "{} refused it: {}. Generations fall back to the platform's key until a new one is saved",
                provider.title(),
                problem.as_deref().unwrap_or("no reason given")
            );
            mails.extend(notify.iter().map(|account| {
                MailMessage::caused_by(
                    Uuid::new_v5(&cause, account.0.as_bytes()),
                    MailKind::ProviderKeyNotice,
                    account.0,
                    json!({ "headline": headline, "private": { "detail": detail } }),
                )
            }));
        }
        _ => {}
    }
    mails
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
