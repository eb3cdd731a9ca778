//! What the API and workers read of the workspaces read model.

use super::NAME;
use crate::page::{Page, Paged};
use crate::runner::ProjectionError;
use domain::workspace::Role;
use domain::{AccountId, Timestamp, WorkspaceId};
use sqlx::Row;
use sqlx::any::AnyRow;
use store::Database;
use uuid::Uuid;
use vault::FieldSealer;

pub(super) fn decode(message: impl ToString) -> sqlx::Error {
    sqlx::Error::Decode(message.to_string().into())
}

pub(super) fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, sqlx::Error> {
    Uuid::parse_str(&row.try_get::<String, _>(column)?).map_err(decode)
}

pub(super) fn role(row: &AnyRow) -> Result<Role, sqlx::Error> {
    let name: String = row.try_get("role")?;
    Role::parse(&name).ok_or_else(|| decode(format!("unknown role {name}")))
}

fn workspace_ids(rows: &[AnyRow]) -> Result<Vec<WorkspaceId>, ProjectionError> {
    rows.iter()
        .map(|row| Ok(WorkspaceId(uuid(row, "workspace_id")?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// A workspace as one of its members sees it in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// The member's role.
    pub role: Role,
    /// How many members it has.
    pub member_count: i64,
    /// Pending, unexpired invitations (shown to admins only).
    pub pending_invitations: i64,
}

/// The workspaces `account` belongs to, oldest first (ties by id), a page at a time. One
/// being deleted (its key gone) is left out of its page: a page may hold fewer than its
/// limit, and the cursor follows the rows, not what is shown.
pub async fn memberships(
    db: &Database,
    sealer: &FieldSealer,
    account: AccountId,
    now: Timestamp,
    page: &Page,
) -> Result<Paged<Membership>, ProjectionError> {
    let (at, key, limit) = page.bounds_oldest_first();
    let rows = sqlx::query(&format!(
        "{MEMBERSHIP} WHERE m.account_id = $1 \
         AND (w.created_at > $3 OR (w.created_at = $3 AND w.workspace_id > $4)) \
         ORDER BY w.created_at, w.workspace_id LIMIT $5"
    ))
    .bind(account.0.to_string())
    .bind(now.unix_micros())
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    let Paged { items: rows, next } = Paged::cut_rows(rows, page, "created_at", "workspace_id")?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.extend(membership_of(sealer, &row).await?);
    }
    Ok(Paged { items, next })
}

/// `account`'s membership of `workspace`, if it is a member (and the workspace is not
/// being deleted).
pub async fn membership(
    db: &Database,
    sealer: &FieldSealer,
    workspace: WorkspaceId,
    account: AccountId,
    now: Timestamp,
) -> Result<Option<Membership>, ProjectionError> {
    let row = sqlx::query(&format!(
        "{MEMBERSHIP} WHERE m.account_id = $1 AND m.workspace_id = $3"
    ))
    .bind(account.0.to_string())
    .bind(now.unix_micros())
    .bind(workspace.0.to_string())
    .fetch_optional(db.pool())
    .await?;
    match row {
        Some(row) => membership_of(sealer, &row).await,
        None => Ok(None),
    }
}

/// A member's row of a workspace with its counts; `$2` is now (for pending invitations).
const MEMBERSHIP: &str = "SELECT w.workspace_id, w.name, w.created_at, m.role, \
     (SELECT COUNT(*) FROM workspace_members c WHERE c.workspace_id = w.workspace_id) \
       AS member_count, \
     (SELECT COUNT(*) FROM workspace_invitations i WHERE i.workspace_id = w.workspace_id \
       AND i.status = 'pending' AND i.expires_at > $2) AS pending \
     FROM workspace_members m JOIN workspaces w ON w.workspace_id = m.workspace_id";

async fn membership_of(
    sealer: &FieldSealer,
    row: &AnyRow,
) -> Result<Option<Membership>, ProjectionError> {
    let id = uuid(row, "workspace_id")?;
    let name: String = row.try_get("name")?;
    // No key: the workspace is being deleted.
    let Some(name) = sealer.open_text(id, NAME, &name).await? else {
        return Ok(None);
    };
    Ok(Some(Membership {
        workspace_id: WorkspaceId(id),
        name,
        role: role(row)?,
        member_count: row.try_get("member_count")?,
        pending_invitations: row.try_get("pending")?,
    }))
}

/// `account`'s role in `workspace`, if it is a member.
pub async fn role_of(
    db: &Database,
    workspace: WorkspaceId,
    account: AccountId,
) -> Result<Option<Role>, ProjectionError> {
    let row = sqlx::query(
        "SELECT role FROM workspace_members WHERE workspace_id = $1 AND account_id = $2",
    )
    .bind(workspace.0.to_string())
    .bind(account.0.to_string())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|row| role(&row)).transpose()?)
}

/// The storage a workspace uses, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRow {
    /// `managed`, `external` or `misconfigured`.
    pub state: String,
    /// The bucket (external).
    pub bucket: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// Its endpoint.
    pub endpoint: Option<String>,
    /// The access key's hint.
    pub access_key_hint: Option<String>,
    /// Path-style addressing.
    pub force_path_style: bool,
    /// The last probe (or configuration).
    pub last_checked_at: Option<Timestamp>,
    /// The failure, while misconfigured.
    pub problem: Option<String>,
    /// Misconfigured since.
    pub problem_since: Option<Timestamp>,
}

