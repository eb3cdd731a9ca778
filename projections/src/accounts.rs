//! The `accounts` read model: one row per live account with its profile, for `GET /me`
//! and public creator profiles (its queries: `rows`). A deleted account's row is removed.
//! The e-mail address (and one a change waits to move to), display name and bio are sealed
//! with the account's data key (`vault::FieldSealer`), so no copy of them outlives the key.

use crate::Follower;
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::{DomainEvent, StreamCategory, Timestamp};
use sqlx::AnyConnection;
use store::DecodedEvent;
use uuid::Uuid;
use vault::FieldSealer;

mod rows;

pub use rows::{AccountRow, find, find_many};

/// Folds account events into `accounts`.
#[derive(Debug, Clone)]
pub struct AccountsProjector {
    sealer: FieldSealer,
}

/// Whether an account event changes the account's row (sessions, second-factor steps and
/// tokens have read models of their own). Exhaustive, so that a new event is decided here.
fn changes_the_row(event: &AccountEvent) -> bool {
    use AccountEvent as E;
    match event {
        E::AccountRegistered { .. }
        | E::PasswordChanged { .. }
        | E::TotpEnabled { .. }
        | E::TotpDisabled { .. }
        | E::ProfileUpdated { .. }
        | E::AvatarChanged { .. }
        | E::AvatarRemoved { .. }
        | E::EmailVerified { .. }
        | E::EmailChangeRequested { .. }
        | E::EmailChangeCancelled { .. }
        | E::EmailChanged { .. }
        | E::AccountDeleted { .. } => true,
        E::SessionStarted { .. }
        | E::NewDeviceSignedIn { .. }
        | E::SessionReauthenticated { .. }
        | E::SessionRevoked { .. }
        | E::TotpEnrollmentStarted { .. }
        | E::RecoveryCodesRegenerated { .. }
        | E::RecoveryCodeUsed { .. }
        | E::AccessTokenIssued { .. }
        | E::AccessTokenRetired { .. }
        | E::PasswordRehashed { .. }
        | E::EmailVerificationRequested { .. }
        | E::PasswordResetRequested { .. }
        | E::DataExported { .. }
        | E::AccountErased { .. } => false,
    }
}

impl AccountsProjector {
    /// Seals personal columns with `sealer`.
    pub fn new(sealer: FieldSealer) -> Self {
        Self { sealer }
    }
}

/// Where each sealed column lives, bound into its seal.
const EMAIL: &str = "accounts.email";
const DISPLAY_NAME: &str = "accounts.display_name";
const BIO: &str = "accounts.bio";
const PENDING_EMAIL: &str = "accounts.pending_email";

const TABLES: &[Table] = &[Table {
    name: "accounts",
    ddl: &["CREATE TABLE {t} (
        account_id          TEXT PRIMARY KEY,
        email               TEXT,
        display_name        TEXT,
        bio                 TEXT,
        public_profile      BIGINT NOT NULL,
        avatar_key          TEXT,
        avatar_type         TEXT,
        totp_enabled        BIGINT NOT NULL,
        email_verified      BIGINT NOT NULL DEFAULT 0,
        created_at          BIGINT NOT NULL,
        updated_at          BIGINT NOT NULL,
        password_changed_at BIGINT,
        pending_email       TEXT,
        pending_email_expires_at BIGINT
    )"],
}];

/// The account a stream of `category` belongs to.
pub(crate) fn account_of(event: &DecodedEvent, category: StreamCategory) -> Option<String> {
    category.id_in(&event.envelope.stream).map(str::to_owned)
}

async fn set(
    conn: &mut AnyConnection,
    t: &str,
    account_id: &str,
    assignments: &str,
    values: Vec<Option<String>>,
    at: Timestamp,
) -> Result<(), sqlx::Error> {
    let mut query = format!("UPDATE {t} SET updated_at = $2");
    if !assignments.is_empty() {
        query.push_str(", ");
        query.push_str(assignments);
    }
    query.push_str(" WHERE account_id = $1");
    let mut statement = sqlx::query(&query).bind(account_id).bind(at.unix_micros());
    for value in values {
        statement = statement.bind(value);
    }
    statement.execute(&mut *conn).await?;
    Ok(())
}

#[async_trait]
impl Projector for AccountsProjector {
    fn name(&self) -> Follower {
        Follower::Accounts
    }

