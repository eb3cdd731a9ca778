//! Bring-your-own provider keys: an account's (`/me/provider-keys`) and a workspace's
//! (`/workspaces/{id}/provider-keys`, managed by admins and owners, listed to members
//! without hints), verified with the provider before they are saved, sealed with the
//! owner's data key, never returned; and the studio workers' resolve
//! (`/internal/provider-keys/resolve`, `service` tokens only), recorded on the key's
//! stream. [`reverify_all`] verifies every stored key again on a schedule.
//!
//! This file holds the routes' types and the steps they share; the handlers are in
//! `mine` (`/me/provider-keys`), `workspace` (`/workspaces/{id}/provider-keys`) and
//! `resolve` (the resolve route and the scheduled verification).

use super::workspaces::{require_admin, role_in};
use crate::byok::{MAX_KEY, MAX_SERVICE_ACCOUNT, Verdict, check_shape};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    ApiJson, ApiPath, ApiQuery, CurrentSession, Operator, RequestContext, Service,
};
use crate::openapi::Routes;
use crate::pages::HistoryPageQuery;
use crate::state::{AppState, Byok, Core};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use commands::CommandContext;
use domain::provider_key::{CredentialKind, Provider, ProviderKeys};
use domain::{AccountId, WorkspaceId};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use store::GlobalPosition;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

mod mine;
mod resolve;
mod workspace;

pub use resolve::reverify_all;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(mine::list_mine_provider_keys))
        .routes(routes!(
            mine::put_mine_provider_keys,
            mine::delete_mine_provider_keys
        ))
        .routes(routes!(mine::verify_mine_provider_keys))
        .routes(routes!(mine::history_mine_provider_keys))
        .routes(routes!(workspace::list_workspace_provider_keys))
        .routes(routes!(
            workspace::put_workspace_provider_keys,
            workspace::delete_workspace_provider_keys
        ))
        .routes(routes!(workspace::verify_workspace_provider_keys))
        .routes(routes!(workspace::history_workspace_provider_keys))
        .routes(routes!(resolve::resolve_provider_key))
}

/// A provider whose keys may be brought.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderName {
    /// Google (an API key or a service account).
    Google,
    /// OpenAI.
    Openai,
    /// Anthropic.
    Anthropic,
    /// ElevenLabs.
    Elevenlabs,
}

impl From<ProviderName> for Provider {
    fn from(name: ProviderName) -> Self {
        match name {
            ProviderName::Google => Provider::Google,
            ProviderName::Openai => Provider::Openai,
            ProviderName::Anthropic => Provider::Anthropic,
            ProviderName::Elevenlabs => Provider::Elevenlabs,
        }
    }
}

/// Path of one of the caller's keys.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct MyKeyPath {
    /// The provider.
    pub provider: ProviderName,
}

/// Path of a workspace.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WorkspaceKeysPath {
    /// The workspace.
    pub id: Uuid,
}

/// Path of one of a workspace's keys.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WorkspaceKeyPath {
    /// The workspace.
    pub id: Uuid,
    /// The provider.
    pub provider: ProviderName,
}

/// A provider's key, as its owner sees it (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderKeyView {
    /// The provider.
    pub provider: String,
    /// Whether keys can be sealed for this owner now (false: saving is refused).
    pub encryption_available: bool,
    /// Whether a key is stored.
    pub credential_exists: bool,
    /// `api_key` or `service_account`.
    pub kind: Option<String>,
    /// Its prefix and last four characters, or the service account's e-mail (not shown
    /// to a workspace's plain members).
    pub key_hint: Option<String>,
    /// A service account's e-mail.
    pub service_account_email: Option<String>,
    /// A service account's project.
    pub project_id: Option<String>,
    /// When it was saved (RFC 3339).
    pub updated_at: Option<String>,
    /// When it was last verified with the provider (RFC 3339).
    pub last_verified_at: Option<String>,
    /// `unverified`, `valid`, `invalid` or `limited` (absent when no key is stored).
    pub status: Option<String>,
    /// What the provider said, when invalid or limited.
    pub problem: Option<String>,
}

