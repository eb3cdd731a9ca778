//! The workspaces read model: workspaces (name sealed with the workspace's key, studio
//! values, storage state without credentials), members and roles, and invitations (the
//! invitee's address sealed with the key its event was sealed with: the invitation's own,
//! or, for invitations made before they had one, the workspace's; once accepted, the
//! address shown is the member account's own). A deleted workspace's rows go.

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::workspace::{InvitationStatus, Role, WorkspaceEvent};
use domain::{DomainEvent, StreamCategory};
use sqlx::{AnyConnection, Row};
use store::DecodedEvent;
use uuid::Uuid;
use vault::FieldSealer;
use writes::{answered_by, set_role, set_status, upsert_member};

/// Where each sealed column lives, bound into its seal.
const NAME: &str = "workspaces.name";
const EMAIL: &str = "workspace_invitations.email";

/// Folds workspace events into `workspaces`, `workspace_members` and
/// `workspace_invitations`.
#[derive(Clone)]
pub struct WorkspacesProjector {
    sealer: FieldSealer,
}

impl WorkspacesProjector {
    /// Seals personal columns with `sealer`.
    pub fn new(sealer: FieldSealer) -> Self {
        Self { sealer }
    }
}

const TABLES: &[Table] = &[
    Table {
        name: "workspaces",
        ddl: &["CREATE TABLE {t} (
            workspace_id     TEXT PRIMARY KEY,
            name             TEXT NOT NULL,
            created_at       BIGINT NOT NULL,
            studio           TEXT NOT NULL,
            studio_version   BIGINT NOT NULL,
            storage_state    TEXT NOT NULL,
            bucket           TEXT,
            region           TEXT,
            endpoint         TEXT,
            access_key_hint  TEXT,
            force_path_style BIGINT NOT NULL,
            last_checked_at  BIGINT,
            problem          TEXT,
            problem_since    BIGINT
        )"],
    },
    Table {
        name: "workspace_members",
        ddl: &[
            "CREATE TABLE {t} (
            workspace_id TEXT NOT NULL,
            account_id   TEXT NOT NULL,
            role         TEXT NOT NULL,
            joined_at    BIGINT NOT NULL,
            PRIMARY KEY (workspace_id, account_id)
        )",
            "CREATE INDEX {t}_account ON {t} (account_id)",
        ],
    },
    Table {
        name: "workspace_invitations",
        ddl: &[
            "CREATE TABLE {t} (
            invitation_id TEXT PRIMARY KEY,
            workspace_id  TEXT NOT NULL,
            email         TEXT NOT NULL,
            role          TEXT NOT NULL,
            status        TEXT NOT NULL,
            expires_at    BIGINT NOT NULL,
            invited_by    TEXT NOT NULL,
            created_at    BIGINT NOT NULL,
            updated_at    BIGINT NOT NULL,
            key_subject   TEXT NOT NULL,
            answered_by   TEXT
        )",
            "CREATE INDEX {t}_workspace ON {t} (workspace_id)",
        ],
    },
];

#[async_trait]
impl Projector for WorkspacesProjector {
    fn name(&self) -> Follower {
        Follower::Workspaces
    }

