//! Events as readers see them: the envelope and the domain event, personal data opened.
//! Decoding (opening sealed fields, upcasting) is done by an [`EventDecoder`], which the
//! command side implements; projections and workers only see its output.

use crate::envelope::{GlobalPosition, Metadata, RecordedEvent};
use async_trait::async_trait;
use domain::{DomainEvent, Timestamp};
use uuid::Uuid;

/// Where and how an event was recorded, without its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct EventEnvelope {
    /// Position in the whole log.
    pub position: GlobalPosition,
    /// The stream.
    pub stream: String,
    /// Position in the stream.
    pub revision: u64,
    /// The event id.
    pub event_id: Uuid,
    /// The stored type name.
    pub event_type: String,
    /// The envelope metadata.
    pub metadata: Metadata,
    /// When the log committed it.
    pub recorded_at: Timestamp,
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The event, personal fields opened.
    Event(DomainEvent),
    /// The event carries personal data whose key was destroyed (the account was erased).
    Erased {
        /// What it still says: its other fields, each personal one empty text (`None` when
        /// that is not a value of one of them). For folds that must follow what happened
        /// after the key that sealed a part of it was destroyed, never to read personal
        /// data; [`DecodedEvent::event`] does not show it.
        redacted: Option<Box<DomainEvent>>,
    },
    /// A stream or event type this version of the service does not know.
    Unknown,
}

/// A stored event, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    /// Where it sits.
    pub envelope: EventEnvelope,
    /// What it says.
    pub payload: Payload,
}

impl DecodedEvent {
    /// The domain event, if readable.
    pub fn event(&self) -> Option<&DomainEvent> {
        match &self.payload {
            Payload::Event(event) => Some(event),
            Payload::Erased { .. } | Payload::Unknown => None,
        }
    }

    /// What an erased event still says ([`Payload::Erased`]), if it is one.
    pub fn redacted(&self) -> Option<&DomainEvent> {
        match &self.payload {
            Payload::Erased { redacted } => redacted.as_deref(),
            Payload::Event(_) | Payload::Unknown => None,
        }
    }
}

/// Turns stored events into domain events.
#[async_trait]
pub trait EventDecoder: Send + Sync {
    /// Decodes one event.
    async fn decode_event(
        &self,
        recorded: RecordedEvent,
    ) -> Result<DecodedEvent, Box<dyn std::error::Error + Send + Sync>>;
}
