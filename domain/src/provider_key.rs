//! Bring-your-own provider keys (`providerkeys-<owner uuid>`): the AI-provider credentials
//! an account or a workspace keeps for the studio's generations, one per provider. The
//! owner is the stream's uuid (an account or a workspace); every event with the secret
//! is sealed with the owner's data key, so deleting the owner shreds its keys.
//!
//! The credential reaches this aggregate already sealed once more by the command layer
//! (associated data binding owner, provider and version, see [`credential_aad`]); the
//! rules here are which version is current, how a verification changes the status, who is
//! told when a key turns invalid, and the history the owner sees.

use crate::event::Event;
use crate::{AccountId, Aggregate, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

mod history;

pub use history::HistoryEntry;

/// An AI provider whose keys may be brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Google (Gemini): an API key or a service account's JSON key.
    Google,
    /// OpenAI.
    Openai,
    /// Anthropic.
    Anthropic,
    /// ElevenLabs.
    Elevenlabs,
}

impl Provider {
    /// Every provider, in the order they are listed.
    pub const ALL: [Provider; 4] = [
        Self::Google,
        Self::Openai,
        Self::Anthropic,
        Self::Elevenlabs,
    ];

    /// Its name, as clients write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Elevenlabs => "elevenlabs",
        }
    }

    /// Its name for people.
    pub fn title(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::Openai => "OpenAI",
            Self::Anthropic => "Anthropic",
            Self::Elevenlabs => "ElevenLabs",
        }
    }

    /// The provider named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// What kind of credential is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// An API key.
    ApiKey,
    /// A Google service account's JSON key.
    ServiceAccount,
}

/// How a key fared at its last verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Saved without verification.
    Unverified,
    /// The provider accepted it.
    Valid,
    /// The provider refused it.
    Invalid,
    /// Accepted, but without a permission the check needs (an ElevenLabs key without
    /// `user_read`): usable for what it allows.
    Limited,
}

impl KeyStatus {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unverified => "unverified",
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Limited => "limited",
        }
    }

    /// The status named `name`, as [`KeyStatus::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Unverified, Self::Valid, Self::Invalid, Self::Limited]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// The associated data a credential is sealed with: owner, provider and version, so a
/// sealed credential cannot be moved to another owner, provider or version.
pub fn credential_aad(owner: Uuid, provider: Provider, version: u32) -> Vec<u8> {
    format!("providerkey:{owner}:{}:{version}", provider.as_str()).into_bytes()
}

/// What happened to an owner's provider keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "providerkeys")]
pub enum ProviderKeyEvent {
    /// A key was saved (replacing any earlier one of the provider).
    #[event(personal(credential, hint, service_account_email, project_id))]
    ProviderKeySet {
        /// The provider.
        provider: Provider,
        /// 1 for the provider's first key, then one more for each.
        version: u32,
        /// API key or service account.
        kind: CredentialKind,
        /// The credential sealed with the owner's key ([`credential_aad`]), base64.
        credential: String,
        /// The key's prefix and last four characters, or the service account's e-mail.
        hint: String,
        /// The service account's e-mail.
        service_account_email: Option<String>,
        /// The service account's project.
        project_id: Option<String>,
        /// The verification's outcome (`unverified` when it was skipped).
        status: KeyStatus,
        /// What the provider said, when limited.
        problem: Option<String>,
        /// The owner is a workspace.
        workspace: bool,
        /// Who.
        by: AccountId,
        /// When.
        at: Timestamp,
    },
    /// A key was verified again, by its owner or the scheduler.
    #[event(no_personal_data)]
    ProviderKeyVerified {
        /// The provider.
        provider: Provider,
        /// The version verified.
        version: u32,
        /// The outcome.
        status: KeyStatus,
        /// What the provider said.
        problem: Option<String>,
        /// Whether the status changed with this verification.
        changed: bool,
        /// Who is told: the owner (or the workspace's admins) when it turned invalid.
        notify: Vec<AccountId>,
        /// The owner is a workspace.
        workspace: bool,
        /// Who asked (none: the scheduler).
        by: Option<AccountId>,
        /// When.
        at: Timestamp,
    },
    /// A key was removed.
    #[event(no_personal_data)]
    ProviderKeyRemoved {
        /// The provider.
        provider: Provider,
        /// Who.
        by: AccountId,
        /// When.
        at: Timestamp,
    },
    /// A key was handed, decrypted, to the studio's workers for `account`.
    #[event(no_personal_data)]
    ProviderKeyResolved {
        /// The provider.
        provider: Provider,
        /// The version handed out.
        version: u32,
        /// The account the generation is for.
        account_id: AccountId,
        /// The workspace it was resolved through, for a workspace's key.
        workspace_id: Option<Uuid>,
        /// The service token that read it.
        service_token: Uuid,
        /// When.
        at: Timestamp,
    },
}

