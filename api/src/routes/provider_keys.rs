//! Bring-your-own provider keys: an account's (`/me/provider-keys`) and a workspace's
//! (`/workspaces/{id}/provider-keys`, managed by admins and owners, listed to members
//! without hints), verified with the provider before they are saved, sealed with the
//! owner's data key, never returned; and the studio workers' resolve
//! (`/internal/provider-keys/resolve`, `service` tokens only), recorded on the key's
//! stream. [`reverify_all`] verifies every stored key again on a schedule.

use super::workspaces::{require_admin, role_in};
use crate::byok::{MAX_KEY, MAX_SERVICE_ACCOUNT, Verdict, check_shape};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, CurrentSession, Operator, RequestContext, Service};
use crate::openapi::Routes;
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

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(list_mine_provider_keys))
        .routes(routes!(put_mine_provider_keys, delete_mine_provider_keys))
        .routes(routes!(verify_mine_provider_keys))
        .routes(routes!(history_mine_provider_keys))
        .routes(routes!(list_workspace_provider_keys))
        .routes(routes!(
            put_workspace_provider_keys,
            delete_workspace_provider_keys
        ))
        .routes(routes!(verify_workspace_provider_keys))
        .routes(routes!(history_workspace_provider_keys))
        .routes(routes!(resolve_provider_key))
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

/// A key's history, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    /// The provider.
    pub provider: String,
    /// What happened.
    pub entries: Vec<HistoryEntryView>,
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

fn history(state: &ProviderKeys, provider: Provider) -> HistoryView {
    HistoryView {
        provider: provider.as_str().into(),
        entries: state
            .history
            .iter()
            .filter(|h| h.provider == provider)
            .map(|h| HistoryEntryView {
                action: h.action.into(),
                version: h.version,
                status: h.status.map(|s| s.as_str().into()),
                account_id: h.account_id.map(|a| a.0),
                service_token_id: h.service_token,
                at: h.at.to_rfc3339(),
            })
            .collect(),
    }
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
    byok.keys
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
    let state = byok.keys.load(owner).await?;
    Ok(view(&state, provider, true, true))
}

fn key_not_found() -> ApiError {
    ApiError::NotFound(
        "provider_key_not_found",
        "no key of this provider is stored".into(),
    )
}

/// The caller's provider keys, one entry per provider.
#[utoipa::path(get, path = "/me/provider-keys", tag = "provider keys", security(("session" = [])),
    responses((status = 200, body = Vec<ProviderKeyView>)))]
pub async fn list_mine_provider_keys(
    State(byok): State<Byok>,
    session: CurrentSession,
) -> Result<Json<Vec<ProviderKeyView>>, ApiError> {
    let owner = session.account_id.0;
    let state = byok.keys.load(owner).await?;
    let encryption = byok.keys.encryption_available(owner).await;
    Ok(Json(views(&state, encryption, true)))
}

/// Saves the caller's key of a provider, verified with the provider first unless
/// `verify` is false; a refused key is 422 with the provider's reason, and nothing is
/// saved.
#[utoipa::path(put, path = "/me/provider-keys/{provider}", tag = "provider keys", security(("session" = [])),
    params(MyKeyPath), request_body = PutProviderKey,
    responses((status = 200, body = ProviderKeyView),
        (status = 422, description = "`provider_key_rejected`: the provider's reason; `validation_failed`: the key's shape", body = ErrorBody),
        (status = 502, description = "`provider_unreachable`: the provider did not answer usefully; nothing saved", body = ErrorBody),
        (status = 503, description = "`encryption_unavailable`: the key cannot be sealed now", body = ErrorBody)))]
pub async fn put_mine_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<MyKeyPath>,
    ApiJson(body): ApiJson<PutProviderKey>,
) -> Result<Json<ProviderKeyView>, ApiError> {
    let owner = session.account_id.0;
    let ctx = ctx.command(session.actor());
    Ok(Json(
        save(
            &core,
            &byok,
            ctx,
            owner,
            false,
            session.account_id,
            path.provider.into(),
            body,
        )
        .await?,
    ))
}

/// Verifies the caller's stored key again and records the outcome.
#[utoipa::path(post, path = "/me/provider-keys/{provider}/verify", tag = "provider keys", security(("session" = [])),
    params(MyKeyPath),
    responses((status = 200, body = ProviderKeyView),
        (status = 404, description = "`provider_key_not_found`", body = ErrorBody),
        (status = 502, description = "`provider_unreachable`", body = ErrorBody),
        (status = 503, description = "`encryption_unavailable`", body = ErrorBody)))]
pub async fn verify_mine_provider_keys(
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<MyKeyPath>,
) -> Result<Json<ProviderKeyView>, ApiError> {
    let ctx = ctx.command(session.actor());
    Ok(Json(
        verify_again(
            &byok,
            ctx,
            session.account_id.0,
            path.provider.into(),
            session.account_id,
        )
        .await?,
    ))
}

