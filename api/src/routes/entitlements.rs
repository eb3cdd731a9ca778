//! What the signed-in account is entitled to (`GET /me/entitlements`): its plan in force,
//! member seats allowed and used, API access and the scopes offered, so the settings app
//! knows which tabs to show. The rules are the catalog's ([`domain::catalog::Entitlements`]).

use crate::error::ApiError;
use crate::extract::CurrentSession;
use crate::openapi::Routes;
use crate::routes::token_views::ScopeName;
use crate::state::{Core, Payments};
use axum::Json;
use axum::extract::State;
use domain::AccountId;
use domain::catalog::Entitlements;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new().routes(routes!(entitlements))
}

/// What `account` is entitled to now: the entitlements of its plan in force (the billing
/// read model's: a downgrade or a cancelled plan's end counts once the scheduler applied
/// the period's end), narrowed by the deployment.
pub async fn entitlements_of(
    core: &Core,
    payments: &Payments,
    account: AccountId,
) -> Result<Entitlements, ApiError> {
    let plan = projections::billing::plan_in_force(&core.db, account).await?;
    Ok(payments.billing.catalog().entitlements(plan.as_deref()))
}

/// Member seats.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeatsView {
    /// Members plus pending invitations the account's workspaces may have, by its plan.
    pub allowed: u32,
    /// Members plus pending invitations of the workspaces the account owns now.
    pub used: u32,
}

/// What the account is entitled to.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntitlementsView {
    /// The plan in force (an id of `GET /plans`); null for a free account.
    pub plan: Option<String>,
    /// Member seats.
    pub seats: SeatsView,
    /// Whether the account may create API tokens and use them on `/api/v1` (the API Keys
    /// tab).
    pub api_access: bool,
    /// The scopes a new API token may have; empty without API access.
    #[schema(value_type = Vec<ScopeName>)]
    pub scopes: Vec<&'static str>,
}

/// The caller's plan in force, member seats (allowed and used), whether API access is
/// included and the scopes offered: the plan's entitlements as the catalog says, narrowed
/// by the deployment (`--api-access`, `--api-scopes`).
#[utoipa::path(get, path = "/me/entitlements", tag = "billing", security(("session" = [])),
    responses((status = 200, body = EntitlementsView)))]
pub async fn entitlements(
    State(core): State<Core>,
    State(payments): State<Payments>,
    session: CurrentSession,
) -> Result<Json<EntitlementsView>, ApiError> {
    let entitled = entitlements_of(&core, &payments, session.account_id).await?;
    // The limit holds per workspace: the fullest of the caller's own workspaces.
    let used =
        projections::workspaces::most_seats_taken(&core.db, session.account_id, core.clock.now())
            .await?;
    let used = u32::try_from(used).unwrap_or(u32::MAX);
    Ok(Json(EntitlementsView {
        plan: entitled.plan,
        seats: SeatsView {
            allowed: entitled.seats,
            used,
        },
        api_access: entitled.api_access,
        scopes: entitled.scopes.iter().map(|s| s.as_str()).collect(),
    }))
}
