//! Turning domain events into stored events and back: the JSON shape, the `type` and
//! `schema_version` columns, sealing personal fields with the account's data key, and
//! upcasting old schema versions (in one place: [`upcast`]).

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::event::DEFAULT_SCHEMA_VERSION;
use domain::{DomainEvent, StreamCategory};
use serde_json::{Map, Value};
use std::sync::Arc;
use store::{
    DecodedEvent, EventDecoder, EventEnvelope, Metadata, NewEvent, Payload, RecordedEvent,
};
use uuid::Uuid;
use vault::{self as crypto, CryptoError, DataKeys};

/// The field that carries the sealed personal fields of an event.
pub const SEALED_FIELD: &str = "$personal";

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The JSON does not match the event type.
    #[error("event JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Keys or sealing failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// An event with personal fields but no data subject in its metadata.
    #[error("an event with personal data needs a data subject")]
    NoDataSubject,
    /// Personal data cannot be written for a subject whose key was destroyed.
    #[error("the data key of this account no longer exists")]
    KeyDestroyed,
    /// A stored event that does not have the expected shape.
    #[error("malformed stored event: {0}")]
    Malformed(String),
}

/// Encodes and decodes events, sealing personal data with per-account keys.
#[derive(Clone)]
pub struct EventCodec {
    keys: Arc<DataKeys>,
}

fn aad(stream: &str, event_id: Uuid) -> Vec<u8> {
    format!("{stream}:{event_id}").into_bytes()
}

impl EventCodec {
    /// A codec using `keys`.
    pub fn new(keys: Arc<DataKeys>) -> Self {
        Self { keys }
    }

    /// The data keys this codec uses.
    pub fn keys(&self) -> &Arc<DataKeys> {
        &self.keys
    }

    /// Encodes `event` for `stream`.
    pub async fn encode(
        &self,
        stream: &str,
        event_id: Uuid,
        event: &DomainEvent,
        metadata: Metadata,
    ) -> Result<NewEvent, CodecError> {
        let mut value = serde_json::to_value(event)?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| CodecError::Malformed("events serialise as objects".into()))?;
        object.remove("type");
        let personal = event.personal_fields();
        if !personal.is_empty() {
            let subject = metadata.data_subject.ok_or(CodecError::NoDataSubject)?;
            let key = self
                .keys
                .get(subject)
                .await?
                .ok_or(CodecError::KeyDestroyed)?;
            let mut fields = Map::new();
            for name in personal {
                if let Some(field) = object.remove(*name) {
                    fields.insert((*name).to_owned(), field);
                }
            }
            let sealed = crypto::seal(&key, &aad(stream, event_id), &serde_json::to_vec(&fields)?);
            object.insert(SEALED_FIELD.into(), Value::String(STANDARD.encode(sealed)));
        }
        Ok(NewEvent {
            event_id,
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            data: value,
            metadata,
        })
    }

    /// Decodes a stored event, opening its personal fields if its key still exists.
    pub async fn decode(&self, recorded: RecordedEvent) -> Result<DecodedEvent, CodecError> {
        let RecordedEvent {
            position,
            stream,
            revision,
            event_id,
            event_type,
            schema_version,
            data,
            metadata,
            recorded_at,
        } = recorded;
        let envelope = EventEnvelope {
            position,
            stream,
            revision,
            event_id,
            event_type,
            metadata,
            recorded_at,
        };
        let Some(category) = StreamCategory::of_stream(&envelope.stream) else {
            return Ok(DecodedEvent {
                envelope,
                payload: Payload::Unknown,
            });
        };
        let mut data = upcast(category, &envelope.event_type, schema_version, data)?;
        let object = data
            .as_object_mut()
            .ok_or_else(|| CodecError::Malformed(format!("event {event_id} is not an object")))?;
        if let Some(sealed) = object.remove(SEALED_FIELD) {
            let subject = envelope
                .metadata
                .data_subject
                .ok_or(CodecError::NoDataSubject)?;
            let Some(key) = self.keys.get(subject).await? else {
                let personal = category
                    .declaration_of(&envelope.event_type)
                    .map_or(&[][..], |d| d.personal_fields);
                let redacted = redact(category, &envelope.event_type, personal, data).map(Box::new);
                return Ok(DecodedEvent {
                    envelope,
                    payload: Payload::Erased { redacted },
                });
            };
            let sealed = sealed
                .as_str()
                .and_then(|text| STANDARD.decode(text).ok())
                .ok_or_else(|| CodecError::Malformed(format!("event {event_id}: sealed field")))?;
            let opened = crypto::open(&key, &aad(&envelope.stream, event_id), &sealed)?;
            let fields: Map<String, Value> = serde_json::from_slice(&opened)?;
            object.extend(fields);
        }
        object.insert("type".into(), Value::String(envelope.event_type.clone()));
        let event = DomainEvent::deserialize_in(category, data);
        let payload = match event {
            Ok(event) => Payload::Event(event),
            Err(error) => {
                tracing::warn!(%error, event_type = %envelope.event_type, "event this version cannot read");
                Payload::Unknown
            }
        };
        Ok(DecodedEvent { envelope, payload })
    }
}

