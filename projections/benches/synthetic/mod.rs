//! A synthetic log of real events for the benchmarks: accounts registered and signing in
//! (personal data sealed under each account's data key by the commands' codec) and a
//! credit ledger per account (grants, holds settled or released), appended in large
//! batches straight to the [`EventLog`], so a million events take a minute or two rather
//! than the hours the commands would.
//!
//! Shared by `projections/benches/rebuild.rs` and `api/benches/memory.rs` (included by
//! path), so both measure the same mix.

use commands::EventCodec;
use domain::account::AccountEvent;
use domain::credits::{Allocation, CreditsEvent, Feature, ReleaseReason, SourceKind};
use domain::email::{DisplayName, EmailAddress};
use domain::session::{RevocationReason, SessionOrigin};
use domain::{AccountId, DomainEvent, SessionId, StreamCategory, Timestamp};
use std::sync::Arc;
use store::{Actor, EventLog, ExpectedRevision, Metadata, NewEvent};
use uuid::Uuid;
use vault::DataKeys;

/// Events per account's history (5 on its account stream, the rest on its ledger).
pub const EVENTS_PER_ACCOUNT: u64 = 100;
/// Events per append: one stream's next chunk.
const CHUNK: usize = 25;
/// Concurrent appenders (distinct accounts each).
const WRITERS: usize = 8;
/// A new lot every so many ledger events.
const GRANT_EVERY: u64 = 40;

/// One account's history, produced a chunk at a time so the whole log never sits in memory.
struct Script {
    account: AccountId,
    /// Ledger events written so far.
    ledger: u64,
    /// Ledger events written when the next lot is granted.
    next_grant: u64,
    /// Holds placed so far.
    holds: u64,
    /// The lot spends are taken from.
    lot: Uuid,
    registered: bool,
    clock: i64,
}

impl Script {
    fn new(account: AccountId, start: i64) -> Self {
        Self {
            account,
            ledger: 0,
            next_grant: 0,
            holds: 0,
            lot: Uuid::new_v4(),
            registered: false,
            clock: start,
        }
    }

    fn tick(&mut self) -> Timestamp {
        self.clock += 1_000_000;
        Timestamp::from_unix_micros(self.clock)
    }

    fn done(&self) -> bool {
        self.registered && self.ledger >= EVENTS_PER_ACCOUNT - 5
    }

    /// The next stream and up to [`CHUNK`] of its events.
    fn next_chunk(&mut self) -> (String, Vec<DomainEvent>) {
        if !self.registered {
            self.registered = true;
            return (
                StreamCategory::Account.stream(self.account),
                self.account_events(),
            );
        }
        let mut events = Vec::with_capacity(CHUNK);
        while events.len() + 1 < CHUNK && self.ledger < EVENTS_PER_ACCOUNT - 5 {
            events.extend(self.ledger_step());
        }
        (StreamCategory::Credits.stream(self.account), events)
    }

