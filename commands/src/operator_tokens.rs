//! Operator tokens: created and revoked from the command line, accepted only on `/admin/*`.

use crate::clock::Clock;
use crate::error::CommandError;
use crate::executor::{CommandContext, Executor};
use crate::tokens::{OPERATOR_TOKEN_PREFIX, new_token};
use domain::Timestamp;
use domain::operator::{OperatorRole, OperatorToken, OperatorTokenCommand};
use domain::{Aggregate, StreamCategory};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;

/// A newly created operator token.
#[derive(Debug)]
pub struct CreatedOperatorToken {
    /// Its id (to revoke it).
    pub token_id: Uuid,
    /// The secret, shown once.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
    /// Where it was committed.
    pub position: GlobalPosition,
}

/// Operator-token commands.
#[derive(Clone)]
pub struct OperatorTokens {
    exec: Executor,
    clock: Arc<dyn Clock>,
}

impl OperatorTokens {
    /// Handlers over `exec`.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>) -> Self {
        Self { exec, clock }
    }

    /// Creates a token with `role`, accepted for `lifetime` from now.
    pub async fn create(
        &self,
        ctx: &CommandContext,
        role: OperatorRole,
        label: &str,
        lifetime: Duration,
    ) -> Result<CreatedOperatorToken, CommandError> {
        let token_id = Uuid::new_v4();
        let issued = new_token(OPERATOR_TOKEN_PREFIX);
        let at = self.clock.now();
        let expires_at = at.plus(lifetime);
        let command = OperatorTokenCommand::Create {
            token_hash: issued.hash.clone(),
            role,
            label: label.to_owned(),
            at,
            expires_at,
        };
        let executed = self
            .exec
            .execute::<OperatorToken, _>(
                &StreamCategory::OperatorToken.stream(token_id),
                ctx,
                None,
                at,
                |t| Ok(t.decide(&command)?),
            )
            .await?;
        Ok(CreatedOperatorToken {
            token_id,
            token: issued.token,
            expires_at,
            position: executed
                .position
                .ok_or_else(|| CommandError::Internal("token creation appended nothing".into()))?,
        })
    }

    /// Revokes a token; refused from the next request on.
    pub async fn revoke(
        &self,
        ctx: &CommandContext,
        token_id: Uuid,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        let executed = self
            .exec
            .execute::<OperatorToken, _>(
                &StreamCategory::OperatorToken.stream(token_id),
                ctx,
                None,
                at,
                |t| Ok(t.decide(&OperatorTokenCommand::Revoke { at })?),
            )
            .await?;
        Ok(executed.position)
    }
}
