//! One sample of every event type in the catalogue. Personal fields hold distinctive
//! strings (at least 8 characters, found nowhere else in the event) so that a test can
//! search the stored JSON for them.

use domain::DomainEvent;
use domain::access_token::{AccessTokenEvent, DailyRequests, Scope, TokenKind, UsageEvent};
use domain::account::{AccountEvent, SecondFactor};
use domain::activity::{ActivityEvent, SessionSeen, SignInEvent, SignInFailure};
use domain::checkout::CheckoutEvent;
use domain::credits::{Allocation, CreditsEvent, Feature, ReleaseReason, SourceKind};
use domain::email::{DisplayName, EmailAddress};
use domain::invoice::{InvoiceEvent, InvoiceLine, InvoiceReason, InvoiceSeriesEvent};
use domain::money::Money;
use domain::notifications::{PreferencesEvent, Toggle};
use domain::offer::OfferEvent;
use domain::operator::{OperatorRole, OperatorTokenEvent};
use domain::profile::Bio;
use domain::purchase::PurchaseEvent;
use domain::reservation::ReservationEvent;
use domain::session::{RevocationReason, SessionOrigin};
use domain::subscription::{PlanTerms, SubscriptionEvent};
use domain::telegram::{TelegramEvent, TelegramUserEvent};
use domain::{AccountId, SessionId, Timestamp};
use uuid::Uuid;

fn at(n: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + n * 1_000_000)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn allocation(lot: u128, amount: u64) -> Vec<Allocation> {
    vec![Allocation {
        lot_id: id(lot),
        amount,
    }]
}

fn terms(plan_id: &str) -> PlanTerms {
    PlanTerms {
        plan_id: plan_id.into(),
        price: Money::new(1500, "EUR"),
        credits: 1000,
        period_secs: 30 * 24 * 3600,
        rank: 2,
    }
}

/// Every sample, grouped by the aggregates that append them.
pub fn all() -> Vec<DomainEvent> {
    let mut events = account();
    events.extend(billing());
    events.extend(tokens());
    events.extend(crate::workspace_samples::all());
    events.extend(provider_keys());
    events
}

fn provider_keys() -> Vec<DomainEvent> {
    use domain::provider_key::{CredentialKind, KeyStatus, Provider, ProviderKeyEvent as E};
    let events = [
        E::ProviderKeySet {
            provider: Provider::Google,
            version: 1,
            kind: CredentialKind::ServiceAccount,
            credential: "sealed-credential-sample".into(),
            hint: "renderer@hint-sample.iam".into(),
            service_account_email: Some("renderer@studio-sample.iam.gserviceaccount.com".into()),
            project_id: Some("studio-project-sample".into()),
            status: KeyStatus::Valid,
            problem: None,
            workspace: true,
            by: AccountId(id(1)),
            at: at(80),
        },
        E::ProviderKeyVerified {
            provider: Provider::Google,
            version: 1,
            status: KeyStatus::Invalid,
            problem: Some("API key not valid".into()),
            changed: true,
            notify: vec![AccountId(id(1))],
            workspace: true,
            by: None,
            at: at(81),
        },
        E::ProviderKeyResolved {
            provider: Provider::Google,
            version: 1,
            account_id: AccountId(id(2)),
            workspace_id: Some(id(60)),
            service_token: id(61),
            at: at(82),
        },
        E::ProviderKeyRemoved {
            provider: Provider::Google,
            by: AccountId(id(1)),
            at: at(83),
        },
    ];
    events.into_iter().map(Into::into).collect()
}

