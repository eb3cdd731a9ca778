//! Operators: `adm_` tokens, accepted only on `/admin/*` (where session and API tokens are
//! not), each with a role and an expiry. The role a route needs is part of its extractor's
//! type: `Operator<AnyRole>` (the default) for reports any operator may read,
//! `Operator<Admin>` for anything that changes state, so a write route cannot forget its
//! check.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use commands::tokens::{OPERATOR_TOKEN_PREFIX, hash_token};
use domain::operator::OperatorRole;
use std::marker::PhantomData;
use uuid::Uuid;

use super::bearer_token;

/// The roles a route admits.
pub trait RoleRequirement: Send + Sync + 'static {
    /// Whether `role` may call the route.
    fn admits(role: OperatorRole) -> bool;
}

/// Any operator: admin or auditor (read-only reports); never a service token.
#[derive(Debug, Clone, Copy)]
pub struct AnyRole;

impl RoleRequirement for AnyRole {
    fn admits(role: OperatorRole) -> bool {
        role != OperatorRole::Service
    }
}

/// The studio's workers (`service` tokens) only: `/internal/*`.
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl RoleRequirement for Service {
    fn admits(role: OperatorRole) -> bool {
        role == OperatorRole::Service
    }
}

/// Admins only: every route that changes anything.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl RoleRequirement for Admin {
    fn admits(role: OperatorRole) -> bool {
        role == OperatorRole::Admin
    }
}

/// A live operator token.
#[derive(Debug, Clone)]
pub struct LiveOperator {
    /// The token.
    pub token_id: Uuid,
    /// What it may do.
    pub role: OperatorRole,
}

/// An operator whose live token has a role `R` admits.
#[derive(Debug, Clone)]
pub struct Operator<R: RoleRequirement = AnyRole> {
    /// The token.
    pub token_id: Uuid,
    /// Its role.
    pub role: OperatorRole,
    requirement: PhantomData<R>,
}

fn invalid() -> ApiError {
    ApiError::Unauthorized(
        "invalid_admin_token",
        "an operator token is required".into(),
    )
}

/// The operator token `token`, if it is live: well formed, not revoked, not expired.
pub async fn live_operator(state: &AppState, token: &str) -> Result<LiveOperator, ApiError> {
    if !token.starts_with(OPERATOR_TOKEN_PREFIX) || token.len() > 128 {
        return Err(invalid());
    }
    let stored = projections::operator_tokens::find_by_hash(&state.core.db, &hash_token(token))
        .await?
        .ok_or_else(invalid)?;
    if state.core.clock.now() >= stored.expires_at {
        return Err(ApiError::Unauthorized(
            "admin_token_expired",
            "the operator token has expired; create a new one".into(),
        ));
    }
    Ok(LiveOperator {
        token_id: stored.token_id,
        role: stored.role,
    })
}

impl<R: RoleRequirement> FromRequestParts<AppState> for Operator<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(invalid)?;
        let live = live_operator(state, token).await?;
        if !R::admits(live.role) {
            return Err(ApiError::Forbidden(
                "insufficient_role",
                format!(
                    "this route does not admit a token of the {} role",
                    live.role.as_str()
                ),
            ));
        }
        Ok(Self {
            token_id: live.token_id,
            role: live.role,
            requirement: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditors_are_admitted_to_reads_only() {
        assert!(AnyRole::admits(OperatorRole::Auditor));
        assert!(AnyRole::admits(OperatorRole::Admin));
        assert!(Admin::admits(OperatorRole::Admin));
        assert!(!Admin::admits(OperatorRole::Auditor));
        assert!(!AnyRole::admits(OperatorRole::Service));
        assert!(!Admin::admits(OperatorRole::Service));
        assert!(Service::admits(OperatorRole::Service));
        assert!(!Service::admits(OperatorRole::Admin));
    }
}
