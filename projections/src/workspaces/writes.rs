//! The row updates the workspaces projector repeats: members and their roles, and an
//! invitation's status and the account that answered it.

use domain::workspace::{InvitationStatus, Role};
use domain::{AccountId, Timestamp};
use sqlx::AnyConnection;
use uuid::Uuid;

pub(super) async fn upsert_member(
    conn: &mut AnyConnection,
    m: &str,
    ws: &str,
    account: AccountId,
    role: Role,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO {m} (workspace_id, account_id, role, joined_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (workspace_id, account_id) DO UPDATE SET role = excluded.role"
    ))
    .bind(ws)
    .bind(account.0.to_string())
    .bind(role.as_str())
    .bind(at.unix_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn set_role(
    conn: &mut AnyConnection,
    m: &str,
    ws: &str,
    account: AccountId,
    role: Role,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE {m} SET role = $1 WHERE workspace_id = $2 AND account_id = $3"
    ))
    .bind(role.as_str())
    .bind(ws)
    .bind(account.0.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records the account that accepted or declined `invitation`: the address the row shows
/// from then on is that account's (the invitation's own key is destroyed).
pub(super) async fn answered_by(
    conn: &mut AnyConnection,
    i: &str,
    invitation: Uuid,
    account: AccountId,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE {i} SET answered_by = $1 WHERE invitation_id = $2"
    ))
    .bind(account.to_string())
    .bind(invitation.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(super) async fn set_status(
    conn: &mut AnyConnection,
    i: &str,
    invitation: Uuid,
    status: InvitationStatus,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "UPDATE {i} SET status = $1, updated_at = $2 WHERE invitation_id = $3"
    ))
    .bind(status.as_str())
    .bind(at.unix_micros())
    .bind(invitation.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
