//! Member seats in use: what `GET /me/entitlements` shows beside the plan's `seats`.

use domain::{AccountId, Timestamp};
use store::Database;

/// **Filled by workspaces.** The seats `owner` uses at `now`: members plus pending
/// (unexpired) invitations of the workspaces the account owns, counted in the workspaces
/// read model (the limit holds per workspace, so the count to set beside the plan's
/// `seats` is the fullest workspace's). Workspaces do not exist on this branch, so no
/// account owns one and none uses a seat: this answers 0 until the workspaces read model
/// counts them here, the one place `GET /me/entitlements` reads them from.
pub async fn seats_used(
    db: &Database,
    owner: AccountId,
    now: Timestamp,
) -> Result<u32, sqlx::Error> {
    let _ = (db, owner, now);
    Ok(0)
}