/// A workspace's details.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceRow {
    /// Its id.
    pub workspace_id: WorkspaceId,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// The studio values set.
    pub studio: serde_json::Map<String, serde_json::Value>,
    /// Their schema version.
    pub studio_version: i64,
    /// Its storage.
    pub storage: StorageRow,
}

/// The workspace `workspace`, unless deleted.
pub async fn workspace(
    db: &Database,
    sealer: &FieldSealer,
    workspace: WorkspaceId,
) -> Result<Option<WorkspaceRow>, ProjectionError> {
    let row = sqlx::query(
        "SELECT name, created_at, studio, studio_version, storage_state, bucket, region, \
         endpoint, access_key_hint, force_path_style, last_checked_at, problem, problem_since \
         FROM workspaces WHERE workspace_id = $1",
    )
    .bind(workspace.0.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let name: String = row.try_get("name")?;
    let Some(name) = sealer.open_text(workspace.0, NAME, &name).await? else {
        return Ok(None);
    };
    let studio: String = row.try_get("studio")?;
    let at = |column: &str| -> Result<Option<Timestamp>, sqlx::Error> {
        Ok(row
            .try_get::<Option<i64>, _>(column)?
            .map(Timestamp::from_unix_micros))
    };
    Ok(Some(WorkspaceRow {
        workspace_id: workspace,
        name,
        created_at: Timestamp::from_unix_micros(row.try_get("created_at")?),
        studio: serde_json::from_str(&studio).map_err(decode)?,
        studio_version: row.try_get("studio_version")?,
        storage: StorageRow {
            state: row.try_get("storage_state")?,
            bucket: row.try_get("bucket")?,
            region: row.try_get("region")?,
            endpoint: row.try_get("endpoint")?,
            access_key_hint: row.try_get("access_key_hint")?,
            force_path_style: row.try_get::<i64, _>("force_path_style")? != 0,
            last_checked_at: at("last_checked_at")?,
            problem: row.try_get("problem")?,
            problem_since: at("problem_since")?,
        },
    }))
}

/// A member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// The account.
    pub account_id: AccountId,
    /// Its role.
    pub role: Role,
    /// When it joined.
    pub joined_at: Timestamp,
}

/// The members of `workspace`, in the order they joined.
pub async fn members(
    db: &Database,
    workspace: WorkspaceId,
) -> Result<Vec<MemberRow>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT account_id, role, joined_at FROM workspace_members WHERE workspace_id = $1 \
         ORDER BY joined_at, account_id",
    )
    .bind(workspace.0.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(MemberRow {
                account_id: AccountId(uuid(row, "account_id")?),
                role: role(row)?,
                joined_at: Timestamp::from_unix_micros(row.try_get("joined_at")?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// The workspaces `account` is the only owner of while others are members: its account
/// cannot be deleted until ownership moves.
pub async fn solely_owned_with_others(
    db: &Database,
    account: AccountId,
) -> Result<Vec<WorkspaceId>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT m.workspace_id FROM workspace_members m WHERE m.account_id = $1 \
         AND m.role = 'owner' \
         AND (SELECT COUNT(*) FROM workspace_members o WHERE o.workspace_id = m.workspace_id \
              AND o.role = 'owner') = 1 \
         AND (SELECT COUNT(*) FROM workspace_members a \
              WHERE a.workspace_id = m.workspace_id) > 1",
    )
    .bind(account.0.to_string())
    .fetch_all(db.pool())
    .await?;
    workspace_ids(&rows)
}

/// Every workspace `account` belongs to.
pub async fn ids_of_member(
    db: &Database,
    account: AccountId,
) -> Result<Vec<WorkspaceId>, ProjectionError> {
    let rows = sqlx::query("SELECT workspace_id FROM workspace_members WHERE account_id = $1")
        .bind(account.0.to_string())
        .fetch_all(db.pool())
        .await?;
    workspace_ids(&rows)
}

/// Workspaces on external storage (working or not), to probe again.
pub async fn on_external_storage(db: &Database) -> Result<Vec<WorkspaceId>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT workspace_id FROM workspaces WHERE storage_state <> 'managed' \
         ORDER BY workspace_id",
    )
    .fetch_all(db.pool())
    .await?;
    workspace_ids(&rows)
}

/// The most seats (members and pending invitations) any workspace `owner` owns takes.
pub async fn most_seats_taken(
    db: &Database,
    owner: AccountId,
    now: Timestamp,
) -> Result<i64, ProjectionError> {
    let row = sqlx::query(
        "SELECT COALESCE(MAX( \
           (SELECT COUNT(*) FROM workspace_members a WHERE a.workspace_id = m.workspace_id) + \
           (SELECT COUNT(*) FROM workspace_invitations i WHERE i.workspace_id = m.workspace_id \
            AND i.status = 'pending' AND i.expires_at > $2)), 0) AS taken \
         FROM workspace_members m WHERE m.account_id = $1 AND m.role = 'owner'",
    )
    .bind(owner.0.to_string())
    .bind(now.unix_micros())
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("taken")?)
}