/// A key to save: exactly one of `api_key` and `service_account_json` (Google only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutProviderKey {
    /// The API key.
    #[schema(min_length = 20, max_length = 512)]
    pub api_key: Option<String>,
    /// A Google service account's JSON key, as a string.
    #[schema(max_length = 16384)]
    pub service_account_json: Option<String>,
    /// Verify it with the provider first (default true).
    #[serde(default)]
    pub verify: Option<bool>,
}

/// One line of a key's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryView {
    /// `set`, `verified`, `invalid`, `removed` or `resolved`.
    pub action: String,
    /// The key's version.
    pub version: Option<u32>,
    /// The status after it.
    pub status: Option<String>,
    /// Who acted; for `resolved`, the account the key was read for.
    pub account_id: Option<Uuid>,
    /// For `resolved`: the service token that read it.
    pub service_token_id: Option<Uuid>,
    /// When (RFC 3339).
    pub at: String,
}

/// A page of a key's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// The provider.
    pub provider: String,
    /// What happened.
    pub entries: Vec<HistoryEntryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A resolve request from the studio's workers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The account the generation is for.
    pub account_id: Uuid,
    /// The workspace it runs in, if any.
    pub workspace_id: Option<Uuid>,
    /// The provider.
    pub provider: ProviderName,
}

/// Which key to use.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResolvedView {
    /// `account` (the member's own), `workspace`, or `platform` (use the platform's).
    pub source: String,
    /// The provider.
    pub provider: String,
    /// `api_key` or `service_account`.
    pub kind: Option<String>,
    /// The API key.
    pub api_key: Option<String>,
    /// The service account's JSON key.
    pub service_account_json: Option<String>,
    /// The key's version.
    pub version: Option<u32>,
    /// The workspace whose key it is.
    pub workspace_id: Option<Uuid>,
}

fn kind_name(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ApiKey => "api_key",
        CredentialKind::ServiceAccount => "service_account",
    }
}

fn views(state: &ProviderKeys, encryption: bool, hints: bool) -> Vec<ProviderKeyView> {
    Provider::ALL
        .into_iter()
        .map(|provider| view(state, provider, encryption, hints))
        .collect()
}

fn view(
    state: &ProviderKeys,
    provider: Provider,
    encryption: bool,
    hints: bool,
) -> ProviderKeyView {
    let key = state.keys.get(&provider);
    ProviderKeyView {
        provider: provider.as_str().into(),
        encryption_available: encryption,
        credential_exists: key.is_some(),
        kind: key.map(|k| kind_name(k.kind).into()),
        key_hint: key.filter(|_| hints).map(|k| k.hint.clone()),
        service_account_email: key
            .filter(|_| hints)
            .and_then(|k| k.service_account_email.clone()),
        project_id: key.and_then(|k| k.project_id.clone()),
        updated_at: key.map(|k| k.updated_at.to_rfc3339()),
        last_verified_at: key.and_then(|k| k.last_verified_at.map(|t| t.to_rfc3339())),
        status: key.map(|k| k.status.as_str().into()),
        problem: key.and_then(|k| k.problem.clone()),
    }
}

/// The page `page` asks for of `owner`'s history of `provider`, from the read model: it
/// grows by an entry each time the key is handed out for a generation. The cursor is the
/// stream revision of the page's last entry.
async fn history(
    core: &Core,
    owner: Uuid,
    provider: Provider,
    page: &HistoryPageQuery,
) -> Result<HistoryView, ApiError> {
    let (after, limit) = page.after()?;
    let (entries, more) =
        projections::provider_keys::history(&core.db, owner, provider, after, limit).await?;
    let next_cursor = more
        .then(|| entries.last().map(|(revision, _)| revision.to_string()))
        .flatten();
    Ok(HistoryView {
        provider: provider.as_str().into(),
        entries: entries
            .into_iter()
            .map(|(_, h)| HistoryEntryView {
                action: h.action.into(),
                version: h.version,
                status: h.status.map(|s| s.as_str().into()),
                account_id: h.account_id.map(|a| a.0),
                service_token_id: h.service_token,
                at: h.at.to_rfc3339(),
            })
            .collect(),
        next_cursor,
    })
}

