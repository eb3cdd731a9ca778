//! `GET /admin/audit/accounts/{id}/state` and `accounts audit state`: the account as it
//! was at an instant, folded from its events recorded until then (inclusive) by the
//! aggregates' own `evolve` (`domain::Aggregate`), never by a second copy of the rules.
//!
//! Workspaces are folded from their whole streams up to the instant (not only the events
//! of the account's membership), since a workspace's members and name depend on what
//! happened before the account joined. Events whose personal data was erased cannot be
//! folded (as when commands load a stream); the state then says `erased: true`.

use super::{AuditError, Auditor};
use domain::access_token::{AccessToken, TokenKind};
use domain::account::Account;
use domain::activity::ActivityEvent;
use domain::credits::{CreditLedger, SourceKind};
use domain::invoice::{InvoicePayment, InvoiceSeriesEvent};
use domain::notifications::{NotificationPreferences, Toggle};
use domain::provider_key::{KeyStatus, Provider, ProviderKeys};
use domain::session::{ActiveSession, SessionOrigin};
use domain::subscription::Subscription;
use domain::telegram::TelegramLink;
use domain::workspace::Workspace;
use domain::{AccountId, Aggregate, DomainEvent, SessionId, StreamCategory, Timestamp};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use store::{GlobalPosition, Payload, RecordedEvent};
use utoipa::ToSchema;
use uuid::Uuid;

/// The account at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountState {
    /// The account.
    pub account_id: Uuid,
    /// The instant, as asked (or now).
    #[schema(value_type = String, format = DateTime)]
    pub as_of: Timestamp,
    /// The log position of the last event folded (0: none).
    pub position: u64,
    /// Events folded.
    pub events: u64,
    /// Registered and not deleted then.
    pub registered: bool,
    /// Deleted by then.
    pub deleted: bool,
    /// Some of its events could not be opened (its key is destroyed): what they said is
    /// missing from this state.
    pub erased: bool,
    /// The profile.
    pub profile: ProfileState,
    /// The account had proved it holds its address.
    pub email_verified: bool,
    /// Two-factor authentication was on.
    pub totp_enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Sessions live then (started, not revoked, not expired).
    pub sessions: Vec<SessionState>,
    /// The credit ledger.
    pub credits: CreditsState,
    /// The plan in force, if any.
    pub subscription: Option<SubscriptionState>,
    /// Invoices issued by then.
    pub invoices: Vec<InvoiceState>,
    /// API and CLI tokens live then.
    pub tokens: Vec<TokenState>,
    /// Each notification toggle, on or off.
    pub notifications: BTreeMap<String, bool>,
    /// Provider keys present (never their secret).
    #[schema(value_type = Vec<Object>)]
    pub provider_keys: Vec<ProviderKeyState>,
    /// Workspaces it was a member of, with its role.
    pub workspaces: Vec<WorkspaceState>,
    /// A Telegram chat was linked.
    pub telegram_linked: bool,
}

/// The profile at an instant.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ProfileState {
    /// The address (absent once erased).
    pub email: Option<String>,
    /// The display name.
    pub display_name: Option<String>,
    /// The bio.
    pub bio: Option<String>,
    /// The creator profile was public.
    pub public_profile: bool,
    /// An avatar was set.
    pub has_avatar: bool,
    /// When it registered.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub registered_at: Option<Timestamp>,
}

/// A session live at the instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionState {
    /// The session.
    pub session_id: Uuid,
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// Its absolute expiry.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    /// e.g. "Firefox 128 on Linux" (absent once erased).
    pub device: Option<String>,
    /// Where from (absent once erased or unknown).
    pub location: Option<String>,
}

/// The credit ledger at an instant.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CreditsState {
    /// Credits that could be held or spent then (lots not expired by then).
    pub available: u64,
    /// Credits in lots without an expiry event (the read model's balance).
    pub balance: u64,
    /// Credits held by open holds.
    pub held: u64,
    /// Every lot with credits left or not.
    pub lots: Vec<LotState>,
}

