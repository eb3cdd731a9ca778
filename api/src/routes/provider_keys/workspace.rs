//! A workspace's provider keys: `/workspaces/{id}/provider-keys`, managed by its admins
//! and owners, listed to its members without hints.

use super::*;

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
            &core,
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
    params(WorkspaceKeyPath, HistoryPageQuery),
    responses((status = 200, body = HistoryView),
        (status = 403, description = "`insufficient_role`", body = ErrorBody),
        (status = 404, description = "`workspace_not_found`", body = ErrorBody),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn history_workspace_provider_keys(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<WorkspaceKeyPath>,
    ApiQuery(page): ApiQuery<HistoryPageQuery>,
) -> Result<Json<HistoryView>, ApiError> {
    require_admin(&core, WorkspaceId(path.id), session.account_id).await?;
    Ok(Json(
        history(&core, path.id, path.provider.into(), &page).await?,
    ))
}