/// The key of a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Its version.
    pub version: u32,
    /// API key or service account.
    pub kind: CredentialKind,
    /// Sealed with the owner's key ([`credential_aad`]), base64.
    pub credential: String,
    /// Its hint.
    pub hint: String,
    /// The service account's e-mail.
    pub service_account_email: Option<String>,
    /// The service account's project.
    pub project_id: Option<String>,
    /// Its status.
    pub status: KeyStatus,
    /// The last problem reported.
    pub problem: Option<String>,
    /// When it was saved.
    pub updated_at: Timestamp,
    /// When it was last verified (with the provider).
    pub last_verified_at: Option<Timestamp>,
}

/// An owner's provider keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderKeys {
    /// The current key of each provider.
    pub keys: BTreeMap<Provider, StoredKey>,
    /// The last version used per provider (never reused, even after a removal).
    pub versions: BTreeMap<Provider, u32>,
    /// The owner is a workspace.
    pub workspace: bool,
}

impl ProviderKeys {
    /// The version the next key of `provider` gets.
    pub fn next_version(&self, provider: Provider) -> u32 {
        self.versions.get(&provider).copied().unwrap_or(0) + 1
    }
}

/// What may be asked of an owner's provider keys.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderKeyCommand {
    /// Save a key (already verified and sealed for `version`).
    Set {
        /// The provider.
        provider: Provider,
        /// Must be [`ProviderKeys::next_version`].
        version: u32,
        /// API key or service account.
        kind: CredentialKind,
        /// The sealed credential.
        credential: String,
        /// Its hint.
        hint: String,
        /// The service account's e-mail.
        service_account_email: Option<String>,
        /// The service account's project.
        project_id: Option<String>,
        /// The verification's outcome.
        status: KeyStatus,
        /// What the provider said.
        problem: Option<String>,
        /// The owner is a workspace.
        workspace: bool,
        /// Who.
        by: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Record a verification of `version`.
    RecordVerification {
        /// The provider.
        provider: Provider,
        /// The version verified (a key replaced meanwhile records nothing).
        version: u32,
        /// The outcome.
        status: KeyStatus,
        /// What the provider said.
        problem: Option<String>,
        /// Who to tell if the key turned invalid.
        notify: Vec<AccountId>,
        /// Who asked (none: the scheduler).
        by: Option<AccountId>,
        /// Now.
        at: Timestamp,
    },
    /// Remove a key.
    Remove {
        /// The provider.
        provider: Provider,
        /// Who.
        by: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Record that `version` was handed out for `account_id`.
    Resolve {
        /// The provider.
        provider: Provider,
        /// The version handed out.
        version: u32,
        /// The account served.
        account_id: AccountId,
        /// Through this workspace.
        workspace_id: Option<Uuid>,
        /// The service token.
        service_token: Uuid,
        /// Now.
        at: Timestamp,
    },
}

/// Why a provider-key command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderKeyError {
    /// No key of this provider is stored.
    #[error("no key of this provider is stored")]
    NotFound,
    /// The key changed while it was being verified or read.
    #[error("the key changed meanwhile; try again")]
    Changed,
    /// The key was last verified invalid: it is not handed out.
    #[error("the key was last verified invalid")]
    Invalid,
}

impl Aggregate for ProviderKeys {
    type Event = ProviderKeyEvent;
    type Command = ProviderKeyCommand;
    type Error = ProviderKeyError;

