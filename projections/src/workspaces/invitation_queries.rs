//! What the API reads of a workspace's invitations: a page at a time, each address opened
//! with the key that sealed it (or, once answered, the answering account's).

use super::EMAIL;
use super::queries::{decode, role, uuid};
use crate::accounts::AccountRow;
use crate::page::{Page, Paged};
use crate::runner::ProjectionError;
use domain::email::EmailAddress;
use domain::workspace::{InvitationStatus, Role};
use domain::{AccountId, Timestamp, WorkspaceId};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use store::Database;
use uuid::Uuid;
use vault::FieldSealer;
/// An invitation, as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    /// Its id.
    pub invitation_id: Uuid,
    /// The invitee's address.
    pub email: String,
    /// The role offered.
    pub role: Role,
    /// Its status now (expiry derived from the time).
    pub status: InvitationStatus,
    /// When its link expires.
    pub expires_at: Timestamp,
    /// Who invited.
    pub invited_by: AccountId,
    /// When it was first sent.
    pub created_at: Timestamp,
}

/// The account that accepted or declined the invitation of `row`, if it was answered.
fn answered_by(row: &AnyRow) -> Result<Option<AccountId>, sqlx::Error> {
    row.try_get::<Option<String>, _>("answered_by")?
        .map(|id| Uuid::parse_str(&id).map(AccountId).map_err(decode))
        .transpose()
}

/// The address an invitation row shows: once accepted or declined, the answering account's
/// own (`answering`, the accounts of the page's answers; the invitation's key is destroyed
/// then), else the one it was sent to; `None` once erased.
async fn invitee_address(
    sealer: &FieldSealer,
    answering: &HashMap<AccountId, AccountRow>,
    row: &AnyRow,
) -> Result<Option<String>, ProjectionError> {
    if let Some(account) = answered_by(row)? {
        return Ok(answering
            .get(&account)
            .and_then(|account| EmailAddress::parse(&account.email).ok())
            .map(|email| email.canonical()));
    }
    let sealed: String = row.try_get("email")?;
    if sealed.is_empty() {
        return Ok(None);
    }
    let subject = uuid(row, "key_subject")?;
    Ok(sealer.open_text(subject, EMAIL, &sealed).await?)
}

/// A page of the invitations of `workspace`, newest first (ties by id), each with its
/// status at `now`. One whose address no longer opens (its answering account erased) is
/// left out of its page: a page may hold fewer than its limit, and the cursor follows the
/// rows, not what is shown.
pub async fn invitations(
    db: &Database,
    sealer: &FieldSealer,
    workspace: WorkspaceId,
    now: Timestamp,
    page: &Page,
) -> Result<Paged<InvitationRow>, ProjectionError> {
    let (at, key, limit) = page.bounds();
    let rows = sqlx::query(
        "SELECT invitation_id, email, role, status, expires_at, invited_by, created_at, \
         key_subject, answered_by FROM workspace_invitations WHERE workspace_id = $1 \
         AND (created_at < $2 OR (created_at = $2 AND invitation_id > $3)) \
         ORDER BY created_at DESC, invitation_id LIMIT $4",
    )
    .bind(workspace.0.to_string())
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let Paged { items: rows, next } = Paged::cut_rows(rows, page, "created_at", "invitation_id")?;
    // The answering accounts of the whole page, read at once.
    let answers = rows
        .iter()
        .filter_map(|row| answered_by(row).transpose())
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let answering = crate::accounts::find_many(db, sealer, &answers).await?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let expires_at = Timestamp::from_unix_micros(row.try_get("expires_at")?);
        let status = match row.try_get::<String, _>("status")?.as_str() {
            "pending" if expires_at <= now => InvitationStatus::Expired,
            "pending" => InvitationStatus::Pending,
            "accepted" => InvitationStatus::Accepted,
            "declined" => InvitationStatus::Declined,
            _ => InvitationStatus::Revoked,
        };
        let Some(email) = invitee_address(sealer, &answering, &row).await? else {
            continue;
        };
        found.push(InvitationRow {
            invitation_id: uuid(&row, "invitation_id")?,
            email,
            role: role(&row)?,
            status,
            expires_at,
            invited_by: AccountId(uuid(&row, "invited_by")?),
            created_at: Timestamp::from_unix_micros(row.try_get("created_at")?),
        });
    }
    Ok(Paged { items: found, next })
}
