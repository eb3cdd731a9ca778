//! Provider keys (bring your own key): saving, verifying, removing and resolving an
//! owner's keys on `providerkeys-<owner>`, the owner being an account or a workspace.
//!
//! A credential is sealed twice: here with the owner's data key and associated data
//! binding owner, provider and version ([`credential_aad`]), and then, as a personal field
//! of its event, by the codec (associated data: stream and event id). Both seals use the
//! owner's key, so destroying it (account or workspace deletion) shreds every copy.

use crate::clock::Clock;
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executor};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use domain::provider_key::{
    CredentialKind, KeyStatus, Provider, ProviderKeyCommand, ProviderKeyError, ProviderKeys,
    StoredKey, credential_aad,
};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
use std::sync::Arc;
use store::GlobalPosition;
use uuid::Uuid;
use vault::DataKeys;

impl From<ProviderKeyError> for CommandError {
    fn from(e: ProviderKeyError) -> Self {
        let message = e.to_string();
        match e {
            ProviderKeyError::NotFound => {
                CommandError::rejected(Rejection::NotFound, "provider_key_not_found", message)
            }
            ProviderKeyError::Changed => {
                CommandError::rejected(Rejection::Conflict, "provider_key_changed", message)
            }
            ProviderKeyError::Invalid => {
                CommandError::rejected(Rejection::Conflict, "provider_key_invalid", message)
            }
        }
    }
}

/// Reads of a key that changed under its resolve (another version saved each time) before
/// the resolve gives up.
const RESOLVE_ATTEMPTS: usize = 3;

/// The code of a save refused because the owner's key cannot seal.
pub const ENCRYPTION_UNAVAILABLE: &str = "encryption_unavailable";

/// The stream of an owner's keys.
pub fn provider_keys_stream(owner: Uuid) -> String {
    StreamCategory::ProviderKeys.stream(owner)
}

/// A credential to save, already checked and verified.
#[derive(Clone)]
pub struct NewCredential {
    /// API key or service account.
    pub kind: CredentialKind,
    /// The secret: the key, or the service account's JSON.
    pub secret: String,
    /// Its hint.
    pub hint: String,
    /// The service account's e-mail.
    pub service_account_email: Option<String>,
    /// The service account's project.
    pub project_id: Option<String>,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("kind", &self.kind)
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

/// A key handed to the studio's workers.
pub struct ResolvedKey {
    /// The stored key (its version, kind, hint).
    pub key: StoredKey,
    /// The decrypted secret.
    pub secret: String,
}

/// Provider-key commands.
#[derive(Clone)]
pub struct ProviderKeyStore {
    exec: Executor,
    clock: Arc<dyn Clock>,
    keys: Arc<DataKeys>,
}

impl ProviderKeyStore {
    /// Handlers over `exec`, sealing with `keys`.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>, keys: Arc<DataKeys>) -> Self {
        Self { exec, clock, keys }
    }

    /// The clock in use.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The owner's keys as their events tell them now.
    pub async fn load(&self, owner: Uuid) -> Result<ProviderKeys, CommandError> {
        Ok(self
            .exec
            .load::<ProviderKeys>(&provider_keys_stream(owner))
            .await?
            .state)
    }

    /// Whether the owner's data key can seal now: it exists (not erased) and the key
    /// store answers.
    pub async fn encryption_available(&self, owner: Uuid) -> bool {
        matches!(self.keys.get(owner).await, Ok(Some(_)))
    }

    async fn data_key(&self, owner: Uuid) -> Result<Arc<[u8; 32]>, CommandError> {
        let unavailable = |why: &str| {
            CommandError::rejected(
                Rejection::Unavailable,
                ENCRYPTION_UNAVAILABLE,
                format!("keys cannot be sealed now: {why}"),
            )
        };
        match self.keys.get(owner).await {
            Ok(Some(key)) => Ok(key),
            Ok(None) => Err(unavailable("the owner's data key no longer exists")),
            Err(error) => {
                tracing::warn!(%error, "the key store does not answer");
                Err(unavailable("the key store does not answer"))
            }
        }
    }

    async fn run(
        &self,
        ctx: &CommandContext,
        owner: Uuid,
        at: Timestamp,
        mut command: impl FnMut(&ProviderKeys) -> Result<ProviderKeyCommand, CommandError>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let executed = self
            .exec
            .execute::<ProviderKeys, _>(
                &provider_keys_stream(owner),
                ctx,
                Some(owner),
                at,
                |state| Ok(state.decide(&command(state)?)?),
            )
            .await?;
        Ok(executed.position)
    }

