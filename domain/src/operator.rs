//! Operator credentials (`admintoken-<id>`), accepted only on `/admin/*` routes.

use crate::event::Event;
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long an operator token lives when its creation recorded no expiry (tokens created
/// before expiry was recorded): this long after its creation, like a new token's default.
pub const UNRECORDED_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// What an operator token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Everything under `/admin`.
    Admin,
    /// Read-only: reports such as reconciliation.
    Auditor,
    /// The studio's generation workers: accepted only on `/internal/*` (resolving
    /// provider keys), never on `/admin`.
    Service,
}

impl std::str::FromStr for OperatorRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "admin" => Ok(Self::Admin),
            "auditor" => Ok(Self::Auditor),
            "service" => Ok(Self::Service),
            other => Err(format!("no operator role {other:?}")),
        }
    }
}

impl OperatorRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::Service => "service",
        }
    }
}

/// What happened to an operator token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
// Stored names predate the word "operator" and never change.
#[event(stream = "admintoken")]
pub enum OperatorTokenEvent {
    /// Created; only its hash is stored.
    #[serde(rename = "AdminTokenCreated")]
    #[event(no_personal_data)]
    OperatorTokenCreated {
        /// SHA-256 of the token.
        token_hash: String,
        /// Its role.
        role: OperatorRole,
        /// A note for operators.
        label: String,
        /// When.
        at: Timestamp,
        /// Refused from then on. Absent in tokens created before expiry was recorded:
        /// those expire [`UNRECORDED_LIFETIME`] after `at` (see [`expiry`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<Timestamp>,
    },
    /// Revoked: refused from now on.
    #[serde(rename = "AdminTokenRevoked")]
    #[event(no_personal_data)]
    OperatorTokenRevoked {
        /// When.
        at: Timestamp,
    },
}

/// When a token created at `at` with the recorded `expires_at` stops being accepted.
pub fn expiry(at: Timestamp, expires_at: Option<Timestamp>) -> Timestamp {
    expires_at.unwrap_or_else(|| at.plus(UNRECORDED_LIFETIME))
}

/// What may be asked of an operator token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorTokenCommand {
    /// Create it.
    Create {
        /// SHA-256 of the token.
        token_hash: String,
        /// Its role.
        role: OperatorRole,
        /// A note.
        label: String,
        /// Now.
        at: Timestamp,
        /// When it stops being accepted.
        expires_at: Timestamp,
    },
    /// Revoke it.
    Revoke {
        /// Now.
        at: Timestamp,
    },
}

/// Why an operator-token command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorTokenError {
    /// The id is taken.
    #[error("the token already exists")]
    Exists,
    /// No such token.
    #[error("no such token")]
    Unknown,
    /// The expiry is not after the creation.
    #[error("a token must expire after it is created")]
    InvalidExpiry,
}

/// An operator token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorToken {
    /// Created.
    pub role: Option<OperatorRole>,
    /// Revoked.
    pub revoked: bool,
}

impl Aggregate for OperatorToken {
    type Event = OperatorTokenEvent;
    type Command = OperatorTokenCommand;
    type Error = OperatorTokenError;

    fn decide(
        &self,
        c: &OperatorTokenCommand,
    ) -> Result<Vec<OperatorTokenEvent>, OperatorTokenError> {
        match c {
            OperatorTokenCommand::Create {
                token_hash,
                role,
                label,
                at,
                expires_at,
            } => {
                if self.role.is_some() {
                    return Err(OperatorTokenError::Exists);
                }
                if expires_at <= at {
                    return Err(OperatorTokenError::InvalidExpiry);
                }
                Ok(vec![OperatorTokenEvent::OperatorTokenCreated {
                    token_hash: token_hash.clone(),
                    role: *role,
                    label: label.clone(),
                    at: *at,
                    expires_at: Some(*expires_at),
                }])
            }
            OperatorTokenCommand::Revoke { at } => match (self.role, self.revoked) {
                (None, _) => Err(OperatorTokenError::Unknown),
                (Some(_), true) => Ok(vec![]),
                (Some(_), false) => Ok(vec![OperatorTokenEvent::OperatorTokenRevoked { at: *at }]),
            },
        }
    }

    fn evolve(&mut self, event: &OperatorTokenEvent) {
        match event {
            OperatorTokenEvent::OperatorTokenCreated { role, .. } => self.role = Some(*role),
            OperatorTokenEvent::OperatorTokenRevoked { .. } => self.revoked = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
    }

    fn create(expires_at: Timestamp) -> OperatorTokenCommand {
        OperatorTokenCommand::Create {
            token_hash: "hash".into(),
            role: OperatorRole::Auditor,
            label: "nightly".into(),
            at: at(0),
            expires_at,
        }
    }

    #[test]
    fn a_created_token_records_its_expiry() {
        given::<OperatorToken>([]).when(create(at(86_400))).then([
            OperatorTokenEvent::OperatorTokenCreated {
                token_hash: "hash".into(),
                role: OperatorRole::Auditor,
                label: "nightly".into(),
                at: at(0),
                expires_at: Some(at(86_400)),
            },
        ]);
        given::<OperatorToken>([])
            .when(create(at(0)))
            .then_error(OperatorTokenError::InvalidExpiry);
    }

    #[test]
    fn a_token_stored_without_an_expiry_decodes_and_expires_after_the_default_lifetime() {
        let stored = r#"{"type":"AdminTokenCreated","token_hash":"h","role":"admin","label":"","at":"2027-01-15T08:00:00Z"}"#;
        let event: OperatorTokenEvent = serde_json::from_str(stored).unwrap();
        let OperatorTokenEvent::OperatorTokenCreated { at, expires_at, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(expires_at, None);
        assert_eq!(expiry(at, expires_at), at.plus(UNRECORDED_LIFETIME));
        let soon = at.plus(Duration::from_secs(60));
        assert_eq!(expiry(at, Some(soon)), soon);
    }
}
