//! Session last-active times. Appending an event per request would flood the log, so
//! requests only touch an in-memory map, and [`SessionActivity::flush`] appends one
//! `SessionsActive` event per account per flush interval (and on shutdown). A crash loses
//! at most one interval of last-active times, never a session.

use crate::codec::EventCodec;
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::activity::{ActivityEvent, SessionSeen};
use domain::{AccountId, DomainEvent, SessionId, StreamCategory, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use store::{EventLog, ExpectedRevision};
use uuid::Uuid;

/// Appends `event` to `stream` whatever its revision: the flushed counters (activity,
/// token usage) only add up, so concurrent flushes never conflict.
pub(crate) async fn append_counted(
    log: &Arc<dyn EventLog>,
    codec: &EventCodec,
    stream: &str,
    event: &DomainEvent,
    metadata: store::Metadata,
) -> Result<(), CommandError> {
    let encoded = codec
        .encode(stream, Uuid::now_v7(), event, metadata)
        .await?;
    log.append(stream, ExpectedRevision::Any, vec![encoded])
        .await?;
    Ok(())
}

#[derive(Debug, Default)]
struct State {
    seen: HashMap<SessionId, (AccountId, Timestamp)>,
    dirty: HashSet<SessionId>,
}

/// The in-memory record of session activity, flushed to the log periodically.
pub struct SessionActivity {
    log: Arc<dyn EventLog>,
    codec: EventCodec,
    state: Mutex<State>,
}

impl SessionActivity {
    /// Records into `log`.
    pub fn new(log: Arc<dyn EventLog>, codec: EventCodec) -> Self {
        Self {
            log,
            codec,
            state: Mutex::new(State::default()),
        }
    }

    /// Notes a request made by a session.
    pub fn touch(&self, account_id: AccountId, session_id: SessionId, at: Timestamp) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state.seen.entry(session_id).or_insert((account_id, at));
        entry.1 = entry.1.max(at);
        state.dirty.insert(session_id);
    }

    /// The last request this process saw from the session, flushed or not.
    pub fn last_seen(&self, session_id: SessionId) -> Option<Timestamp> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.seen.get(&session_id).map(|(_, at)| *at)
    }

    /// Forgets sessions not seen since `cutoff` (already flushed, and idle by now).
    pub fn forget_idle(&self, cutoff: Timestamp) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let State { seen, dirty } = &mut *state;
        seen.retain(|id, (_, at)| *at >= cutoff || dirty.contains(id));
    }

    /// Appends what was seen since the last flush: one event per account. Returns how many
    /// events were appended. What fails to append is kept for the next flush.
    #[tracing::instrument(skip_all)]
    pub async fn flush(&self, now: Timestamp) -> Result<usize, CommandError> {
        let by_account: BTreeMap<AccountId, Vec<SessionSeen>> = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let dirty: Vec<SessionId> = state.dirty.drain().collect();
            let mut by_account: BTreeMap<AccountId, Vec<SessionSeen>> = BTreeMap::new();
            for session_id in dirty {
                if let Some((account_id, at)) = state.seen.get(&session_id) {
                    by_account
                        .entry(*account_id)
                        .or_default()
                        .push(SessionSeen {
                            session_id,
                            last_active_at: *at,
                        });
                }
            }
            by_account
        };
        let ctx = CommandContext::system("session-activity");
        let mut appended = 0;
        let mut first_error = None;
        for (account_id, sessions) in by_account {
            let stream = StreamCategory::Activity.stream(account_id);
            let event = DomainEvent::from(ActivityEvent::SessionsActive {
                sessions: sessions.clone(),
            });
            let result = append_counted(
                &self.log,
                &self.codec,
                &stream,
                &event,
                ctx.metadata(None, now),
            )
            .await;
            match result {
                Ok(()) => appended += 1,
                Err(error) => {
                    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.dirty.extend(sessions.iter().map(|s| s.session_id));
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
