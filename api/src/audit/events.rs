//! `GET /admin/audit/accounts/{id}/events` and `accounts audit events`: a page of an
//! account's events in log order, with their envelope.

use super::{AuditError, Auditor};
use commands::codec::{SEALED_FIELD, upcast};
use domain::{AccountId, StreamCategory, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value, json};
use store::{Actor, GlobalPosition, Payload, RecordedEvent};
use utoipa::ToSchema;
use uuid::Uuid;

/// Events per page when no limit is given.
pub const DEFAULT_LIMIT: usize = 100;
/// The most events a page may hold.
pub const MAX_LIMIT: usize = 1_000;

/// Fields that hold a secret rather than personal data (a password hash, the 2FA secret,
/// a provider or storage credential): an auditor sees that they were set, never their
/// value, even while the key exists.
pub const SECRET_FIELDS: &[&str] = &["password_hash", "secret", "secret_access_key", "credential"];

/// Which events a page holds.
#[derive(Debug, Clone, Copy)]
pub struct EventsQuery {
    /// Recorded at or after this instant.
    pub from: Option<Timestamp>,
    /// Recorded at or before this instant.
    pub to: Option<Timestamp>,
    /// After this position (the previous page's cursor).
    pub after: GlobalPosition,
    /// At most this many (1 to [`MAX_LIMIT`]).
    pub limit: usize,
}

/// How the personal fields of an event read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonalData {
    /// The event has none.
    None,
    /// Opened with the subject's key.
    Opened,
    /// The key was destroyed: each personal field reads `{"erased": true}`.
    Erased,
    /// An event type this version of the service cannot read: `data` is as stored.
    Unknown,
}

/// One event, as an auditor reads it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditedEvent {
    /// Its position in the whole log (the order of this list).
    pub position: u64,
    /// Its stream, e.g. `account-…`, `credits-…`, `workspace-…`.
    pub stream: String,
    /// Its revision in the stream, from 0.
    pub revision: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The type, e.g. `SessionStarted`.
    pub event_type: String,
    /// The schema version it was stored at.
    pub schema_version: u32,
    /// When the log committed it.
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
    /// When its command was decided.
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Timestamp,
    /// Who caused it: `{"kind": "anonymous" | "session" | "token" | "system", …}`.
    #[schema(value_type = Object)]
    pub actor: Actor,
    /// Shared by every event one request caused.
    pub correlation_id: Uuid,
    /// The request or event that caused it.
    pub causation_id: Option<Uuid>,
    /// The `Idempotency-Key` of the request, if it sent one.
    pub idempotency_key: Option<String>,
    /// The account or workspace whose key seals its personal fields.
    pub data_subject: Option<Uuid>,
    /// How its personal fields read.
    pub personal_data: PersonalData,
    /// The event's fields (without `type`); personal ones opened or `{"erased": true}`,
    /// secrets `{"redacted": true}`.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventsPage {
    /// The account.
    pub account_id: Uuid,
    /// Its events, in log order.
    pub events: Vec<AuditedEvent>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl Auditor {
    /// A page of the account's events.
    #[tracing::instrument(skip_all, fields(%account, after = query.after.0, limit = query.limit))]
    pub async fn events(
        &self,
        account: AccountId,
        query: EventsQuery,
    ) -> Result<EventsPage, AuditError> {
        self.check_account(account).await?;
        let mut events = Vec::new();
        let mut next_cursor = None;
        let mut stream = self.account_events(account, query.after).await?;
        while let Some(recorded) = stream.next().await? {
            if query.from.is_some_and(|from| recorded.recorded_at < from)
                || query.to.is_some_and(|to| recorded.recorded_at > to)
            {
                continue;
            }
            if events.len() == query.limit {
                next_cursor = events
                    .last()
                    .map(|last: &AuditedEvent| last.position.to_string());
                break;
            }
            events.push(self.audited(recorded).await?);
        }
        Ok(EventsPage {
            account_id: account.0,
            events,
            next_cursor,
        })
    }

    /// One stored event as an auditor reads it.
    pub async fn audited(&self, recorded: RecordedEvent) -> Result<AuditedEvent, AuditError> {
        let raw = recorded.data.clone();
        let schema_version = recorded.schema_version;
        let decoded = self
            .codec
            .decode(recorded)
            .await
            .map_err(AuditError::failed)?;
        let envelope = decoded.envelope;
        let category = StreamCategory::of_stream(&envelope.stream);
        let declared = category
            .and_then(|c| c.declaration_of(&envelope.event_type))
            .map_or(&[][..], |d| d.personal_fields);
        let (personal_data, mut data) = match decoded.payload {
            Payload::Event(event) => {
                let state = if declared.is_empty() {
                    PersonalData::None
                } else {
                    PersonalData::Opened
                };
                (
                    state,
                    serde_json::to_value(&event).map_err(AuditError::failed)?,
                )
            }
            Payload::Erased { .. } => {
                let mut data = match category {
                    Some(category) => upcast(category, &envelope.event_type, schema_version, raw)
                        .map_err(AuditError::failed)?,
                    None => raw,
                };
                if let Some(object) = data.as_object_mut() {
                    object.remove(SEALED_FIELD);
                    for field in declared {
                        object.insert((*field).to_owned(), json!({"erased": true}));
                    }
                }
                (PersonalData::Erased, data)
            }
            Payload::Unknown => (PersonalData::Unknown, raw),
        };
        if let Some(object) = data.as_object_mut() {
            object.remove("type");
            redact(object);
        }
        let metadata = envelope.metadata;
        Ok(AuditedEvent {
            position: envelope.position.0,
            stream: envelope.stream,
            revision: envelope.revision,
            event_id: envelope.event_id,
            event_type: envelope.event_type,
            schema_version,
            recorded_at: envelope.recorded_at,
            occurred_at: metadata.occurred_at,
            actor: metadata.actor,
            correlation_id: metadata.correlation_id,
            causation_id: metadata.causation_id,
            idempotency_key: metadata.idempotency_key,
            data_subject: metadata.data_subject,
            personal_data,
            data,
        })
    }
}

/// Replaces the value of every secret field that holds one by `{"redacted": true}`.
fn redact(object: &mut Map<String, Value>) {
    for field in SECRET_FIELDS {
        if let Some(value) = object.get_mut(*field)
            && !value.is_null()
            && value.get("erased").is_none()
        {
            *value = json!({"redacted": true});
        }
    }
}
