//! Credit commands: grant lots, hold, settle, release and expire, against the account's
//! ledger stream.

use crate::clock::Clock;
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executor};
use domain::credits::{CreditLedger, CreditsCommand, Feature, ReleaseReason, SourceKind};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;

/// The ledger stream of an account.
pub fn ledger_stream(account_id: AccountId) -> String {
    StreamCategory::Credits.stream(account_id)
}

/// Checks a client's generation id: 1 to 128 letters, digits, `-`, `_`, `.` or `:`.
pub fn check_generation_id(id: &str) -> Result<(), CommandError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(CommandError::Invalid {
            field: "generation_id",
            message: "must be 1 to 128 letters, digits, '-', '_', '.' or ':'".into(),
        })
    }
}

/// A lot to grant.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Unique per grant (`purchase:<id>`, `claim:<id>`…): a second grant with it is a no-op.
    pub grant_key: String,
    /// Credits.
    pub amount: u64,
    /// Where from.
    pub source: SourceKind,
    /// When the lot stops counting.
    pub expires_at: Option<Timestamp>,
}

/// Open generation holds an account may have at once unless configured otherwise.
pub const DEFAULT_MAX_OPEN_HOLDS: u32 = 100;

/// The credit command handlers.
#[derive(Clone)]
pub struct Credits {
    exec: Executor,
    clock: Arc<dyn Clock>,
    hold_timeout: Duration,
    max_open_holds: u32,
}

impl Credits {
    /// Handlers over `exec`; unsettled holds time out after `hold_timeout`; an account
    /// may have [`DEFAULT_MAX_OPEN_HOLDS`] open at once.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>, hold_timeout: Duration) -> Self {
        Self {
            exec,
            clock,
            hold_timeout,
            max_open_holds: DEFAULT_MAX_OPEN_HOLDS,
        }
    }

    /// The same handlers, allowing `max` open holds per account (decided by the ledger,
    /// whose stream two holds race on, so the count cannot be overrun).
    pub fn with_max_open_holds(mut self, max: u32) -> Self {
        self.max_open_holds = max;
        self
    }

    /// The ledger as its events describe it.
    pub async fn ledger(&self, account_id: AccountId) -> Result<CreditLedger, CommandError> {
        Ok(self
            .exec
            .load::<CreditLedger>(&ledger_stream(account_id))
            .await?
            .state)
    }

    async fn run(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        at: Timestamp,
        command: CreditsCommand,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let executed = self
            .exec
            .execute::<CreditLedger, _>(&ledger_stream(account_id), ctx, None, at, |ledger| {
                Ok(ledger.decide(&command)?)
            })
            .await?;
        Ok(executed.position)
    }

    /// Adds a lot (once per grant key).
    #[tracing::instrument(skip_all, fields(%account_id, grant_key = %grant.grant_key))]
    pub async fn grant(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        grant: Grant,
        at: Timestamp,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let command = CreditsCommand::Grant {
            lot_id: Uuid::new_v4(),
            grant_key: grant.grant_key,
            amount: grant.amount,
            source: grant.source,
            expires_at: grant.expires_at,
            at,
        };
        self.run(ctx, account_id, at, command).await
    }

    /// Reserves `amount` for a generation; refused if the credits are not there.
    #[tracing::instrument(skip_all, fields(%account_id, generation_id))]
    pub async fn hold(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        generation_id: &str,
        feature: Feature,
        amount: u64,
        api_token_id: Option<Uuid>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        check_generation_id(generation_id)?;
        let at = self.clock.now();
        let command = CreditsCommand::Hold {
            max_open_holds: self.max_open_holds,
            generation_id: generation_id.to_owned(),
            feature,
            amount,
            hold_expires_at: at.plus(self.hold_timeout),
            api_token_id,
            at,
        };
        self.run(ctx, account_id, at, command).await
    }

    /// Spends the actual amount of a hold and returns the rest.
    #[tracing::instrument(skip_all, fields(%account_id, generation_id))]
    pub async fn settle(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        generation_id: &str,
        amount: u64,
        api_token_id: Option<Uuid>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        check_generation_id(generation_id).map_err(|_| not_found())?;
        let at = self.clock.now();
        let command = CreditsCommand::Settle {
            generation_id: generation_id.to_owned(),
            amount,
            api_token_id,
            at,
        };
        self.run(ctx, account_id, at, command).await
    }

    /// Returns a hold in full (the generation failed, or its hold timed out).
    #[tracing::instrument(skip_all, fields(%account_id, generation_id))]
    pub async fn release(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        generation_id: &str,
        reason: ReleaseReason,
        api_token_id: Option<Uuid>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        check_generation_id(generation_id).map_err(|_| not_found())?;
        let at = self.clock.now();
        let command = CreditsCommand::Release {
            generation_id: generation_id.to_owned(),
            reason,
            api_token_id,
            at,
        };
        self.run(ctx, account_id, at, command).await
    }

    /// Expires what is left of a lot past its expiry.
    pub async fn expire_lot(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        lot_id: Uuid,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        self.run(ctx, account_id, at, CreditsCommand::Expire { lot_id, at })
            .await
    }
}

fn not_found() -> CommandError {
    CommandError::rejected(
        Rejection::NotFound,
        "generation_not_found",
        "no hold for this generation",
    )
}
