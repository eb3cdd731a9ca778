//! Usage logs of API and CLI tokens. An event per request would flood the log, so
//! requests only count in memory, and [`TokenUsage::flush`] appends one `TokenUsed` event
//! per token per flush interval (and on shutdown). A crash loses at most one interval of
//! counts.

use crate::activity::append_counted;
use crate::codec::EventCodec;
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::access_token::{DailyRequests, UsageEvent};
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use store::EventLog;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Pending {
    account_id: AccountId,
    days: BTreeMap<String, DailyRequests>,
    last_used_at: Timestamp,
    last_ip: Option<String>,
    last_user_agent: Option<String>,
}

impl Pending {
    fn merge(&mut self, later: Pending) {
        for (day, counts) in later.days {
            match self.days.get_mut(&day) {
                Some(entry) => {
                    entry.ok += counts.ok;
                    entry.client_errors += counts.client_errors;
                    entry.server_errors += counts.server_errors;
                }
                None => {
                    self.days.insert(day, counts);
                }
            }
        }
        if later.last_used_at >= self.last_used_at {
            self.last_used_at = later.last_used_at;
            self.last_ip = later.last_ip;
            self.last_user_agent = later.last_user_agent;
        }
    }
}

/// The in-memory request counts of tokens, flushed to the log periodically.
pub struct TokenUsage {
    log: Arc<dyn EventLog>,
    codec: EventCodec,
    pending: Mutex<HashMap<Uuid, Pending>>,
}

/// One answered request made with a token.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The token's owner.
    pub account_id: AccountId,
    /// The token.
    pub token_id: Uuid,
    /// The answer's status code.
    pub status: u16,
    /// When.
    pub at: Timestamp,
    /// The client's IP.
    pub ip: Option<String>,
    /// Its user agent.
    pub user_agent: Option<String>,
}

impl TokenUsage {
    /// Records into `log`.
    pub fn new(log: Arc<dyn EventLog>, codec: EventCodec) -> Self {
        Self {
            log,
            codec,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request.
    pub fn record(&self, request: TokenRequest) {
        let day = request.at.to_rfc3339()[..10].to_owned();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(request.token_id).or_insert_with(|| Pending {
            account_id: request.account_id,
            days: BTreeMap::new(),
            last_used_at: request.at,
            last_ip: None,
            last_user_agent: None,
        });
        let counts = entry.days.entry(day.clone()).or_insert(DailyRequests {
            day,
            ok: 0,
            client_errors: 0,
            server_errors: 0,
        });
        match request.status {
            500..=599 => counts.server_errors += 1,
            400..=499 => counts.client_errors += 1,
            _ => counts.ok += 1,
        }
        if request.at >= entry.last_used_at {
            entry.last_used_at = request.at;
            entry.last_ip = request.ip;
            entry.last_user_agent = request.user_agent;
        }
    }

    /// Appends what was counted since the last flush: one event per token. Returns how
    /// many events were appended. What fails to append is kept for the next flush.
    #[tracing::instrument(skip_all)]
    pub async fn flush(&self, now: Timestamp) -> Result<usize, CommandError> {
        let drained: Vec<(Uuid, Pending)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        let ctx = CommandContext::system("token-usage");
        let mut appended = 0;
        let mut first_error = None;
        for (token_id, usage) in drained {
            let stream = StreamCategory::Usage.stream(usage.account_id);
            let event = DomainEvent::from(UsageEvent::TokenUsed {
                token_id,
                days: usage.days.values().cloned().collect(),
                last_used_at: usage.last_used_at,
                last_ip: usage.last_ip.clone(),
                last_user_agent: usage.last_user_agent.clone(),
            });
            let result = append_counted(
                &self.log,
                &self.codec,
                &stream,
                &event,
                ctx.metadata(Some(usage.account_id.0), now),
            )
            .await;
            match result {
                Ok(()) => appended += 1,
                // The account was deleted meanwhile: its usage goes with it.
                Err(CommandError::Codec(crate::codec::CodecError::KeyDestroyed)) => {}
                Err(error) => {
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    match pending.remove(&token_id) {
                        Some(later) => {
                            let mut earlier = usage;
                            earlier.merge(later);
                            pending.insert(token_id, earlier);
                        }
                        None => {
                            pending.insert(token_id, usage);
                        }
                    }
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(appended),
        }
    }
}