fn unreachable_provider(why: String) -> ApiError {
    ApiError::BadGateway("provider_unreachable", why)
}

/// Checks, verifies and saves a key for `owner`; answers its view.
#[allow(clippy::too_many_arguments)]
async fn save(
    core: &Core,
    byok: &Byok,
    ctx: CommandContext,
    owner: Uuid,
    workspace: bool,
    by: AccountId,
    provider: Provider,
    body: PutProviderKey,
) -> Result<ProviderKeyView, ApiError> {
    if body.api_key.as_ref().is_some_and(|k| k.len() > MAX_KEY)
        || body
            .service_account_json
            .as_ref()
            .is_some_and(|j| j.len() > MAX_SERVICE_ACCOUNT)
    {
        return Err(ApiError::invalid("body", "the credential is too long"));
    }
    let credential = check_shape(provider, body.api_key, body.service_account_json)?;
    if !byok.keys.encryption_available(owner).await {
        return Err(ApiError::Unavailable(
            commands::provider_keys::ENCRYPTION_UNAVAILABLE,
            "keys cannot be sealed now: the owner's data key is unavailable".into(),
        ));
    }
    let verdict = if body.verify.unwrap_or(true) {
        byok.endpoints
            .verify(provider, credential.kind, &credential.secret)
            .await
    } else {
        Verdict::Unverified
    };
    match &verdict {
        Verdict::Invalid(why) => {
            return Err(ApiError::Unprocessable(
                "provider_key_rejected",
                format!("{} refused the key: {why}", provider.title()),
            ));
        }
        Verdict::Unreachable(why) => return Err(unreachable_provider(why.clone())),
        _ => {}
    }
    let (status, problem) = verdict.status();
    let position = byok
        .keys
        .set(
            &ctx, owner, workspace, by, provider, credential, status, problem,
        )
        .await?;
    visible(core, position).await?;
    let state = byok.keys.load(owner).await?;
    Ok(view(&state, provider, true, true))
}

async fn visible(core: &Core, position: Option<GlobalPosition>) -> Result<(), ApiError> {
    core.visible(Visibility::ReadModel(Follower::ProviderKeys), position)
        .await?;
    Ok(())
}

/// Verifies `owner`'s stored key again and records the outcome.
async fn verify_again(
    core: &Core,
    byok: &Byok,
    ctx: CommandContext,
    owner: Uuid,
    provider: Provider,
    by: AccountId,
) -> Result<ProviderKeyView, ApiError> {
    let state = byok.keys.load(owner).await?;
    let key = state.keys.get(&provider).ok_or_else(key_not_found)?;
    let secret = byok.keys.open(owner, provider, key).await?;
    let verdict = byok.endpoints.verify(provider, key.kind, &secret).await;
    if let Verdict::Unreachable(why) = verdict {
        return Err(unreachable_provider(why));
    }
    let (status, problem) = verdict.status();
    // The owner asked: nobody else is e-mailed.
    let position = byok
        .keys
        .record_verification(
            &ctx,
            owner,
            provider,
            key.version,
            status,
            problem,
            vec![],
            Some(by),
        )
        .await?;
    visible(core, position).await?;
    let state = byok.keys.load(owner).await?;
    Ok(view(&state, provider, true, true))
}

fn key_not_found() -> ApiError {
    ApiError::NotFound(
        "provider_key_not_found",
        "no key of this provider is stored".into(),
    )
}
