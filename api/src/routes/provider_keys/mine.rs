//! An account's own provider keys: `/me/provider-keys`.

use super::*;

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
    State(core): State<Core>,
    State(byok): State<Byok>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiPath(path): ApiPath<MyKeyPath>,
) -> Result<Json<ProviderKeyView>, ApiError> {
    let ctx = ctx.command(session.actor());
    Ok(Json(
        verify_again(
            &core,
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
    params(MyKeyPath, HistoryPageQuery),
    responses((status = 200, body = HistoryView),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn history_mine_provider_keys(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(path): ApiPath<MyKeyPath>,
    ApiQuery(page): ApiQuery<HistoryPageQuery>,
) -> Result<Json<HistoryView>, ApiError> {
    let owner = session.account_id.0;
    Ok(Json(
        history(&core, owner, path.provider.into(), &page).await?,
    ))
}
