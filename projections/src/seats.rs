//! Member seats in use: what `GET /me/entitlements` shows beside the plan's `seats`, and
//! what inviting a member is checked against.

use domain::AccountId;
use store::Database;

/// **Filled by workspaces.** The seats `owner` uses: members plus pending invitations of
/// every workspace the account owns, counted in the workspaces read model. Workspaces do
/// not exist yet, so no account owns one and none uses a seat: this answers 0 until the
/// workspaces read model lands and counts them here (the one place that counts seats;
/// `GET /me/entitlements` reads nothing else).
pub async fn seats_used(db: &Database, owner: AccountId) -> Result<u32, sqlx::Error> {
    let _ = (db, owner);
    Ok(0)
}