/// A lot of credits at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LotState {
    /// The lot.
    pub lot_id: Uuid,
    /// Where from.
    #[schema(value_type = String)]
    pub source: SourceKind,
    /// Credits granted.
    pub amount: u64,
    /// Credits left.
    pub remaining: u64,
    /// When it stops counting.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// It counted then.
    pub usable: bool,
}

/// The plan at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionState {
    /// The plan.
    pub plan_id: String,
    /// End of the paid period.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub period_end: Option<Timestamp>,
    /// It ends at the period's end.
    pub cancel_at_period_end: bool,
    /// The plan the next period renews into, if not this one.
    pub scheduled_plan: Option<String>,
}

/// An invoice at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceState {
    /// The invoice.
    pub invoice_id: Uuid,
    /// Its number.
    pub number: String,
    /// Its total, in minor units of `currency`.
    pub total: i64,
    /// The currency.
    pub currency: String,
    /// Paid by then.
    pub paid: bool,
    /// When issued.
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: Timestamp,
}

/// A token live at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TokenState {
    /// The token.
    pub token_id: Uuid,
    /// API or CLI.
    #[schema(value_type = String)]
    pub kind: Option<TokenKind>,
    /// Its end of life, if any.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// A provider key present at an instant.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderKeyState {
    /// The provider.
    pub provider: Provider,
    /// Its version (bumped by each save).
    pub version: u32,
    /// Its last verification.
    pub status: KeyStatus,
    /// When saved.
    pub updated_at: Timestamp,
}

/// A workspace membership at an instant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkspaceState {
    /// The workspace.
    pub workspace_id: Uuid,
    /// Its name (absent once the workspace's key is destroyed).
    pub name: Option<String>,
    /// The account's role.
    pub role: String,
    /// Since when.
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: Timestamp,
}

/// Folds events into an aggregate, skipping those of other aggregates.
fn fold<A>(state: &mut A, events: &[DomainEvent])
where
    A: Aggregate,
    A::Event: TryFrom<DomainEvent>,
{
    for event in events {
        if let Ok(event) = A::Event::try_from(event.clone()) {
            state.evolve(&event);
        }
    }
}

/// The decoded events of the account up to an instant, by stream.
#[derive(Default)]
struct Streams {
    by_stream: BTreeMap<String, Vec<DomainEvent>>,
    order: Vec<String>,
    origins: HashMap<SessionId, SessionOrigin>,
    erased: bool,
}

impl Streams {
    fn push(&mut self, stream: String, payload: Payload) {
        match payload {
            Payload::Event(event) => {
                if let DomainEvent::Account(domain::account::AccountEvent::SessionStarted {
                    session_id,
                    origin,
                    ..
                }) = &event
                {
                    self.origins.insert(*session_id, origin.clone());
                }
                if !self.by_stream.contains_key(&stream) {
                    self.order.push(stream.clone());
                }
                self.by_stream.entry(stream).or_default().push(event);
            }
            Payload::Erased { .. } => self.erased = true,
            Payload::Unknown => {}
        }
    }

    fn of(&self, stream: &str) -> &[DomainEvent] {
        self.by_stream.get(stream).map_or(&[], Vec::as_slice)
    }

    fn in_category(
        &self,
        category: StreamCategory,
    ) -> impl Iterator<Item = (&str, &[DomainEvent])> {
        self.order
            .iter()
            .filter(move |s| StreamCategory::of_stream(s) == Some(category))
            .map(|s| (s.as_str(), self.of(s)))
    }
}

