//! given(events) / when(event) / then(mails) for [`decide`].

use super::*;
use domain::AccountId;
use domain::credits::{Allocation, Feature, SourceKind};

const THRESHOLD: u64 = 20;

struct Harness {
    view: View,
    account: Uuid,
}

impl Harness {
    fn new() -> Self {
        Self {
            view: View::default(),
            account: Uuid::new_v4(),
        }
    }

    fn stream(&self, category: StreamCategory) -> String {
        category.stream(self.account)
    }

    /// Applies `events` to the view, returning every mail they caused.
    fn given(&mut self, events: &[(StreamCategory, DomainEvent)]) -> Vec<MailMessage> {
        events
            .iter()
            .flat_map(|(category, event)| {
                let stream = self.stream(*category);
                decide(&mut self.view, &stream, Uuid::new_v4(), event, THRESHOLD)
            })
            .collect()
    }

    fn when(&mut self, category: StreamCategory, event: DomainEvent) -> Vec<MailKind> {
        self.given(&[(category, event)])
            .into_iter()
            .map(|m| m.kind)
            .collect()
    }
}

fn at() -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000)
}

fn credits(event: CreditsEvent) -> (StreamCategory, DomainEvent) {
    (StreamCategory::Credits, DomainEvent::Credits(event))
}

fn grant(amount: u64) -> (StreamCategory, DomainEvent) {
    credits(CreditsEvent::CreditsGranted {
        lot_id: Uuid::new_v4(),
        grant_key: Uuid::new_v4().to_string(),
        amount,
        source: SourceKind::Purchase,
        priority: 0,
        expires_at: None,
        granted_at: at(),
    })
}

fn hold(id: &str, amount: u64) -> (StreamCategory, DomainEvent) {
    credits(CreditsEvent::CreditsHeld {
        generation_id: id.into(),
        feature: Feature::Api,
        amount,
        allocations: vec![],
        held_at: at(),
        hold_expires_at: at(),
        api_token_id: Some(Uuid::new_v4()),
    })
}

fn spend(
    id: &str,
    spent: u64,
    released: u64,
    token: Option<Uuid>,
) -> (StreamCategory, DomainEvent) {
    credits(CreditsEvent::CreditsSpent {
        generation_id: id.into(),
        feature: Feature::Api,
        amount: spent,
        spent: vec![],
        released: vec![Allocation {
            lot_id: Uuid::new_v4(),
            amount: released,
        }],
        at: at(),
        api_token_id: token,
    })
}

fn toggle(toggle: Toggle, enabled: bool) -> (StreamCategory, DomainEvent) {
    (
        StreamCategory::Preferences,
        DomainEvent::Preferences(PreferencesEvent::NotificationPreferenceChanged {
            toggle,
            enabled,
            via: "settings".into(),
            at: at(),
        }),
    )
}

#[test]
fn every_completed_generation_mails_once_unless_turned_off() {
    let mut h = Harness::new();
    h.given(&[grant(100), hold("g1", 10)]);
    let (c, e) = spend("g1", 10, 0, Some(Uuid::new_v4()));
    assert_eq!(
        h.when(c, e),
        vec![MailKind::GenerationComplete],
        "through the API"
    );

    h.given(&[hold("g2", 10)]);
    let (c, e) = spend("g2", 10, 0, None);
    assert_eq!(
        h.when(c, e),
        vec![MailKind::GenerationComplete],
        "through the web app's session"
    );

    h.given(&[toggle(Toggle::GenerationComplete, false), hold("g3", 10)]);
    let (c, e) = spend("g3", 10, 0, Some(Uuid::new_v4()));
    assert_eq!(h.when(c, e), vec![]);
}

#[test]
fn credits_low_is_sent_once_per_crossing() {
    let mut h = Harness::new();
    assert!(h.given(&[grant(50)]).is_empty());
    let (c, e) = hold("g1", 35);
    assert_eq!(h.when(c, e), vec![MailKind::CreditsLow], "50 → 15");
    let (c, e) = hold("g2", 5);
    assert_eq!(h.when(c, e), vec![], "still below: no second alert");
    let (c, e) = spend("g2", 0, 5, None);
    assert_eq!(
        h.when(c, e),
        vec![MailKind::GenerationComplete],
        "15 → 15, still below: the generation's notice, no second alert"
    );
    let (c, e) = grant(100);
    assert_eq!(h.when(c, e), vec![], "back above");
    let (c, e) = hold("g3", 100);
    assert_eq!(h.when(c, e), vec![MailKind::CreditsLow], "a new crossing");
}