fn account() -> Vec<DomainEvent> {
    let account_id = AccountId(id(1));
    let session_id = SessionId(id(2));
    let events = [
        AccountEvent::AccountRegistered {
            account_id,
            email: EmailAddress::parse("registered.mailbox@example.com").unwrap(),
            display_name: DisplayName::parse("Registered Display Name").unwrap(),
            password_hash: "$argon2id$v=19$registered-hash".into(),
            registered_at: at(0),
        },
        AccountEvent::PasswordResetRequested {
            email: EmailAddress::parse("reset.mailbox@example.com").unwrap(),
            generation: 1,
            expires_at: at(3),
            at: at(1),
        },
        AccountEvent::PasswordChanged {
            password_hash: "$argon2id$v=19$reset-hash".into(),
            changed_at: at(2),
            changed_by_session: None,
            tokens_revoked: true,
            reset_link: Some(1),
            second_factor: Some(SecondFactor::Totp { step: 7 }),
        },
        AccountEvent::PasswordRehashed {
            password_hash: "$argon2id$v=19$rehashed".into(),
            at: at(1),
        },
        AccountEvent::EmailVerificationRequested {
            email: EmailAddress::parse("verified.mailbox@example.com").unwrap(),
            generation: 2,
            expires_at: at(3),
            at: at(1),
        },
        AccountEvent::EmailVerified {
            generation: 2,
            at: at(2),
        },
        AccountEvent::DataExported {
            session_id,
            at: at(2),
        },
        AccountEvent::EmailChangeRequested {
            email: EmailAddress::parse("moving.mailbox@example.com").unwrap(),
            generation: 1,
            expires_at: at(3),
            at: at(1),
        },
        AccountEvent::EmailChangeCancelled {
            generation: 1,
            at: at(2),
        },
        AccountEvent::EmailChanged {
            old_email: EmailAddress::parse("left.mailbox@example.com").unwrap(),
            new_email: EmailAddress::parse("moved.mailbox@example.com").unwrap(),
            generation: 2,
            at: at(2),
        },
        AccountEvent::SessionStarted {
            session_id,
            token_hash: "started-token-hash".into(),
            started_at: at(2),
            expires_at: at(3),
            origin: SessionOrigin {
                device: "Origin Device Firefox".into(),
                ip: Some("198.51.100.23".into()),
                user_agent: Some("Mozilla/5.0 OriginAgent".into()),
                location: Some("Origin Location, FR".into()),
            },
            second_factor: Some(SecondFactor::Totp { step: 42 }),
        },
        AccountEvent::NewDeviceSignedIn {
            session_id,
            device: "New Device Safari".into(),
            ip: Some("203.0.113.77".into()),
            location: Some("New Location, DE".into()),
            at: at(4),
        },
        AccountEvent::SessionReauthenticated {
            session_id,
            second_factor: Some(SecondFactor::RecoveryCode {
                code_hash: "reauth-code-hash".into(),
            }),
            at: at(5),
        },
        AccountEvent::SessionRevoked {
            session_id,
            reason: RevocationReason::SignedOutOthers,
            revoked_at: at(6),
        },
        AccountEvent::TotpEnrollmentStarted {
            secret: "JBSWY3DPEHPK3PXPTOTPSECRET".into(),
            at: at(7),
        },
        AccountEvent::TotpEnabled {
            recovery_code_hashes: vec!["code-hash-1".into(), "code-hash-2".into()],
            step: 43,
            at: at(8),
        },
        AccountEvent::TotpDisabled {
            second_factor: SecondFactor::Totp { step: 44 },
            at: at(9),
        },
        AccountEvent::RecoveryCodesRegenerated {
            recovery_code_hashes: vec!["code-hash-3".into()],
            at: at(10),
        },
        AccountEvent::RecoveryCodeUsed {
            code_hash: "code-hash-3".into(),
            remaining: 9,
            at: at(11),
        },
        AccountEvent::ProfileUpdated {
            display_name: Some(DisplayName::parse("Updated Display Name").unwrap()),
            bio: Some(Bio::parse("Updated biography text").unwrap()),
            public_profile: Some(true),
            at: at(12),
        },
        AccountEvent::AvatarChanged {
            blob_key: "avatar-blob-1".into(),
            content_type: "image/png".into(),
            at: at(13),
        },
        AccountEvent::AvatarRemoved {
            blob_key: "avatar-blob-1".into(),
            at: at(14),
        },
        AccountEvent::AccountDeleted {
            reservation_stream: "email-0123abcd".into(),
            avatar_blob_key: Some("avatar-blob-2".into()),
            at: at(15),
        },
        AccountEvent::AccountErased { at: at(16) },
    ];
    let reservations = [
        ReservationEvent::EmailReserved {
            account_id,
            at: at(0),
        },
        ReservationEvent::EmailReleased {
            account_id,
            at: at(16),
        },
    ];
    let activity = ActivityEvent::SessionsActive {
        sessions: vec![SessionSeen {
            session_id,
            last_active_at: at(17),
        }],
    };
    let preferences = PreferencesEvent::NotificationPreferenceChanged {
        toggle: Toggle::Newsletter,
        enabled: true,
        via: "settings".into(),
        at: at(18),
    };
    let mut all: Vec<DomainEvent> = events.into_iter().map(Into::into).collect();
    all.extend(reservations.into_iter().map(DomainEvent::from));
    all.push(activity.into());
    all.push(
        SignInEvent::SignInFailed {
            reason: SignInFailure::Password,
            origin: SessionOrigin {
                device: "Firefox 128 on Linux".into(),
                ip: Some("192.0.2.7".into()),
                user_agent: Some("Mozilla/5.0".into()),
                location: Some("Paris, FR".into()),
            },
            at: at(17),
        }
        .into(),
    );
    all.push(preferences.into());
    all.extend(
        [
            TelegramEvent::TelegramLinkRequested {
                token_hash: "ab12".into(),
                expires_at: at(20),
                at: at(19),
            },
            TelegramEvent::TelegramLinked {
                token_hash: "ab12".into(),
                user_key: "cd34".into(),
                chat_id: "918273645501".into(),
                user_id: "918273645502".into(),
                username: Some("telegram_ada_lovelace".into()),
                at: at(19),
            },
            TelegramEvent::TelegramUnlinked {
                user_key: "cd34".into(),
                reason: "stop".into(),
                at: at(19),
            },
        ]
        .into_iter()
        .map(DomainEvent::from),
    );
    all.extend(
        [
            TelegramUserEvent::TelegramUserLinked {
                account_id,
                previous: Some(AccountId(id(2))),
                at: at(19),
            },
            TelegramUserEvent::TelegramUserUnlinked {
                account_id,
                at: at(19),
            },
        ]
        .into_iter()
        .map(DomainEvent::from),
    );
    all
}