    fn account_events(&mut self) -> Vec<DomainEvent> {
        let n = self.account.0.simple();
        let registered_at = self.tick();
        let mut events = vec![AccountEvent::AccountRegistered {
            account_id: self.account,
            email: EmailAddress::parse(&format!("bench-{n}@example.com")).expect("email"),
            display_name: DisplayName::parse("Bench user").expect("name"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                .into(),
            registered_at,
        }];
        let sessions: Vec<SessionId> = (0..3).map(|_| SessionId(Uuid::new_v4())).collect();
        for session in &sessions {
            let started_at = self.tick();
            events.push(AccountEvent::SessionStarted {
                session_id: *session,
                token_hash: format!("{:064x}", Uuid::new_v4().as_u128()),
                started_at,
                expires_at: Timestamp::from_unix_micros(started_at.unix_micros() + 86_400_000_000),
                origin: SessionOrigin {
                    device: "Firefox 128 on Linux".into(),
                    ip: Some("203.0.113.7".into()),
                    user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
                    location: None,
                },
                second_factor: None,
            });
        }
        events.push(AccountEvent::SessionRevoked {
            session_id: sessions[0],
            reason: RevocationReason::Logout,
            revoked_at: self.tick(),
        });
        events.into_iter().map(DomainEvent::from).collect()
    }

    /// A grant, or a hold with its settlement (one in ten released instead).
    fn ledger_step(&mut self) -> Vec<DomainEvent> {
        let at = self.tick();
        if self.ledger >= self.next_grant {
            self.ledger += 1;
            self.next_grant += GRANT_EVERY;
            self.lot = Uuid::new_v4();
            return vec![
                CreditsEvent::CreditsGranted {
                    lot_id: self.lot,
                    grant_key: format!("purchase:{}", self.lot),
                    amount: 1_000_000,
                    source: SourceKind::Purchase,
                    priority: 2,
                    expires_at: None,
                    granted_at: at,
                }
                .into(),
            ];
        }
        self.ledger += 2;
        self.holds += 1;
        let generation_id = format!("gen-{}-{}", self.account.0.simple(), self.ledger);
        let held = vec![Allocation {
            lot_id: self.lot,
            amount: 5,
        }];
        let hold = CreditsEvent::CreditsHeld {
            generation_id: generation_id.clone(),
            feature: Feature::Generation,
            amount: 5,
            allocations: held.clone(),
            held_at: at,
            hold_expires_at: Timestamp::from_unix_micros(at.unix_micros() + 3_600_000_000),
            api_token_id: None,
        };
        let settle = if self.holds.is_multiple_of(10) {
            CreditsEvent::HoldReleased {
                generation_id,
                feature: Feature::Generation,
                reason: ReleaseReason::Failed,
                released: held,
                at: self.tick(),
                api_token_id: None,
            }
        } else {
            CreditsEvent::CreditsSpent {
                generation_id,
                feature: Feature::Generation,
                amount: 3,
                spent: vec![Allocation {
                    lot_id: self.lot,
                    amount: 3,
                }],
                released: vec![Allocation {
                    lot_id: self.lot,
                    amount: 2,
                }],
                at: self.tick(),
                api_token_id: None,
            }
        };
        vec![hold.into(), settle.into()]
    }
}

async fn encode(
    codec: &EventCodec,
    account: AccountId,
    stream: &str,
    events: &[DomainEvent],
) -> anyhow::Result<Vec<NewEvent>> {
    let mut encoded = Vec::with_capacity(events.len());
    for event in events {
        let metadata = Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: "bench".into(),
            },
            occurred_at: Timestamp::from_unix_micros(0),
            idempotency_key: None,
            data_subject: Some(account.0),
        };
        encoded.push(
            codec
                .encode(stream, Uuid::new_v4(), event, metadata)
                .await?,
        );
    }
    Ok(encoded)
}

/// Appends about `events` events (a multiple of [`EVENTS_PER_ACCOUNT`]) for fresh
/// accounts, whose data keys it creates in `keys`; the accounts' histories interleave in
/// the log as concurrent users' would. Returns the number appended.
pub async fn build(
    log: &Arc<dyn EventLog>,
    codec: &EventCodec,
    keys: &Arc<DataKeys>,
    events: u64,
) -> anyhow::Result<u64> {
    let accounts = events.div_ceil(EVENTS_PER_ACCOUNT).max(1) as usize;
    let start = Timestamp::from_datetime(time::OffsetDateTime::now_utc()).unix_micros();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let mine = accounts / WRITERS + usize::from(writer < accounts % WRITERS);
        let (log, codec, keys) = (log.clone(), codec.clone(), keys.clone());
        writers.push(tokio::spawn(async move {
            let mut scripts = Vec::with_capacity(mine);
            for _ in 0..mine {
                let account = AccountId(Uuid::new_v4());
                keys.create(account.0, Timestamp::from_unix_micros(start))
                    .await?;
                scripts.push(Script::new(account, start));
            }
            let mut appended = 0u64;
            // Round-robin over this writer's accounts, a chunk each, like many users at once.
            while scripts.iter().any(|s| !s.done()) {
                for script in scripts.iter_mut().filter(|s| !s.done()) {
                    let (stream, chunk) = script.next_chunk();
                    let encoded = encode(&codec, script.account, &stream, &chunk).await?;
                    appended += encoded.len() as u64;
                    log.append(&stream, ExpectedRevision::Any, encoded).await?;
                }
            }
            anyhow::Ok(appended)
        }));
    }
    let mut total = 0;
    for writer in writers {
        total += writer.await??;
    }
    Ok(total)
}