/// `data` (upcast, its sealed part removed) as an event of `event_type`, each of its
/// `personal` fields empty text.
fn redact(
    category: StreamCategory,
    event_type: &str,
    personal: &[&str],
    mut data: Value,
) -> Option<DomainEvent> {
    let object = data.as_object_mut()?;
    for name in personal {
        object.insert((*name).to_owned(), Value::String(String::new()));
    }
    object.insert("type".into(), Value::String(event_type.to_owned()));
    DomainEvent::deserialize_in(category, data).ok()
}

#[async_trait]
impl EventDecoder for EventCodec {
    async fn decode_event(
        &self,
        recorded: RecordedEvent,
    ) -> Result<DecodedEvent, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.decode(recorded).await?)
    }
}

/// Brings a stored payload of any schema version to the one this code writes for its type
/// (its `#[event(version = N)]`). Every upcaster of the service lives in [`UPCASTERS`],
/// keyed by event type and the version it reads; none is needed yet. A type this version
/// does not know is taken to be at version 1, as every type was before versions were
/// declared per type: it then decodes as [`Payload::Unknown`].
pub fn upcast(
    category: StreamCategory,
    event_type: &str,
    schema_version: u32,
    mut data: Value,
) -> Result<Value, CodecError> {
    let current = category
        .declaration_of(event_type)
        .map_or(DEFAULT_SCHEMA_VERSION, |declaration| {
            declaration.schema_version
        });
    let mut version = schema_version;
    while version < current {
        let Some((.., step)) = UPCASTERS
            .iter()
            .find(|(name, from, _)| *name == event_type && *from == version)
        else {
            break;
        };
        data = step(data)?;
        version += 1;
    }
    if version == current {
        Ok(data)
    } else {
        Err(CodecError::Malformed(format!(
            "{event_type} has schema version {schema_version}, which this service cannot read"
        )))
    }
}

/// One upcasting step: the event type, the schema version it reads, and the function that
/// returns the payload (personal fields still sealed) at the next version.
pub type Upcaster = (&'static str, u32, fn(Value) -> Result<Value, CodecError>);

/// Every upcaster, e.g. `("SessionStarted", 1, session_started_v1_to_v2)` once
/// `SessionStarted` is declared `#[event(version = 2, ...)]`.
pub const UPCASTERS: &[Upcaster] = &[];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upcast_passes_the_current_version_and_refuses_versions_it_cannot_read() {
        let data = serde_json::json!({ "session_id": "s" });
        let account = StreamCategory::Account;
        let current = account.declaration_of("SessionRevoked").unwrap();
        let current = current.schema_version;
        assert_eq!(
            upcast(account, "SessionRevoked", current, data.clone()).unwrap(),
            data
        );
        for version in [0, current + 1] {
            assert!(matches!(
                upcast(account, "SessionRevoked", version, data.clone()),
                Err(CodecError::Malformed(_))
            ));
        }
        // A type this version does not know is read at version 1, then decodes as Unknown.
        assert_eq!(
            upcast(account, "FromTheFuture", 1, data.clone()).unwrap(),
            data
        );
        assert!(upcast(account, "FromTheFuture", 2, data).is_err());
    }

    #[test]
    fn every_older_version_of_a_declared_type_has_an_upcaster() {
        for category in StreamCategory::ALL {
            for declaration in category.declarations() {
                let event_type = declaration.event_type;
                for from in DEFAULT_SCHEMA_VERSION..declaration.schema_version {
                    assert!(
                        UPCASTERS
                            .iter()
                            .any(|(t, v, _)| *t == event_type && *v == from),
                        "{event_type} is at version {}: stored version {from} needs an upcaster",
                        declaration.schema_version
                    );
                }
            }
        }
        for (event_type, from, _) in UPCASTERS {
            let current = StreamCategory::ALL
                .into_iter()
                .find_map(|category| category.declaration_of(event_type))
                .map(|declaration| declaration.schema_version);
            assert!(
                current.is_some_and(|current| *from < current),
                "the upcaster of {event_type} v{from} reads a version below the current one"
            );
        }
    }
}