    /// Saves `credential` for `provider`, sealed for its new version.
    #[allow(clippy::too_many_arguments)]
    pub async fn set(
        &self,
        ctx: &CommandContext,
        owner: Uuid,
        workspace: bool,
        by: AccountId,
        provider: Provider,
        credential: NewCredential,
        status: KeyStatus,
        problem: Option<String>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let key = self.data_key(owner).await?;
        let at = self.clock.now();
        self.run(ctx, owner, at, |state| {
            let version = state.next_version(provider);
            let sealed = vault::seal(
                &key,
                &credential_aad(owner, provider, version),
                credential.secret.as_bytes(),
            );
            Ok(ProviderKeyCommand::Set {
                provider,
                version,
                kind: credential.kind,
                credential: STANDARD.encode(sealed),
                hint: credential.hint.clone(),
                service_account_email: credential.service_account_email.clone(),
                project_id: credential.project_id.clone(),
                status,
                problem: problem.clone(),
                workspace,
                by,
                at,
            })
        })
        .await
    }

    /// Records the outcome of verifying `version` of `provider`'s key.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_verification(
        &self,
        ctx: &CommandContext,
        owner: Uuid,
        provider: Provider,
        version: u32,
        status: KeyStatus,
        problem: Option<String>,
        notify: Vec<AccountId>,
        by: Option<AccountId>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        self.run(ctx, owner, at, |_| {
            Ok(ProviderKeyCommand::RecordVerification {
                provider,
                version,
                status,
                problem: problem.clone(),
                notify: notify.clone(),
                by,
                at,
            })
        })
        .await
    }

    /// Removes `provider`'s key (nothing if there is none).
    pub async fn remove(
        &self,
        ctx: &CommandContext,
        owner: Uuid,
        provider: Provider,
        by: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        self.run(ctx, owner, at, |_| {
            Ok(ProviderKeyCommand::Remove { provider, by, at })
        })
        .await
    }

    /// Opens the secret of `key` of `owner`'s `provider`.
    pub async fn open(
        &self,
        owner: Uuid,
        provider: Provider,
        key: &StoredKey,
    ) -> Result<String, CommandError> {
        let data_key = self.data_key(owner).await?;
        let sealed = STANDARD
            .decode(&key.credential)
            .map_err(|e| CommandError::Internal(format!("sealed credential: {e}")))?;
        let opened = vault::open(
            &data_key,
            &credential_aad(owner, provider, key.version),
            &sealed,
        )?;
        String::from_utf8(opened)
            .map_err(|e| CommandError::Internal(format!("sealed credential: {e}")))
    }

    /// The owner's usable (not invalid) key of `provider`, decrypted, recording that it
    /// was handed out for `account` by `service_token`. `None`: no usable key.
    ///
    /// The key opened is the one the recording is decided against: one removed, replaced or
    /// found invalid between the read and the append is not handed out; the key is read
    /// again (none usable: `None`, and the caller falls back).
    pub async fn resolve(
        &self,
        ctx: &CommandContext,
        owner: Uuid,
        provider: Provider,
        account: AccountId,
        workspace_id: Option<Uuid>,
        service_token: Uuid,
    ) -> Result<Option<ResolvedKey>, CommandError> {
        for _ in 0..RESOLVE_ATTEMPTS {
            let state = self.load(owner).await?;
            let Some(key) = state.keys.get(&provider).cloned() else {
                return Ok(None);
            };
            if key.status == KeyStatus::Invalid {
                return Ok(None);
            }
            let secret = self.open(owner, provider, &key).await?;
            let at = self.clock.now();
            let command = ProviderKeyCommand::Resolve {
                provider,
                version: key.version,
                account_id: account,
                workspace_id,
                service_token,
                at,
            };
            let mut unusable = false;
            self.exec
                .execute::<ProviderKeys, _>(
                    &provider_keys_stream(owner),
                    ctx,
                    Some(owner),
                    at,
                    |state| match state.decide(&command) {
                        Err(
                            ProviderKeyError::NotFound
                            | ProviderKeyError::Changed
                            | ProviderKeyError::Invalid,
                        ) => {
                            unusable = true;
                            Ok(vec![])
                        }
                        decided => {
                            unusable = false;
                            Ok(decided?)
                        }
                    },
                )
                .await?;
            if !unusable {
                return Ok(Some(ResolvedKey { key, secret }));
            }
        }
        Err(CommandError::Contention)
    }
}