    fn version(&self) -> i32 {
        // 2: the invitee's address sealed with its event's key; who accepted. 3: answered
        // invitations kept through a rebuild.
        3
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Workspace]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        // An invitation's key is destroyed once it is answered: a rebuild reads how it was
        // sent from what its event still says (the address is shown from the answering
        // account's), or the answer would find no row to update.
        let event = match (decoded.event(), decoded.redacted()) {
            (Some(DomainEvent::Workspace(event)), _) => event,
            (
                None,
                Some(DomainEvent::Workspace(
                    event @ (WorkspaceEvent::MemberInvited { .. }
                    | WorkspaceEvent::InvitationRefreshed { .. }),
                )),
            ) => event,
            _ => return Ok(()),
        };
        let Some(id) = StreamCategory::Workspace
            .id_in(&decoded.envelope.stream)
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            return Ok(());
        };
        let (w, m, i) = (
            tables.get("workspaces"),
            tables.get("workspace_members"),
            tables.get("workspace_invitations"),
        );
        let ws = id.to_string();
        use WorkspaceEvent as E;
        match event {
            E::WorkspaceCreated { owner, name, at } => {
                sqlx::query(&format!(
                    "INSERT INTO {w} (workspace_id, name, created_at, studio, studio_version, \
                     storage_state, force_path_style) VALUES ($1, $2, $3, '{{}}', 0, 'managed', \
                     0) ON CONFLICT (workspace_id) DO NOTHING"
                ))
                .bind(&ws)
                .bind(self.sealer.seal_text(id, NAME, name).await?)
                .bind(at.unix_micros())
                .execute(&mut *conn)
                .await?;
                upsert_member(conn, m, &ws, *owner, Role::Owner, *at).await?;
            }
            E::WorkspaceRenamed { name, .. } => {
                sqlx::query(&format!("UPDATE {w} SET name = $1 WHERE workspace_id = $2"))
                    .bind(self.sealer.seal_text(id, NAME, name).await?)
                    .bind(&ws)
                    .execute(&mut *conn)
                    .await?;
            }
            E::MemberInvited {
                invitation_id,
                email,
                role,
                expires_at,
                invited_by,
                at,
                ..
            } => {
                // The key that sealed the address in the event seals it here, so that it
                // goes with that key.
                let subject = decoded.envelope.metadata.data_subject.unwrap_or(id);
                let email = self.sealer.seal_text(subject, EMAIL, email).await?;
                sqlx::query(&format!(
                    "INSERT INTO {i} (invitation_id, workspace_id, email, role, status, \
                     expires_at, invited_by, created_at, updated_at, key_subject) \
                     VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7, $8) \
                     ON CONFLICT (invitation_id) DO NOTHING"
                ))
                .bind(invitation_id.to_string())
                .bind(&ws)
                .bind(email.unwrap_or_default())
                .bind(role.as_str())
                .bind(expires_at.unix_micros())
                .bind(invited_by.0.to_string())
                .bind(at.unix_micros())
                .bind(subject.to_string())
                .execute(&mut *conn)
                .await?;
            }
            E::InvitationRefreshed {
                invitation_id,
                role,
                expires_at,
                at,
                ..
            } => {
                sqlx::query(&format!(
                    "UPDATE {i} SET role = $1, status = 'pending', expires_at = $2, \
                     updated_at = $3 WHERE invitation_id = $4"
                ))
                .bind(role.as_str())
                .bind(expires_at.unix_micros())
                .bind(at.unix_micros())
                .bind(invitation_id.to_string())
                .execute(&mut *conn)
                .await?;
            }
            E::InvitationRevoked {
                invitation_id, at, ..
            } => set_status(conn, i, *invitation_id, InvitationStatus::Revoked, *at).await?,
            E::InvitationDeclined {
                invitation_id,
                account_id,
                at,
            } => {
                set_status(conn, i, *invitation_id, InvitationStatus::Declined, *at).await?;
                answered_by(conn, i, *invitation_id, *account_id).await?;
            }
            E::InvitationAccepted {
                invitation_id,
                account_id,
                role,
                at,
            } => {
                set_status(conn, i, *invitation_id, InvitationStatus::Accepted, *at).await?;
                answered_by(conn, i, *invitation_id, *account_id).await?;
                upsert_member(conn, m, &ws, *account_id, *role, *at).await?;
            }
            E::MemberRoleChanged {
                account_id, role, ..
            } => set_role(conn, m, &ws, *account_id, *role).await?,
            E::OwnershipTransferred { from, to, .. } => {
                set_role(conn, m, &ws, *from, Role::Admin).await?;
                set_role(conn, m, &ws, *to, Role::Owner).await?;
            }
            E::MemberRemoved { account_id, .. } | E::MemberLeft { account_id, .. } => {
                sqlx::query(&format!(
                    "DELETE FROM {m} WHERE workspace_id = $1 AND account_id = $2"
                ))
                .bind(&ws)
                .bind(account_id.0.to_string())
                .execute(&mut *conn)
                .await?;
            }
            E::StudioConfigured {
                set,
                resets,
                schema_version,
                ..
            } => {
                let row = sqlx::query(&format!("SELECT studio FROM {w} WHERE workspace_id = $1"))
                    .bind(&ws)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(row) = row else { return Ok(()) };
                let text: String = row.try_get("studio")?;
                let mut values: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(&text).unwrap_or_default();
                for key in resets {
                    values.remove(key);
                }
                values.extend(set.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                sqlx::query(&format!(
                    "UPDATE {w} SET studio = $1, studio_version = $2 WHERE workspace_id = $3"
                ))
                .bind(serde_json::Value::Object(values).to_string())
                .bind(i64::from(*schema_version))
                .bind(&ws)
                .execute(&mut *conn)
                .await?;
            }
            E::StorageConfigured {
                bucket,
                region,
                endpoint,
                access_key_hint,
                force_path_style,
                at,
                ..
            } => {
                sqlx::query(&format!(
                    "UPDATE {w} SET storage_state = 'external', bucket = $1, region = $2, \
                     endpoint = $3, access_key_hint = $4, force_path_style = $5, \
                     last_checked_at = $6, problem = NULL, problem_since = NULL \
                     WHERE workspace_id = $7"
                ))
                .bind(bucket.as_str())
                .bind(region.as_str())
                .bind(endpoint.as_deref())
                .bind(access_key_hint.as_str())
                .bind(i64::from(*force_path_style))
                .bind(at.unix_micros())
                .bind(&ws)
                .execute(&mut *conn)
                .await?;
            }
            E::StorageReset { .. } => {
                sqlx::query(&format!(
                    "UPDATE {w} SET storage_state = 'managed', bucket = NULL, region = NULL, \
                     endpoint = NULL, access_key_hint = NULL, force_path_style = 0, \
                     last_checked_at = NULL, problem = NULL, problem_since = NULL \
                     WHERE workspace_id = $1"
                ))
                .bind(&ws)
                .execute(&mut *conn)
                .await?;
            }
            E::StorageProbed {
                problem,
                changed,
                at,
                ..
            } => {
                // The problem's start stays while it lasts; a change starts or ends it.
                let keep_since = problem.is_some() && !*changed;
                let sql = if keep_since {
                    format!(
                        "UPDATE {w} SET storage_state = 'misconfigured', last_checked_at = $1, \
                         problem = $2 WHERE workspace_id = $3"
                    )
                } else {
                    format!(
                        "UPDATE {w} SET storage_state = $4, last_checked_at = $1, problem = $2, \
                         problem_since = $5 WHERE workspace_id = $3"
                    )
                };
                let mut query = sqlx::query(&sql)
                    .bind(at.unix_micros())
                    .bind(problem.as_deref())
                    .bind(&ws);
                if !keep_since {
                    let state = if problem.is_some() {
                        "misconfigured"
                    } else {
                        "external"
                    };
                    query = query
                        .bind(state)
                        .bind(problem.as_ref().map(|_| at.unix_micros()));
                }
                query.execute(&mut *conn).await?;
            }
            E::WorkspaceDeleted { .. } => {
                for table in [w, m, i] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE workspace_id = $1"))
                        .bind(&ws)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            E::KeysShredded { .. } => {}
        }
        Ok(())
    }
}

mod invitation_queries;
mod queries;
mod writes;
pub use invitation_queries::*;
pub use queries::*;