/// Removes the caller's key of a provider.
#[utoipa::path(delete, path = "/me/provider-keys/{provider}", tag = "provider keys", security(("session" = [])),
    params(MyKeyPath),
    responses((status = 204, description = "Removed (or there was none)")))]
pub async fn delete_mine_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<MyKeyPath>,
) -> Result<StatusCode, ApiError> {
    let position = byok
        .keys
        .remove(
            &ctx.command(session.actor()),
            session.account_id.0,
            path.provider.into(),
            session.account_id,
        )
        .await?;
    visible(&core, position).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What happened to the caller's key of a provider: saved, verified, turned invalid,
/// removed, and each time it was read for a generation.
#[utoipa::path(get, path = "/me/provider-keys/{provider}/history", tag = "provider keys", security(("session" = [])),
    params(MyKeyPath),
    responses((status = 200, body = HistoryView)))]
pub async fn history_mine_provider_keys(
    State(byok): State<Byok>,
    session: CurrentSession,
    ApiPath(path): ApiPath<MyKeyPath>,
) -> Result<Json<HistoryView>, ApiError> {
    let state = byok.keys.load(session.account_id.0).await?;
    Ok(Json(history(&state, path.provider.into())))
}

/// A workspace's provider keys (members; the hints for admins and owners only).
#[utoipa::path(get, path = "/workspaces/{id}/provider-keys", tag = "provider keys", security(("session" = [])),
    params(WorkspaceKeysPath),
    responses((status = 200, body = Vec<ProviderKeyView>),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn list_workspace_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspaceKeysPath>,
) -> Result<Json<Vec<ProviderKeyView>>, ApiError> {
    let role = role_in(&core, WorkspaceId(path.id), session.account_id).await?;
    let state = byok.keys.load(path.id).await?;
    let encryption = byok.keys.encryption_available(path.id).await;
    Ok(Json(views(&state, encryption, role.administers())))
}

/// Saves a workspace's key of a provider (admins and owners), verified first.
#[utoipa::path(put, path = "/workspaces/{id}/provider-keys/{provider}", tag = "provider keys", security(("session" = [])),
    params(WorkspaceKeyPath), request_body = PutProviderKey,
    responses((status = 200, body = ProviderKeyView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 422, description = "`provider_key_rejected`: the provider's reason; `validation_failed`: the key's shape", body = ErrorBody),
        (status = 502, description = "`provider_unreachable`: nothing saved", body = ErrorBody),
        (status = 503, description = "`encryption_unavailable`: the key cannot be sealed now", body = ErrorBody)))]
pub async fn put_workspace_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspaceKeyPath>,
    ApiJson(body): ApiJson<PutProviderKey>,
) -> Result<Json<ProviderKeyView>, ApiError> {
    require_admin(&core, WorkspaceId(path.id), session.account_id).await?;
    let ctx = ctx.command(session.actor());
    Ok(Json(
        save(
            &core,
            &byok,
            ctx,
            path.id,
            true,
            session.account_id,
            path.provider.into(),
            body,
        )
        .await?,
    ))
}