#[test]
fn an_account_that_never_had_credits_gets_no_alert() {
    let mut h = Harness::new();
    assert!(h.given(&[grant(10), hold("g", 5)]).is_empty());
}

#[test]
fn the_low_alert_obeys_its_toggle_but_still_tracks_the_crossing() {
    let mut h = Harness::new();
    h.given(&[toggle(Toggle::CreditsLow, false), grant(50)]);
    let (c, e) = hold("g1", 40);
    assert_eq!(h.when(c, e), vec![]);
    h.given(&[toggle(Toggle::CreditsLow, true)]);
    let (c, e) = hold("g2", 1);
    assert_eq!(
        h.when(c, e),
        vec![],
        "the crossing happened while it was off"
    );
}

#[test]
fn receipts_follow_the_invoice_to_its_account() {
    let mut h = Harness::new();
    let invoice = Uuid::new_v4();
    let issued = DomainEvent::InvoiceSeries(InvoiceSeriesEvent::InvoiceIssued {
        invoice_id: invoice,
        key: "k".into(),
        number: "2026-000001".into(),
        account_id: AccountId(h.account),
        reason: domain::invoice::InvoiceReason::Purchase,
        currency: "EUR".into(),
        lines: vec![],
        total: 900,
        issued_at: at(),
        seller: None,
    });
    let series = "invoiceseries-2026";
    assert!(decide(&mut h.view, series, Uuid::new_v4(), &issued, THRESHOLD).is_empty());
    let paid = DomainEvent::Invoice(InvoiceEvent::InvoicePaid {
        amount: domain::money::Money {
            amount: 900,
            currency: "EUR".into(),
        },
        provider_reference: "p".into(),
        paid_at: at(),
    });
    let stream = StreamCategory::Invoice.stream(invoice);
    let mails = decide(&mut h.view, &stream, Uuid::new_v4(), &paid, THRESHOLD);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].kind, MailKind::BillingReceipt);
    assert_eq!(mails[0].account_id, h.account);
    assert_eq!(mails[0].data["invoice_id"], invoice.to_string());

    h.given(&[toggle(Toggle::BillingReceipts, false)]);
    assert!(decide(&mut h.view, &stream, Uuid::new_v4(), &paid, THRESHOLD).is_empty());
}

#[test]
fn security_notices_ignore_every_toggle() {
    let mut h = Harness::new();
    h.given(
        &Toggle::ALL
            .iter()
            .map(|t| toggle(*t, false))
            .collect::<Vec<_>>(),
    );
    let account = StreamCategory::Account;
    let notices = h.given(&[
        (
            account,
            DomainEvent::Account(AccountEvent::TotpDisabled {
                second_factor: domain::account::SecondFactor::Totp { step: 1 },
                at: at(),
            }),
        ),
        (
            account,
            DomainEvent::Account(AccountEvent::RecoveryCodeUsed {
                code_hash: "h".into(),
                remaining: 9,
                at: at(),
            }),
        ),
        (
            StreamCategory::AccessToken,
            DomainEvent::AccessToken(AccessTokenEvent::AccessTokenCreated {
                account_id: AccountId(h.account),
                kind: TokenKind::Api,
                label: "ci".into(),
                scopes: vec![],
                token_hash: "x".into(),
                hint: "h".into(),
                expires_at: None,
                at: at(),
            }),
        ),
    ]);
    assert_eq!(notices.len(), 3);
    assert!(
        notices
            .iter()
            .all(|m| m.kind == MailKind::SecurityNotice && m.account_id == h.account)
    );
    assert_eq!(
        notices[1].data["private"]["detail"],
        "9 recovery codes are left."
    );
}

