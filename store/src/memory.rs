//! An in-memory event log for unit tests: the same contract, no persistence.

use crate::envelope::{AppendResult, ExpectedRevision, GlobalPosition, NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::log::{AppendSignal, EventLog, LogWatch, check_append};
use async_trait::async_trait;
use domain::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

#[derive(Default)]
struct State {
    events: Vec<RecordedEvent>,
    streams: HashMap<String, Vec<usize>>,
    ids: HashMap<Uuid, usize>,
}

/// An event log held in memory.
pub struct MemoryLog {
    state: Mutex<State>,
    signal: AppendSignal,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            signal: AppendSignal::new(),
        }
    }
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_append(&events)?;
        let result = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let indexes = state.streams.get(stream).cloned().unwrap_or_default();
            let current = (indexes.len() as u64).checked_sub(1);

            let known: Vec<usize> = events
                .iter()
                .filter_map(|e| state.ids.get(&e.event_id).copied())
                .collect();
            if !known.is_empty() {
                let same_append = known.len() == events.len()
                    && known.iter().all(|i| state.events[*i].stream == stream);
                if !same_append {
                    return Err(StoreError::EventIdReused {
                        stream: stream.into(),
                    });
                }
                let positions = known.iter().map(|i| state.events[*i].position).collect();
                return Ok(AppendResult {
                    positions,
                    next_expected: ExpectedRevision::after(indexes.len() as u64),
                    already_appended: true,
                });
            }

            let ok = match expected {
                ExpectedRevision::Any => true,
                ExpectedRevision::NoStream => current.is_none(),
                ExpectedRevision::Exact(n) => current == Some(n),
            };
            if !ok {
                return Err(StoreError::WrongExpectedRevision {
                    stream: stream.into(),
                    expected,
                    actual: current,
                });
            }

            let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc());
            let mut positions = Vec::with_capacity(events.len());
            let mut revision = indexes.len() as u64;
            for event in events {
                let index = state.events.len();
                let position = GlobalPosition(index as u64 + 1);
                state.ids.insert(event.event_id, index);
                state
                    .streams
                    .entry(stream.to_owned())
                    .or_default()
                    .push(index);
                state.events.push(RecordedEvent {
                    position,
                    stream: stream.to_owned(),
                    revision,
                    event_id: event.event_id,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    data: event.data,
                    metadata: event.metadata,
                    recorded_at: now,
                });
                positions.push(position);
                revision += 1;
            }
            AppendResult {
                positions,
                next_expected: ExpectedRevision::after(revision),
                already_appended: false,
            }
        };
        self.signal.notify();
        Ok(result)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .streams
            .get(stream)
            .map(|indexes| {
                indexes
                    .iter()
                    .skip(from as usize)
                    .take(limit)
                    .map(|i| state.events[*i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn stream_last_position(
        &self,
        stream: &str,
    ) -> Result<Option<GlobalPosition>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .streams
            .get(stream)
            .and_then(|indexes| indexes.last())
            .map(|i| state.events[*i].position))
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Position n is at index n - 1.
        Ok(state
            .events
            .iter()
            .skip(after.0 as usize)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn head(&self) -> Result<GlobalPosition, StoreError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(GlobalPosition(state.events.len() as u64))
    }

    fn watch(&self) -> LogWatch {
        self.signal.watch(Duration::from_secs(60))
    }
}