fn billing() -> Vec<DomainEvent> {
    let account_id = AccountId(id(1));
    let credits = [
        CreditsEvent::CreditsGranted {
            lot_id: id(10),
            grant_key: "purchase:abc".into(),
            amount: 500,
            source: SourceKind::Purchase,
            priority: SourceKind::Purchase.priority(),
            expires_at: Some(at(100)),
            granted_at: at(20),
        },
        CreditsEvent::CreditsHeld {
            generation_id: "gen-1".into(),
            feature: Feature::Generation,
            amount: 30,
            allocations: allocation(10, 30),
            held_at: at(21),
            hold_expires_at: at(22),
            api_token_id: Some(id(30)),
        },
        CreditsEvent::CreditsSpent {
            generation_id: "gen-1".into(),
            feature: Feature::Generation,
            amount: 20,
            spent: allocation(10, 20),
            released: allocation(10, 10),
            at: at(23),
            api_token_id: Some(id(30)),
        },
        CreditsEvent::HoldReleased {
            generation_id: "gen-2".into(),
            feature: Feature::Rendering,
            reason: ReleaseReason::TimedOut,
            released: allocation(10, 5),
            at: at(24),
            api_token_id: None,
        },
        CreditsEvent::CreditsExpired {
            lot_id: id(10),
            amount: 480,
            at: at(25),
        },
    ];
    let subscription = [
        SubscriptionEvent::SubscriptionStarted {
            terms: terms("pro"),
            period_start: at(30),
            period_end: at(31),
        },
        SubscriptionEvent::PlanUpgraded {
            from_plan: "pro".into(),
            terms: terms("studio"),
            at: at(32),
            period_end: at(31),
            prorated_charge: Money::new(700, "EUR"),
            prorated_credits: 400,
        },
        SubscriptionEvent::PlanChangeScheduled {
            plan_id: "pro".into(),
            effective_at: at(31),
            terms: Some(terms("pro")),
        },
        SubscriptionEvent::PlanChangeCancelled { at: at(33) },
        SubscriptionEvent::CancellationScheduled {
            effective_at: at(31),
            at: at(34),
        },
        SubscriptionEvent::SubscriptionResumed { at: at(35) },
        SubscriptionEvent::SubscriptionRenewed {
            terms: terms("studio"),
            period_start: at(31),
            period_end: at(36),
        },
        SubscriptionEvent::SubscriptionEnded { at: at(36) },
    ];
    let issued = InvoiceSeriesEvent::InvoiceIssued {
        invoice_id: id(40),
        key: "purchase:abc".into(),
        number: "2027-000001".into(),
        account_id,
        reason: InvoiceReason::Purchase,
        currency: "EUR".into(),
        lines: vec![InvoiceLine::new("500 credits", 1, 900)],
        total: 900,
        issued_at: at(41),
        seller: Some(Box::new(domain::invoice::Seller {
            name: "Example Studio Ltd".into(),
            address: vec!["1 Example Street".into()],
            tax_id: Some("FR00 000000000".into()),
            tax_rate_basis_points: 2000,
        })),
    };
    let paid = InvoiceEvent::InvoicePaid {
        amount: Money::new(900, "EUR"),
        provider_reference: "pi_123".into(),
        paid_at: at(42),
    };
    let purchase = [
        PurchaseEvent::PurchaseStarted {
            account_id,
            pack_id: "pack-500".into(),
            credits: 500,
            price: Money::new(900, "EUR"),
            checkout_session_id: "cs_123".into(),
            at: at(43),
        },
        PurchaseEvent::PurchaseCompleted {
            provider_event_id: "evt_123".into(),
            at: at(44),
        },
    ];
    let checkouts = [
        CheckoutEvent::CheckoutOpened {
            purchase_id: id(46),
            expires_at: at(47),
            at: at(43),
        },
        CheckoutEvent::CheckoutClosed {
            purchase_id: id(46),
            at: at(44),
        },
    ];
    let claim = OfferEvent::ClaimRedeemed {
        account_id,
        credits: 50,
        at: at(45),
    };
    let mut all: Vec<DomainEvent> = credits.into_iter().map(Into::into).collect();
    all.extend(subscription.into_iter().map(DomainEvent::from));
    all.push(issued.into());
    all.push(paid.into());
    all.extend(purchase.into_iter().map(DomainEvent::from));
    all.extend(checkouts.into_iter().map(DomainEvent::from));
    all.push(claim.into());
    all
}

