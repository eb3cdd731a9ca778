//! `GET /admin/audit/accounts/{id}/state` and `accounts audit state`: the account as it
//! was at an instant, folded from its events recorded until then (inclusive) by the
//! aggregates' own `evolve` (`domain::Aggregate`), never by a second copy of the rules.
//!
//! Workspaces are folded from their whole streams up to the instant (not only the events
//! of the account's membership), since a workspace's members and name depend on what
//! happened before the account joined. Events whose personal data was erased cannot be
//! folded (as when commands load a stream); the state then says `erased: true`.

mod views;

pub use views::{
    AccountState, CreditsState, InvoiceState, LotState, ProfileState, ProviderKeyState,
    SessionState, SubscriptionState, TokenState, WorkspaceState,
};

use super::{AuditError, Auditor};
use domain::access_token::AccessToken;
use domain::account::Account;
use domain::activity::ActivityEvent;
use domain::credits::CreditLedger;
use domain::invoice::{InvoicePayment, InvoiceSeriesEvent};
use domain::notifications::{NotificationPreferences, Toggle};
use domain::provider_key::ProviderKeys;
use domain::session::{ActiveSession, SessionOrigin};
use domain::subscription::Subscription;
use domain::telegram::TelegramLink;
use domain::workspace::Workspace;
use domain::{AccountId, Aggregate, DomainEvent, SessionId, StreamCategory, Timestamp};
use std::collections::{BTreeMap, HashMap};
use store::{GlobalPosition, Payload, RecordedEvent};

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
