//! Access tokens an account issues to programs (`accesstoken-<id>`): public API tokens,
//! with scopes, expiry and rotation with a grace period, and CLI tokens. The two kinds share
//! one life cycle but are never interchangeable: the kind is fixed at creation, carried in
//! the token's prefix, and checked by every route that accepts a token.

use crate::event::Event;
use crate::{AccountId, Aggregate, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// Longest grace period of a rotation.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// The public API (`/api/v1`), limited by scopes.
    Api,
    /// The studio CLI on a device.
    CliDevice,
    /// The studio CLI's screen recorder.
    CliRecorder,
}

impl TokenKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::CliDevice => "cli_device",
            Self::CliRecorder => "cli_recorder",
        }
    }

    /// Whether this is a CLI token.
    pub fn is_cli(self) -> bool {
        matches!(self, Self::CliDevice | Self::CliRecorder)
    }
}

/// A permission of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// `GET /api/v1/me`.
    #[serde(rename = "account:read")]
    AccountRead,
    /// Balance and credit history.
    #[serde(rename = "credits:read")]
    CreditsRead,
    /// Holding, settling and releasing credits for generations.
    #[serde(rename = "generations:write")]
    GenerationsWrite,
    /// Per-token usage counts.
    #[serde(rename = "usage:read")]
    UsageRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Self::AccountRead,
        Self::CreditsRead,
        Self::GenerationsWrite,
        Self::UsageRead,
    ];

    /// Its name, as clients write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccountRead => "account:read",
            Self::CreditsRead => "credits:read",
            Self::GenerationsWrite => "generations:write",
            Self::UsageRead => "usage:read",
        }
    }

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What happened to an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "accesstoken")]
pub enum AccessTokenEvent {
    /// Issued; only the hash of the secret is stored. The label is the owner's own words
    /// (tokens created before it was sealed keep theirs in the clear).
    #[event(personal(label))]
    AccessTokenCreated {
        /// The owner.
        account_id: AccountId,
        /// API or CLI.
        kind: TokenKind,
        /// The owner's name for it.
        label: String,
        /// What it may do (API tokens; empty for CLI tokens).
        scopes: Vec<Scope>,
        /// SHA-256 of the secret.
        token_hash: String,
        /// Prefix and last characters, to recognise it in a list.
        hint: String,
        /// When it stops working by itself.
        expires_at: Option<Timestamp>,
        /// When.
        at: Timestamp,
    },
    /// A new secret replaced the old, which keeps working until `previous_valid_until`.
    #[event(no_personal_data)]
    AccessTokenRotated {
        /// SHA-256 of the new secret.
        token_hash: String,
        /// Its hint.
        hint: String,
        /// The hash of the secret replaced.
        previous_hash: String,
        /// The replaced secret dies then.
        previous_valid_until: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// Revoked: refused from the next request on.
    #[event(no_personal_data)]
    AccessTokenRevoked {
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessTokenCommand {
    /// Issue it.
    Create {
        /// The owner.
        account_id: AccountId,
        /// API or CLI.
        kind: TokenKind,
        /// 1-64 characters.
        label: String,
        /// At least one for an API token; none for a CLI token.
        scopes: Vec<Scope>,
        /// SHA-256 of the secret.
        token_hash: String,
        /// Its hint.
        hint: String,
        /// Optional end of life.
        expires_at: Option<Timestamp>,
        /// Now.
        at: Timestamp,
    },
    /// Replace the secret, keeping the old one for `grace`.
    Rotate {
        /// Who asks.
        account_id: AccountId,
        /// SHA-256 of the new secret.
        token_hash: String,
        /// Its hint.
        hint: String,
        /// At most [`MAX_ROTATION_GRACE`].
        grace: Duration,
        /// Now.
        at: Timestamp,
    },
    /// Revoke it.
    Revoke {
        /// Who asks.
        account_id: AccountId,
        /// Now.
        at: Timestamp,
    },
}

/// Why an access-token command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// The id is taken.
    #[error("the token already exists")]
    Exists,
    /// No such token for this account (or it was revoked).
    #[error("no such token")]
    NotFound,
    /// Expired tokens cannot be rotated.
    #[error("the token has expired")]
    Expired,
    /// A field is out of bounds.
    #[error("{field}: {message}")]
    Invalid {
        /// Which.
        field: &'static str,
        /// Why.
        message: String,
    },
}

/// The state of an access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessToken {
    /// The owner, once created.
    pub account_id: Option<AccountId>,
    /// Its kind.
    pub kind: Option<TokenKind>,
    /// Its current hash.
    pub token_hash: String,
    /// End of life.
    pub expires_at: Option<Timestamp>,
    /// Revoked.
    pub revoked: bool,
}

fn invalid(field: &'static str, message: &str) -> AccessTokenError {
    AccessTokenError::Invalid {
        field,
        message: message.to_owned(),
    }
}

impl AccessToken {
    fn live_for(&self, account: AccountId) -> Result<(), AccessTokenError> {
        if self.account_id != Some(account) || self.revoked {
            return Err(AccessTokenError::NotFound);
        }
        Ok(())
    }
}

impl Aggregate for AccessToken {
    type Event = AccessTokenEvent;
    type Command = AccessTokenCommand;
    type Error = AccessTokenError;

