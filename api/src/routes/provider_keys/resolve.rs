//! The studio workers' resolve of the key a generation uses, and the scheduled
//! verification of every stored key.

use super::*;
use crate::middleware::NotReplayable;
use axum::Extension;

/// The key a generation for `account_id` uses (service tokens only): the member's own
/// key, else the workspace's (only if the account is a member of it), else `platform`.
/// Keys last verified invalid are passed over. Every key handed out is recorded on its
/// owner's history. The answer is never stored for an `Idempotency-Key` replay: it holds a
/// secret in the clear, and no account's key to seal it with (a retry resolves again).
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
) -> Result<(Extension<NotReplayable>, Json<ResolvedView>), ApiError> {
    let resolved = resolve(&core, &byok, ctx, &operator, body).await?;
    Ok((Extension(NotReplayable), Json(resolved)))
}

/// The key [`resolve_provider_key`] answers with.
async fn resolve(
    core: &Core,
    byok: &Byok,
    ctx: RequestContext,
    operator: &Operator<Service>,
    body: ResolveRequest,
) -> Result<ResolvedView, ApiError> {
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
            ResolvedView {
                source: source.into(),
                provider: provider.as_str().into(),
                kind,
                api_key,
                service_account_json,
                version,
                workspace_id,
            }
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
