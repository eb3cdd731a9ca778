//! Who is asking a command, on behalf of which request: the context every command runs in,
//! and the metadata it stamps on the events it appends.

use domain::Timestamp;
use store::{Actor, Metadata};
use uuid::Uuid;

/// Who is asking, and on behalf of which request: the metadata stamped on every event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandContext {
    /// Shared by everything one request causes.
    pub correlation_id: Uuid,
    /// The request (or event) that caused this command.
    pub causation_id: Option<Uuid>,
    /// Who.
    pub actor: Actor,
    /// The request's `Idempotency-Key`, recorded on the events it causes.
    pub idempotency_key: Option<String>,
}

impl CommandContext {
    /// A context for work the service does on its own.
    pub fn system(component: &str) -> Self {
        Self {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: component.to_owned(),
            },
            idempotency_key: None,
        }
    }

    /// The metadata of an event decided at `at`, sealed with `subject`'s key if personal.
    pub fn metadata(&self, subject: Option<Uuid>, at: Timestamp) -> Metadata {
        Metadata {
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            actor: self.actor.clone(),
            occurred_at: at,
            idempotency_key: self.idempotency_key.clone(),
            data_subject: subject,
        }
    }
}
