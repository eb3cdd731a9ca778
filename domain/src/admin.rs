//! Operator credentials (`admintoken-<id>`), accepted only on `/admin/*` routes.

use crate::event::Event;
use crate::{Aggregate, Timestamp};
use serde::{Deserialize, Serialize};

/// What an operator token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Everything under `/admin`.
    Admin,
    /// Read-only: reports such as reconciliation.
    Auditor,
}

impl AdminRole {
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
#[event(stream = "admintoken")]
pub enum AdminTokenEvent {
    /// Created; only its hash is stored.
    #[event(no_personal_data)]
    AdminTokenCreated {
        /// SHA-256 of the token.
        token_hash: String,
        /// Its role.
        role: AdminRole,
        /// A note for operators.
        label: String,
        /// When.
        at: Timestamp,
    },
    /// Revoked: refused from now on.
    #[event(no_personal_data)]
    AdminTokenRevoked {
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of an operator token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenCommand {
    /// Create it.
    Create {
        /// SHA-256 of the token.
        token_hash: String,
        /// Its role.
        role: AdminRole,
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
pub enum AdminTokenError {
    /// The id is taken.
    #[error("the token already exists")]
    Exists,
    /// No such token.
    #[error("no such token")]
    Unknown,
}

/// An operator token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminToken {
    /// Created.
    pub role: Option<AdminRole>,
    /// Revoked.
    pub revoked: bool,
}

impl Aggregate for AdminToken {
    type Event = AdminTokenEvent;
    type Command = AdminTokenCommand;
    type Error = AdminTokenError;

    fn decide(&self, c: &AdminTokenCommand) -> Result<Vec<AdminTokenEvent>, AdminTokenError> {
        match c {
            AdminTokenCommand::Create {
                token_hash,
                role,
                label,
                at,
            } => {
                if self.role.is_some() {
                    return Err(AdminTokenError::Exists);
                }
                Ok(vec![AdminTokenEvent::AdminTokenCreated {
                    token_hash: token_hash.clone(),
                    role: *role,
                    label: label.clone(),
                    at: *at,
                }])
            }
            AdminTokenCommand::Revoke { at } => match (self.role, self.revoked) {
                (None, _) => Err(AdminTokenError::Unknown),
                (Some(_), true) => Ok(vec![]),
                (Some(_), false) => Ok(vec![AdminTokenEvent::AdminTokenRevoked { at: *at }]),
            },
        }
    }

    fn evolve(&mut self, event: &AdminTokenEvent) {
        match event {
            AdminTokenEvent::AdminTokenCreated { role, .. } => self.role = Some(*role),
            AdminTokenEvent::AdminTokenRevoked { .. } => self.revoked = true,
        }
    }
}
