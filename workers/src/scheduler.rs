//! The scheduler: at the end of a period renews or ends the subscription, releases holds
//! nobody settled in time, expires lots. It finds candidates in the read models and acts
//! through commands, which decide with the clock again, so a stale candidate or a second
//! scheduler running at the same time changes nothing.

use commands::billing::Billing;
use commands::credits::Credits;
use commands::{Clock, CommandContext, CommandError};
use domain::credits::ReleaseReason;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use store::Database;
use tokio::sync::watch;

/// Candidates handled per kind and tick.
const BATCH: i64 = 500;

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// Subscriptions renewed or ended.
    pub subscriptions: usize,
    /// Holds released for timing out.
    pub holds_released: usize,
    /// Lots expired.
    pub lots_expired: usize,
}

/// Time-driven billing and credit work.
#[derive(Clone)]
pub struct Scheduler {
    db: Database,
    billing: Billing,
    credits: Credits,
    clock: Arc<dyn Clock>,
}

impl Scheduler {
    /// A scheduler reading `db` and acting through `billing` and `credits`.
    pub fn new(db: Database, billing: Billing, credits: Credits, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            billing,
            credits,
            clock,
        }
    }

    /// Does everything due now.
    #[tracing::instrument(skip_all)]
    pub async fn tick(&self) -> Result<Tick, CommandError> {
        let ctx = CommandContext::system("scheduler");
        let now = self.clock.now();
        let mut tick = Tick::default();
        for account in projections::billing::subscriptions_due(&self.db, now, BATCH)
            .await
            .map_err(db)?
        {
            if self.billing.renew_due(&ctx, account).await?.is_some() {
                tick.subscriptions += 1;
            }
        }
        for (account, generation) in projections::credits::holds_due(&self.db, now, BATCH)
            .await
            .map_err(db)?
        {
            if self
                .credits
                .release(&ctx, account, &generation, ReleaseReason::TimedOut, None)
                .await?
                .is_some()
            {
                tick.holds_released += 1;
            }
        }
        for lot in projections::credits::lots_due(&self.db, now, BATCH)
            .await
            .map_err(db)?
        {
            if self
                .credits
                .expire_lot(&ctx, lot.account_id, lot.lot_id)
                .await?
                .is_some()
            {
                tick.lots_expired += 1;
            }
        }
        Ok(tick)
    }

    /// Ticks every `interval` until `stopping` turns true.
    pub async fn run(self, interval: Duration, mut stopping: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.tick().await {
                tracing::warn!(%error, "scheduler tick failed; will retry");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stopping.changed() => return,
            }
        }
    }
}

fn db(error: sqlx::Error) -> CommandError {
    CommandError::Internal(format!("reading due work: {error}"))
}
