//! Operator credentials (`admintoken-<id>`), accepted only on `/admin/*` routes.

use crate::event::Event;
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};

/// What an operator token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Everything under `/admin`.
    Admin,
    /// Read-only: reports such as reconciliation.
    Auditor,
}

impl OperatorRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Auditor => "auditor",
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
    },
    /// Revoked: refused from now on.
    #[serde(rename = "AdminTokenRevoked")]
    #[event(no_personal_data)]
    OperatorTokenRevoked {
        /// When.
        at: Timestamp,
    },
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
            } => {
                if self.role.is_some() {
                    return Err(OperatorTokenError::Exists);
                }
                Ok(vec![OperatorTokenEvent::OperatorTokenCreated {
                    token_hash: token_hash.clone(),
                    role: *role,
                    label: label.clone(),
                    at: *at,
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