    fn version(&self) -> i32 {
        // 3: e-mail, display name and bio sealed; 4: whether the address is verified;
        // 5: a change of address pending.
        5
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Account]
    }

    fn concerns(&self, event: &DecodedEvent) -> bool {
        account_events_only(event, changes_the_row)
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let Some(DomainEvent::Account(event)) = decoded.event() else {
            return Ok(());
        };
        // A rebuild hands it every event of its streams, not only those it concerns.
        if !changes_the_row(event) {
            return Ok(());
        }
        let Some(account_id) = account_of(decoded, StreamCategory::Account) else {
            return Ok(());
        };
        let Ok(subject) = Uuid::parse_str(&account_id) else {
            return Ok(());
        };
        let t = tables.get("accounts");
        use AccountEvent as E;
        match event {
            E::AccountRegistered {
                email,
                display_name,
                registered_at,
                ..
            } => {
                sqlx::query(&format!(
                    "INSERT INTO {t} (account_id, email, display_name, public_profile, totp_enabled, created_at, updated_at) \
                     VALUES ($1, $2, $3, 0, 0, $4, $4) ON CONFLICT (account_id) DO NOTHING"
                ))
                .bind(account_id)
                .bind(self.sealer.seal_text(subject, EMAIL, email.as_str()).await?)
                .bind(
                    self.sealer
                        .seal_text(subject, DISPLAY_NAME, display_name.as_str())
                        .await?,
                )
                .bind(registered_at.unix_micros())
                .execute(&mut *conn)
                .await?;
            }
            E::PasswordChanged { changed_at, .. } => {
                let micros = Some(changed_at.unix_micros().to_string());
                set(
                    conn,
                    t,
                    &account_id,
                    "password_changed_at = CAST($3 AS BIGINT)",
                    vec![micros],
                    *changed_at,
                )
                .await?;
            }
            E::ProfileUpdated {
                display_name,
                bio,
                public_profile,
                at,
            } => {
                let mut assignments = Vec::new();
                let mut values = Vec::new();
                if let Some(name) = display_name {
                    values.push(
                        self.sealer
                            .seal_text(subject, DISPLAY_NAME, name.as_str())
                            .await?,
                    );
                    assignments.push(format!("display_name = ${}", values.len() + 2));
                }
                if let Some(bio) = bio {
                    let bio = (!bio.as_str().is_empty()).then_some(bio.as_str());
                    values.push(self.sealer.seal_optional(subject, BIO, bio).await?);
                    assignments.push(format!("bio = ${}", values.len() + 2));
                }
                if let Some(public) = public_profile {
                    assignments.push(format!("public_profile = {}", i64::from(*public)));
                }
                set(conn, t, &account_id, &assignments.join(", "), values, *at).await?;
            }
            E::AvatarChanged {
                blob_key,
                content_type,
                at,
            } => {
                let values = vec![Some(blob_key.clone()), Some(content_type.clone())];
                set(
                    conn,
                    t,
                    &account_id,
                    "avatar_key = $3, avatar_type = $4",
                    values,
                    *at,
                )
                .await?;
            }
            E::AvatarRemoved { at, .. } => {
                set(
                    conn,
                    t,
                    &account_id,
                    "avatar_key = NULL, avatar_type = NULL",
                    vec![],
                    *at,
                )
                .await?;
            }
            E::EmailVerified { at, .. } => {
                set(conn, t, &account_id, "email_verified = 1", vec![], *at).await?
            }
            E::EmailChangeRequested {
                email,
                expires_at,
                at,
                ..
            } => {
                let values = vec![
                    self.sealer
                        .seal_text(subject, PENDING_EMAIL, email.as_str())
                        .await?,
                    Some(expires_at.unix_micros().to_string()),
                ];
                let assignments =
                    "pending_email = $3, pending_email_expires_at = CAST($4 AS BIGINT)";
                set(conn, t, &account_id, assignments, values, *at).await?;
            }
            E::EmailChangeCancelled { at, .. } => {
                let assignments = "pending_email = NULL, pending_email_expires_at = NULL";
                set(conn, t, &account_id, assignments, vec![], *at).await?;
            }
            E::EmailChanged { new_email, at, .. } => {
                let values = vec![
                    self.sealer
                        .seal_text(subject, EMAIL, new_email.as_str())
                        .await?,
                ];
                let assignments = "email = $3, email_verified = 1, pending_email = NULL, \
                     pending_email_expires_at = NULL";
                set(conn, t, &account_id, assignments, values, *at).await?;
            }
            E::TotpEnabled { at, .. } => {
                set(conn, t, &account_id, "totp_enabled = 1", vec![], *at).await?
            }
            E::TotpDisabled { at, .. } => {
                set(conn, t, &account_id, "totp_enabled = 0", vec![], *at).await?
            }
            E::AccountDeleted { .. } => {
                tables
                    .forget_account(conn, &["accounts"], &account_id)
                    .await?
            }
            // The rest change nothing here ([`changes_the_row`], checked above).
            _ => {}
        }
        Ok(())
    }
}