    fn decide(&self, c: &AccessTokenCommand) -> Result<Vec<AccessTokenEvent>, AccessTokenError> {
        use AccessTokenCommand as C;
        use AccessTokenEvent as E;
        match c {
            C::Create {
                account_id,
                kind,
                label,
                scopes,
                token_hash,
                hint,
                expires_at,
                at,
            } => {
                if self.account_id.is_some() {
                    return Err(AccessTokenError::Exists);
                }
                let label = label.trim();
                let length = label.chars().count();
                if length == 0 || length > 64 || label.chars().any(char::is_control) {
                    return Err(invalid("label", "must be 1 to 64 printable characters"));
                }
                let mut scopes = scopes.clone();
                scopes.sort_unstable();
                scopes.dedup();
                match kind {
                    TokenKind::Api if scopes.is_empty() => {
                        return Err(invalid("scopes", "an API token needs at least one scope"));
                    }
                    k if k.is_cli() && !scopes.is_empty() => {
                        return Err(invalid("scopes", "CLI tokens take no scopes"));
                    }
                    _ => {}
                }
                if expires_at.is_some_and(|e| e <= *at) {
                    return Err(invalid("expires_in_days", "must be in the future"));
                }
                Ok(vec![E::AccessTokenCreated {
                    account_id: *account_id,
                    kind: *kind,
                    label: label.to_owned(),
                    scopes,
                    token_hash: token_hash.clone(),
                    hint: hint.clone(),
                    expires_at: *expires_at,
                    at: *at,
                }])
            }
            C::Rotate {
                account_id,
                token_hash,
                hint,
                grace,
                at,
            } => {
                self.live_for(*account_id)?;
                if self.expires_at.is_some_and(|e| e <= *at) {
                    return Err(AccessTokenError::Expired);
                }
                if *grace > MAX_ROTATION_GRACE {
                    return Err(invalid("grace_seconds", "must be at most 86400 (24 hours)"));
                }
                Ok(vec![E::AccessTokenRotated {
                    token_hash: token_hash.clone(),
                    hint: hint.clone(),
                    previous_hash: self.token_hash.clone(),
                    previous_valid_until: at.plus(*grace),
                    at: *at,
                }])
            }
            C::Revoke { account_id, at } => {
                self.live_for(*account_id)?;
                Ok(vec![E::AccessTokenRevoked { at: *at }])
            }
        }
    }

    fn evolve(&mut self, event: &AccessTokenEvent) {
        match event {
            AccessTokenEvent::AccessTokenCreated {
                account_id,
                kind,
                token_hash,
                expires_at,
                ..
            } => {
                self.account_id = Some(*account_id);
                self.kind = Some(*kind);
                self.token_hash.clone_from(token_hash);
                self.expires_at = *expires_at;
            }
            AccessTokenEvent::AccessTokenRotated { token_hash, .. } => {
                self.token_hash.clone_from(token_hash);
            }
            AccessTokenEvent::AccessTokenRevoked { .. } => self.revoked = true,
        }
    }
}

/// Requests one token made during one flush interval, by day and status class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyRequests {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// 2xx answers.
    pub ok: u64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
}

/// Usage of an account's tokens (`usage-<account id>`), appended once per token per
/// flush interval rather than once per request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "usage")]
pub enum UsageEvent {
    /// What one token did since the last flush.
    #[event(personal(last_ip, last_user_agent))]
    TokenUsed {
        /// The token.
        token_id: Uuid,
        /// Counts by day.
        days: Vec<DailyRequests>,
        /// The last request.
        last_used_at: Timestamp,
        /// Its client IP (personal: sealed).
        last_ip: Option<String>,
        /// Its user agent (personal: sealed).
        last_user_agent: Option<String>,
    },
}

#[cfg(test)]
mod tests;