impl Auditor {
    /// The account as it was at `as_of` (events recorded then or before).
    #[tracing::instrument(skip_all, fields(%account, %as_of))]
    pub async fn state(
        &self,
        account: AccountId,
        as_of: Timestamp,
    ) -> Result<AccountState, AuditError> {
        self.check_account(account).await?;
        let mut streams = Streams::default();
        let (mut position, mut count) = (0, 0);
        let mut events = self.account_events(account, GlobalPosition::START).await?;
        while let Some(recorded) = events.next().await? {
            if recorded.recorded_at > as_of
                || StreamCategory::of_stream(&recorded.stream) == Some(StreamCategory::Workspace)
            {
                continue;
            }
            position = recorded.position.0;
            count += 1;
            self.decode_into(&mut streams, recorded).await?;
        }
        let mut workspaces = Vec::new();
        for workspace in events.workspaces_ever().to_vec() {
            let stream = StreamCategory::Workspace.stream(&workspace);
            let recorded = self
                .log
                .read_stream_to_end(&stream)
                .await
                .map_err(AuditError::failed)?;
            let mut state = Workspace::default();
            for recorded in recorded.into_iter().filter(|e| e.recorded_at <= as_of) {
                // A deleted workspace's key, or an answered invitation's, is destroyed:
                // its events still say who joined, left and was removed, without the
                // names and addresses.
                let decoded = self
                    .codec
                    .decode(recorded)
                    .await
                    .map_err(AuditError::failed)?;
                let event = match decoded.payload {
                    Payload::Event(event) => Some(event),
                    Payload::Erased { redacted } => redacted.map(|event| *event),
                    Payload::Unknown => None,
                };
                if let Some(DomainEvent::Workspace(event)) = event {
                    state.evolve(&event);
                }
            }
            if let (Some(member), false) = (state.members.get(&account), state.deleted) {
                workspaces.push(WorkspaceState {
                    workspace_id: workspace.parse().unwrap_or_default(),
                    name: state.name.clone().filter(|name| !name.is_empty()),
                    role: member.role.as_str().to_owned(),
                    joined_at: member.joined_at,
                });
            }
        }
        let own = |category: StreamCategory| category.stream(account);
        let mut profile = Account::default();
        fold(&mut profile, streams.of(&own(StreamCategory::Account)));
        let mut ledger = CreditLedger::default();
        fold(&mut ledger, streams.of(&own(StreamCategory::Credits)));
        let mut subscription = Subscription::default();
        fold(
            &mut subscription,
            streams.of(&own(StreamCategory::Subscription)),
        );
        let mut preferences = NotificationPreferences::default();
        fold(
            &mut preferences,
            streams.of(&own(StreamCategory::Preferences)),
        );
        let mut keys = ProviderKeys::default();
        fold(&mut keys, streams.of(&own(StreamCategory::ProviderKeys)));
        let mut telegram = TelegramLink::default();
        fold(&mut telegram, streams.of(&own(StreamCategory::Telegram)));

        // A session's last request, as flushed to its activity stream: one idle for the
        // idle timeout at the instant had ended, as the service answered then.
        let mut last_active: HashMap<SessionId, Timestamp> = HashMap::new();
        for event in streams.of(&own(StreamCategory::Activity)) {
            if let DomainEvent::Activity(ActivityEvent::SessionsActive { sessions }) = event {
                for seen in sessions {
                    let last = last_active
                        .entry(seen.session_id)
                        .or_insert(seen.last_active_at);
                    *last = (*last).max(seen.last_active_at);
                }
            }
        }
        let idle = |id: &SessionId, session: &ActiveSession| {
            let last = last_active
                .get(id)
                .map_or(session.started_at, |seen| (*seen).max(session.started_at));
            as_of.since(last) >= self.session_idle_timeout
        };
        let sessions = profile
            .sessions
            .iter()
            .filter(|(id, session)| !session.is_expired(as_of) && !idle(id, session))
            .map(|(id, session)| {
                let origin = streams.origins.get(id);
                SessionState {
                    session_id: id.0,
                    started_at: session.started_at,
                    expires_at: session.expires_at,
                    device: origin.map(|o| o.device.clone()),
                    location: origin.and_then(|o| o.location.clone()),
                }
            })
            .collect();
        let tokens = streams
            .in_category(StreamCategory::AccessToken)
            .filter_map(|(stream, events)| {
                let mut token = AccessToken::default();
                fold(&mut token, events);
                let live = token.account_id == Some(account)
                    && !token.revoked
                    && token.expires_at.is_none_or(|at| at > as_of);
                let token_id = StreamCategory::AccessToken.id_in(stream)?.parse().ok()?;
                live.then_some(TokenState {
                    token_id,
                    kind: token.kind,
                    expires_at: token.expires_at,
                })
            })
            .collect();
        let invoices = streams
            .in_category(StreamCategory::InvoiceSeries)
            .flat_map(|(_, events)| events.iter())
            .filter_map(|event| match event {
                DomainEvent::InvoiceSeries(InvoiceSeriesEvent::InvoiceIssued {
                    invoice_id,
                    number,
                    currency,
                    total,
                    issued_at,
                    ..
                }) => {
                    let mut payment = InvoicePayment::default();
                    fold(
                        &mut payment,
                        streams.of(&StreamCategory::Invoice.stream(invoice_id)),
                    );
                    Some(InvoiceState {
                        invoice_id: *invoice_id,
                        number: number.clone(),
                        total: *total,
                        currency: currency.clone(),
                        paid: payment.paid,
                        issued_at: *issued_at,
                    })
                }
                _ => None,
            })
            .collect();

        Ok(AccountState {
            account_id: account.0,
            as_of,
            position,
            events: count,
            registered: profile.is_registered(),
            deleted: profile.deleted,
            erased: streams.erased,
            profile: ProfileState {
                email: profile.email.as_ref().map(|e| e.as_str().to_owned()),
                display_name: profile.display_name.as_ref().map(|n| n.as_str().to_owned()),
                bio: profile.bio.as_ref().map(|b| b.as_str().to_owned()),
                public_profile: profile.public_profile,
                has_avatar: profile.avatar.is_some(),
                registered_at: profile.registered_at,
            },
            email_verified: profile.email_verification.is_verified(),
            totp_enabled: profile.totp.enabled(),
            recovery_codes_left: profile.totp.recovery_codes.len(),
            sessions,
            credits: CreditsState {
                available: ledger.available(as_of),
                balance: ledger.balance(),
                held: ledger.held(),
                lots: ledger
                    .lots
                    .values()
                    .map(|lot| LotState {
                        lot_id: lot.lot_id,
                        source: lot.source,
                        amount: lot.amount,
                        remaining: lot.remaining,
                        expires_at: lot.expires_at,
                        usable: lot.usable(as_of),
                    })
                    .collect(),
            },
            subscription: subscription.terms.as_ref().map(|terms| SubscriptionState {
                plan_id: terms.plan_id.clone(),
                period_end: subscription.period_end,
                cancel_at_period_end: subscription.cancel_at_period_end,
                scheduled_plan: subscription.scheduled_plan.clone(),
            }),
            invoices,
            tokens,
            notifications: Toggle::ALL
                .into_iter()
                .map(|t| (t.as_str().to_owned(), preferences.enabled(t)))
                .collect(),
            provider_keys: keys
                .keys
                .iter()
                .map(|(provider, key)| ProviderKeyState {
                    provider: *provider,
                    version: key.version,
                    status: key.status,
                    updated_at: key.updated_at,
                })
                .collect(),
            workspaces,
            telegram_linked: telegram.linked.is_some(),
        })
    }

    async fn decode_into(
        &self,
        streams: &mut Streams,
        recorded: RecordedEvent,
    ) -> Result<(), AuditError> {
        let decoded = self
            .codec
            .decode(recorded)
            .await
            .map_err(AuditError::failed)?;
        streams.push(decoded.envelope.stream, decoded.payload);
        Ok(())
    }
}