    fn decide(
        &self,
        command: &ProviderKeyCommand,
    ) -> Result<Vec<ProviderKeyEvent>, ProviderKeyError> {
        use ProviderKeyCommand as C;
        use ProviderKeyEvent as E;
        match command {
            C::Set {
                provider,
                version,
                kind,
                credential,
                hint,
                service_account_email,
                project_id,
                status,
                problem,
                workspace,
                by,
                at,
            } => {
                if *version != self.next_version(*provider) {
                    return Err(ProviderKeyError::Changed);
                }
                Ok(vec![E::ProviderKeySet {
                    provider: *provider,
                    version: *version,
                    kind: *kind,
                    credential: credential.clone(),
                    hint: hint.clone(),
                    service_account_email: service_account_email.clone(),
                    project_id: project_id.clone(),
                    status: *status,
                    problem: problem.clone(),
                    workspace: *workspace,
                    by: *by,
                    at: *at,
                }])
            }
            C::RecordVerification {
                provider,
                version,
                status,
                problem,
                notify,
                by,
                at,
            } => {
                let key = self.keys.get(provider).ok_or(ProviderKeyError::NotFound)?;
                if key.version != *version {
                    return Err(ProviderKeyError::Changed);
                }
                let changed = key.status != *status;
                let turned_invalid = changed && *status == KeyStatus::Invalid;
                Ok(vec![E::ProviderKeyVerified {
                    provider: *provider,
                    version: *version,
                    status: *status,
                    problem: problem.clone(),
                    changed,
                    notify: if turned_invalid {
                        notify.clone()
                    } else {
                        vec![]
                    },
                    workspace: self.workspace,
                    by: *by,
                    at: *at,
                }])
            }
            C::Remove { provider, by, at } => {
                if !self.keys.contains_key(provider) {
                    return Ok(vec![]);
                }
                Ok(vec![E::ProviderKeyRemoved {
                    provider: *provider,
                    by: *by,
                    at: *at,
                }])
            }
            C::Resolve {
                provider,
                version,
                account_id,
                workspace_id,
                service_token,
                at,
            } => {
                let key = self.keys.get(provider).ok_or(ProviderKeyError::NotFound)?;
                if key.version != *version {
                    return Err(ProviderKeyError::Changed);
                }
                if key.status == KeyStatus::Invalid {
                    return Err(ProviderKeyError::Invalid);
                }
                Ok(vec![E::ProviderKeyResolved {
                    provider: *provider,
                    version: *version,
                    account_id: *account_id,
                    workspace_id: *workspace_id,
                    service_token: *service_token,
                    at: *at,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &ProviderKeyEvent) {
        use ProviderKeyEvent as E;
        match event {
            E::ProviderKeySet {
                provider,
                version,
                kind,
                credential,
                hint,
                service_account_email,
                project_id,
                status,
                problem,
                workspace,
                at,
                ..
            } => {
                self.workspace = *workspace;
                self.versions.insert(*provider, *version);
                let verified = *status != KeyStatus::Unverified;
                self.keys.insert(
                    *provider,
                    StoredKey {
                        version: *version,
                        kind: *kind,
                        credential: credential.clone(),
                        hint: hint.clone(),
                        service_account_email: service_account_email.clone(),
                        project_id: project_id.clone(),
                        status: *status,
                        problem: problem.clone(),
                        updated_at: *at,
                        last_verified_at: verified.then_some(*at),
                    },
                );
            }
            E::ProviderKeyVerified {
                provider,
                version,
                status,
                problem,
                at,
                ..
            } => {
                if let Some(key) = self.keys.get_mut(provider)
                    && key.version == *version
                {
                    key.status = *status;
                    key.problem.clone_from(problem);
                    key.last_verified_at = Some(*at);
                }
            }
            E::ProviderKeyRemoved { provider, .. } => {
                self.keys.remove(provider);
            }
            // Only the history (a read model) records a resolve.
            E::ProviderKeyResolved { .. } => {}
        }
    }
}

/// A key's prefix and last four characters (`sk-p…wxyz`); a short key shows nothing.
pub fn key_hint(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests;