fn tokens() -> Vec<DomainEvent> {
    let admin = [
        OperatorTokenEvent::OperatorTokenCreated {
            token_hash: "admin-token-hash".into(),
            role: OperatorRole::Auditor,
            label: "reconciliation job".into(),
            at: at(50),
            expires_at: Some(at(52)),
        },
        OperatorTokenEvent::OperatorTokenRevoked { at: at(51) },
    ];
    let access = [
        AccessTokenEvent::AccessTokenCreated {
            account_id: AccountId(id(1)),
            kind: TokenKind::Api,
            label: "render farm".into(),
            scopes: vec![Scope::CreditsRead, Scope::GenerationsWrite],
            token_hash: "access-token-hash".into(),
            hint: "vsk_…abcd".into(),
            expires_at: Some(at(90)),
            at: at(52),
        },
        AccessTokenEvent::AccessTokenRotated {
            token_hash: "access-token-hash-2".into(),
            hint: "vsk_…efgh".into(),
            previous_hash: "access-token-hash".into(),
            previous_valid_until: at(54),
            at: at(53),
        },
        AccessTokenEvent::AccessTokenRevoked { at: at(55) },
    ];
    // What the account records of its tokens, to count them.
    let counted = [
        AccountEvent::AccessTokenIssued {
            token_id: id(31),
            kind: TokenKind::CliDevice,
            expires_at: Some(at(91)),
            at: at(52),
        },
        AccountEvent::AccessTokenRetired {
            token_id: id(31),
            at: at(55),
        },
    ];
    let usage = UsageEvent::TokenUsed {
        token_id: id(30),
        days: vec![DailyRequests {
            day: "2027-01-15".into(),
            ok: 12,
            client_errors: 1,
            server_errors: 0,
        }],
        last_used_at: at(56),
        last_ip: Some("192.0.2.145".into()),
        last_user_agent: Some("curl/8.5.0 UsageAgent".into()),
    };
    let mut all: Vec<DomainEvent> = admin.into_iter().map(Into::into).collect();
    all.extend(access.into_iter().map(DomainEvent::from));
    all.extend(counted.into_iter().map(DomainEvent::from));
    all.push(usage.into());
    all
}
