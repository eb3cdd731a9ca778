//! Authentication by API and CLI tokens: the extractors of `/api/v1` (one per required
//! scope) and `/cli/v1`, the per-token rate limit, and the middleware that counts each
//! answered request into the token's usage log.
//!
//! The two kinds are kept apart by construction: each extractor admits only its own
//! prefix (checked, with the checksum, before any look-up) and only tokens whose stored
//! kind belongs to that family. Session and operator tokens are refused here, and these
//! tokens are refused by the session and operator extractors (their prefixes differ).
//!
//! An API token works only while its account's entitlements include API access and the
//! scope the route needs: the plan in force comes with the token from its one look-up
//! (the token read model keeps it), and the catalog with the deployment's narrowing is in
//! memory, so this costs no round trip and a flag applies from the process's start. CLI
//! tokens are not API tokens: entitlements do not concern them.

use crate::error::ApiError;
use crate::extract::{AccountSlot, ClientInfo, bearer_token};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use commands::access_tokens::{TokenFamily, well_formed};
use commands::tokens::hash_token;
use commands::usage::TokenRequest;
use domain::AccountId;
use domain::access_token::{Scope, TokenKind};
use projections::access_tokens::PresentedToken;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use store::Actor;
use uuid::Uuid;

/// Filled by the token extractors so [`record_usage`] knows whose request it answered.
#[derive(Debug, Clone, Default)]
pub struct TokenSlot(Arc<Mutex<Option<(AccountId, Uuid)>>>);

/// The API or CLI token `token`, checked: well formed, of `family`, live and unexpired.
/// Read through the token cache ([`crate::token_cache`]): no round trip while it holds
/// the token; expiry is checked here, against the clock, on every request.
pub async fn live_token(
    state: &AppState,
    token: &str,
    family: TokenFamily,
) -> Result<Arc<PresentedToken>, ApiError> {
    let expected = match family {
        TokenFamily::Api => "an API token (vsk_…)",
        TokenFamily::Cli => "a CLI token (vcli_…)",
    };
    let invalid =
        || ApiError::Unauthorized("invalid_token", format!("this route takes {expected}"));
    if well_formed(token) != Some(family) {
        return Err(invalid());
    }
    let presented = state
        .tokens
        .cache
        .find(&state.core.db, &hash_token(token))
        .await
        .map_err(crate::state::read_lag)?
        .filter(|t| family.admits(t.kind))
        .ok_or_else(invalid)?;
    let now = state.core.clock.now();
    if presented.expires_at.is_some_and(|e| e <= now)
        || presented.hash_valid_until.is_some_and(|e| e <= now)
    {
        return Err(ApiError::Unauthorized(
            "token_expired",
            "the token has expired".into(),
        ));
    }
    Ok(presented)
}

/// 403 `api_access_disabled`: the account's plan, or the deployment, leaves out the public
/// API (creating an API token, or using one on `/api/v1`).
pub fn api_access_disabled() -> ApiError {
    ApiError::Forbidden(
        "api_access_disabled",
        "API access is not included in this account's plan, or is turned off for this deployment"
            .into(),
    )
}

/// The token a request presented, checked ([`live_token`]) and within its rate limit.
async fn authenticate(
    parts: &mut Parts,
    state: &AppState,
    family: TokenFamily,
) -> Result<Arc<PresentedToken>, ApiError> {
    let expected = match family {
        TokenFamily::Api => "an API token (vsk_…)",
        TokenFamily::Cli => "a CLI token (vcli_…)",
    };
    let token = bearer_token(&parts.headers).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing_token",
            format!("send {expected} as Authorization: Bearer <token>"),
        )
    })?;
    let presented = live_token(state, token, family).await?;
    if let Some(slot) = parts.extensions.get::<TokenSlot>() {
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((presented.account_id, presented.token_id));
    }
    if let Some(slot) = parts.extensions.get::<AccountSlot>() {
        slot.set(presented.account_id);
    }
    state
        .tokens
        .rate_limit
        .check(&presented.token_id.to_string())
        .await?
        .map_err(ApiError::TooManyRequests)?;
    Ok(presented)
}

/// The scope an `/api/v1` route requires, as a type.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

macro_rules! scope_marker {
    ($($name:ident => $scope:ident),* $(,)?) => {$(
        #[doc = concat!("Requires `", stringify!($scope), "`.")]
        #[derive(Debug, Clone, Copy)]
        pub struct $name;
        impl RequiredScope for $name {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

scope_marker!(
    AccountRead => AccountRead,
    CreditsRead => CreditsRead,
    GenerationsWrite => GenerationsWrite,
    UsageRead => UsageRead,
);

/// A caller of `/api/v1` whose API token holds the scope `S`.
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller<S> {
    /// The token's owner.
    pub account_id: AccountId,
    /// The token.
    pub token_id: Uuid,
    _scope: PhantomData<S>,
}

impl<S> ApiCaller<S> {
    /// The actor for commands this token issues.
    pub fn actor(&self) -> Actor {
        Actor::Token {
            account_id: self.account_id,
            token_id: self.token_id,
        }
    }
}

impl<S: RequiredScope> FromRequestParts<AppState> for ApiCaller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = authenticate(parts, state, TokenFamily::Api).await?;
        let entitlements = state
            .payments
            .billing
            .catalog()
            .entitlements(token.plan.as_deref());
        if !entitlements.api_access {
            return Err(api_access_disabled());
        }
        if !token.scopes.contains(&S::SCOPE) {
            return Err(ApiError::Forbidden(
                "insufficient_scope",
                format!("this token lacks the scope {}", S::SCOPE.as_str()),
            ));
        }
        if !entitlements.offers(S::SCOPE) {
            return Err(ApiError::Forbidden(
                "insufficient_scope",
                format!(
                    "the scope {} is no longer offered to this account (its plan or this deployment)",
                    S::SCOPE.as_str()
                ),
            ));
        }
        Ok(Self {
            account_id: token.account_id,
            token_id: token.token_id,
            _scope: PhantomData,
        })
    }
}

/// A caller of `/cli/v1` with a CLI token.
#[derive(Debug, Clone, Copy)]
pub struct CliCaller {
    /// The token's owner.
    pub account_id: AccountId,
    /// The token.
    pub token_id: Uuid,
    /// Device or recorder.
    pub kind: TokenKind,
}

impl FromRequestParts<AppState> for CliCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = authenticate(parts, state, TokenFamily::Cli).await?;
        Ok(Self {
            account_id: token.account_id,
            token_id: token.token_id,
            kind: token.kind,
        })
    }
}

/// Counts every answered request made with a token into its usage log.
pub async fn record_usage(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let client = ClientInfo::from_request_parts(&mut parts, &state)
        .await
        .ok();
    let slot = TokenSlot::default();
    parts.extensions.insert(slot.clone());
    let response = next.run(Request::from_parts(parts, body)).await;
    let used = *slot.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((account_id, token_id)) = used {
        state.tokens.usage.record(TokenRequest {
            account_id,
            token_id,
            status: response.status().as_u16(),
            at: state.core.clock.now(),
            ip: client.as_ref().and_then(|c| c.ip).map(|ip| ip.to_string()),
            user_agent: client.and_then(|c| c.user_agent),
        });
    }
    response
}