#[test]
fn the_same_event_decided_twice_gives_the_same_message_ids() {
    let mut first = View::default();
    let mut second = View::default();
    let account = Uuid::new_v4();
    let event = DomainEvent::Account(AccountEvent::PasswordChanged {
        password_hash: "x".into(),
        changed_at: at(),
        changed_by_session: None,
        tokens_revoked: false,
        reset_link: None,
        second_factor: None,
    });
    let stream = StreamCategory::Account.stream(account);
    let cause = Uuid::new_v4();
    let a = decide(&mut first, &stream, cause, &event, THRESHOLD);
    let b = decide(&mut second, &stream, cause, &event, THRESHOLD);
    assert_eq!(a[0].message_id, b[0].message_id);
}

#[test]
fn telegram_messages_go_only_with_their_toggle_with_ids_of_their_own() {
    let mut h = Harness::new();
    h.given(&[grant(100), hold("g1", 10)]);
    let (c, e) = spend("g1", 10, 0, None);
    assert_eq!(
        h.when(c, e),
        vec![MailKind::GenerationComplete],
        "off by default"
    );

    h.given(&[
        toggle(Toggle::TelegramGenerationComplete, true),
        toggle(Toggle::TelegramCreditsLow, true),
        hold("g2", 10),
    ]);
    let (c, e) = spend("g2", 10, 0, None);
    let mut mails = h.given(&[(c, e)]);
    mails.extend(h.given(&[hold("g3", 75)]));
    let kinds: Vec<MailKind> = mails.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        vec![
            MailKind::GenerationComplete,
            MailKind::TelegramGenerationComplete,
            MailKind::CreditsLow,
            MailKind::TelegramCreditsLow,
        ]
    );
    let ids: HashSet<Uuid> = mails.iter().map(|m| m.message_id).collect();
    assert_eq!(ids.len(), 4);

    h.given(&[toggle(Toggle::GenerationComplete, false), hold("g4", 1)]);
    let (c, e) = spend("g4", 1, 0, None);
    assert_eq!(h.when(c, e), vec![MailKind::TelegramGenerationComplete]);
}

#[test]
fn account_links_go_to_the_address_they_were_asked_for_sealed() {
    let email = || EmailAddress::parse("ada@example.com").unwrap();
    let links = [
        (
            AccountEvent::EmailVerificationRequested {
                email: email(),
                generation: 2,
                expires_at: at(),
                at: at(),
            },
            MailKind::EmailVerification,
        ),
        (
            AccountEvent::PasswordResetRequested {
                email: email(),
                generation: 2,
                expires_at: at(),
                at: at(),
            },
            MailKind::PasswordReset,
        ),
        (
            AccountEvent::EmailChangeRequested {
                email: email(),
                generation: 2,
                expires_at: at(),
                at: at(),
            },
            MailKind::EmailChange,
        ),
        (
            // The notice of a change goes to the old address and names the new one.
            AccountEvent::EmailChanged {
                old_email: email(),
                new_email: EmailAddress::parse("ada@new.example").unwrap(),
                generation: 2,
                at: at(),
            },
            MailKind::EmailChangedNotice,
        ),
    ];
    for (event, kind) in links {
        let mut h = Harness::new();
        let mut mails = h.given(&[(StreamCategory::Account, DomainEvent::Account(event))]);
        assert_eq!(mails.len(), 1);
        let mut mail = mails.pop().unwrap();
        assert_eq!(mail.kind, kind);
        assert!(kind.carries_its_address());
        assert_eq!(mail.account_id, h.account);
        assert_eq!(mail.kind.toggle(), None, "always sent");
        assert_eq!(mail.data["generation"], 2);
        mail.seal_private(&[9; 32]);
        let queued = serde_json::to_string(&mail).unwrap();
        assert!(!queued.contains("ada@example.com"), "{kind:?}");
        assert!(!queued.contains("ada@new.example"), "{kind:?}");
        mail.open_private(&[9; 32]).unwrap();
        assert_eq!(mail.data["to"], "ada@example.com");
        if kind == MailKind::EmailChangedNotice {
            assert_eq!(mail.data["new_email"], "a***@new.example");
        }
    }
}
