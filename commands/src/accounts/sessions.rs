//! Sessions: revoking one, or every other, and changing the password (which may revoke
//! the others in the same append).

use super::{Accounts, Changed, account_stream, invalid};
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::account::{Account, AccountCommand};
use domain::session::RevocationReason;
use domain::{AccountId, Aggregate, SessionId, password};

/// `PUT /me/password`.
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// To confirm it is the owner.
    pub current_password: String,
    /// Must meet the policy and differ from the current one.
    pub new_password: String,
    /// Also revoke every other session.
    pub sign_out_other_sessions: bool,
    /// Also revoke every API and CLI token (refused as soon as the change is visible).
    pub revoke_tokens: bool,
}

impl Accounts {
    /// Ends one of the account's sessions (its own logout, or a revoke from the list).
    /// Ending a session that already ended changes nothing.
    #[tracing::instrument(skip_all, fields(%account_id, %session_id))]
    pub async fn revoke_session(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        reason: RevocationReason,
    ) -> Result<Changed, CommandError> {
        let now = self.clock.now();
        let executed = self
            .run(
                ctx,
                account_id,
                now,
                AccountCommand::RevokeSession {
                    session_id,
                    reason,
                    at: now,
                },
            )
            .await?;
        Ok(Changed {
            sessions_revoked: executed.events.len(),
            position: executed.position,
        })
    }

    /// Revokes every live session of the account except `keep`.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn revoke_other_sessions(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        keep: SessionId,
    ) -> Result<Changed, CommandError> {
        let now = self.clock.now();
        let executed = self
            .run(
                ctx,
                account_id,
                now,
                AccountCommand::RevokeOtherSessions { keep, at: now },
            )
            .await?;
        Ok(Changed {
            sessions_revoked: executed.events.len(),
            position: executed.position,
        })
    }

    /// Changes the password after checking the current one; with `sign_out_other_sessions`
    /// the other sessions are revoked in the same append, and with `revoke_tokens` every
    /// API and CLI token (the token read model drops their secrets on that same event; the
    /// caller then records the revocation in each token's stream).
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn change_password(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        cmd: ChangePassword,
    ) -> Result<Changed, CommandError> {
        password::check(&cmd.new_password).map_err(CommandError::WeakPassword)?;
        if cmd.new_password == cmd.current_password {
            return Err(invalid(
                "new_password",
                "must differ from the current password",
            ));
        }
        let now = self.clock.now();
        // A stale proof is refused before the (slow) password check.
        self.require_fresh(account_id, session_id, now).await?;
        let account = self
            .verify_password(account_id, &cmd.current_password)
            .await?;
        let new_password_hash = self.passwords.hash(&cmd.new_password).await?;
        let command = AccountCommand::ChangePassword {
            new_password_hash,
            verified_password_version: account.password_version,
            sign_out_other_sessions: cmd.sign_out_other_sessions,
            revoke_tokens: cmd.revoke_tokens,
            fresh: self.fresh(session_id, now),
            at: now,
        };
        let executed = self
            .exec
            .execute::<Account, _>(
                &account_stream(account_id),
                ctx,
                Some(account_id.0),
                now,
                |state| {
                    // Changed meanwhile: the current password given was checked against an
                    // older one.
                    state.decide(&command).map_err(|e| match e {
                        domain::account::AccountError::CredentialsChanged => {
                            CommandError::WrongPassword
                        }
                        other => other.into(),
                    })
                },
            )
            .await?;
        Ok(Changed {
            sessions_revoked: executed.events.len().saturating_sub(1),
            position: executed.position,
        })
    }
}