/// Verifies a workspace's stored key again (admins and owners).
#[utoipa::path(post, path = "/workspaces/{id}/provider-keys/{provider}/verify", tag = "provider keys", security(("session" = [])),
    params(WorkspaceKeyPath),
    responses((status = 200, body = ProviderKeyView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`, `provider_key_not_found`", body = ErrorBody),
        (status = 502, description = "`provider_unreachable`", body = ErrorBody),
        (status = 503, description = "`encryption_unavailable`", body = ErrorBody)))]
pub async fn verify_workspace_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspaceKeyPath>,
) -> Result<Json<ProviderKeyView>, ApiError> {
    require_admin(&core, WorkspaceId(path.id), session.account_id).await?;
    let ctx = ctx.command(session.actor());
    Ok(Json(
        verify_again(
            &byok,
            ctx,
            path.id,
            path.provider.into(),
            session.account_id,
        )
        .await?,
    ))
}

/// Removes a workspace's key of a provider (admins and owners).
#[utoipa::path(delete, path = "/workspaces/{id}/provider-keys/{provider}", tag = "provider keys", security(("session" = [])),
    params(WorkspaceKeyPath),
    responses((status = 204, description = "Removed (or there was none)"),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn delete_workspace_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspaceKeyPath>,
) -> Result<StatusCode, ApiError> {
    require_admin(&core, WorkspaceId(path.id), session.account_id).await?;
    let position = byok
        .keys
        .remove(
            &ctx.command(session.actor()),
            path.id,
            path.provider.into(),
            session.account_id,
        )
        .await?;
    visible(&core, position).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A workspace key's history (admins and owners), resolves included.
#[utoipa::path(get, path = "/workspaces/{id}/provider-keys/{provider}/history", tag = "provider keys", security(("session" = [])),
    params(WorkspaceKeyPath),
    responses((status = 200, body = HistoryView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody)))]
pub async fn history_workspace_provider_keys(
    State(core): State<Core>,
    State(byok): State<Byok>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspaceKeyPath>,
) -> Result<Json<HistoryView>, ApiError> {
    require_admin(&core, WorkspaceId(path.id), session.account_id).await?;
    let state = byok.keys.load(path.id).await?;
    Ok(Json(history(&state, path.provider.into())))
}

/// The key a generation for `account_id` uses (service tokens only): the member's own
/// key, else the workspace's (only if the account is a member of it), else `platform`.
/// Keys last verified invalid are passed over. Every key handed out is recorded on its
/// owner's history.
#[utoipa::path(post, path = "/internal/provider-keys/resolve", tag = "internal", security(("operator" = [])),
    request_body = ResolveRequest,
    responses((status = 200, body = ResolvedView),
        (status = 403, description = "`insufficient_role`: only `service` operator tokens resolve keys", body = ErrorBody),
        (status = 503, description = "`encryption_unavailable`: the key cannot be opened now", body = ErrorBody)))]
pub async fn resolve_provider_key(
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    operator: Operator<Service>,
    ApiJson(body): ApiJson<ResolveRequest>,
) -> Result<Json<ResolvedView>, ApiError> {
    let provider: Provider = body.provider.into();
    let ctx = ctx.command(store::Actor::System {
        component: format!("service-token:{}", operator.token_id),
    });
    let account = AccountId(body.account_id);
    let answer =
        |source: &str, workspace_id, resolved: Option<commands::provider_keys::ResolvedKey>| {
            let (kind, api_key, service_account_json, version) = match resolved {
                Some(r) => {
                    let (api, sa) = match r.key.kind {
                        CredentialKind::ApiKey => (Some(r.secret), None),
                        CredentialKind::ServiceAccount => (None, Some(r.secret)),
                    };
                    (
                        Some(kind_name(r.key.kind).to_owned()),
                        api,
                        sa,
                        Some(r.key.version),
                    )
                }
                None => (None, None, None, None),
            };
            Json(ResolvedView {
                source: source.into(),
                provider: provider.as_str().into(),
                kind,
                api_key,
                service_account_json,
                version,
                workspace_id,
            })
        };
    if let Some(own) = byok
        .keys
        .resolve(&ctx, account.0, provider, account, None, operator.token_id)
        .await?
    {
        return Ok(answer("account", None, Some(own)));
    }
    if let Some(workspace) = body.workspace_id {
        let member = projections::workspaces::role_of(&core.db, WorkspaceId(workspace), account)
            .await?
            .is_some();
        if member
            && let Some(shared) = byok
                .keys
                .resolve(
                    &ctx,
                    workspace,
                    provider,
                    account,
                    Some(workspace),
                    operator.token_id,
                )
                .await?
        {
            return Ok(answer("workspace", Some(workspace), Some(shared)));
        }
    }
    Ok(answer("platform", None, None))
}

/// Verifies every stored key again and records the outcome: a key that turns invalid is
/// recorded and its owner (a workspace's admins and owners) e-mailed once. Keys whose
/// provider does not answer are left as they are; service accounts are not checked.
/// Returns how many were verified.
#[tracing::instrument(skip_all)]
pub async fn reverify_all(state: &AppState) -> Result<usize, ApiError> {
    let ctx = CommandContext::system("provider-key-verify");
    let byok = &state.byok;
    let mut verified = 0;
    for row in projections::provider_keys::stored_keys(&state.core.db).await? {
        let keys = byok.keys.load(row.owner).await?;
        let Some(key) = keys.keys.get(&row.provider) else {
            continue;
        };
        if key.kind == CredentialKind::ServiceAccount {
            continue;
        }
        let Ok(secret) = byok.keys.open(row.owner, row.provider, key).await else {
            continue;
        };
        let verdict = byok.endpoints.verify(row.provider, key.kind, &secret).await;
        if let Verdict::Unreachable(why) = &verdict {
            tracing::warn!(provider = row.provider.as_str(), %why, "provider unreachable");
            continue;
        }
        let (status, problem) = verdict.status();
        let notify = if row.workspace {
            state
                .workspaces
                .load(WorkspaceId(row.owner))
                .await?
                .administrators()
        } else {
            vec![AccountId(row.owner)]
        };
        match byok
            .keys
            .record_verification(
                &ctx,
                row.owner,
                row.provider,
                key.version,
                status,
                problem,
                notify,
                None,
            )
            .await
        {
            Ok(_) => verified += 1,
            // Replaced or removed meanwhile: its outcome no longer matters.
            Err(commands::CommandError::Rejected { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(verified)
}
