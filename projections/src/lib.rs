//! Read models.
//!
//! A [`Projector`] folds events into SQL tables it owns; the [`runner::ProjectionRunner`]
//! feeds it the log in batches and advances its checkpoint in the same transaction, waits
//! for new events, rebuilds it from position 0 into fresh tables that are then swapped in,
//! and lets commands wait until a projection has caught up with what they wrote
//! (read-your-writes). The query functions the API reads live next to each projector.

pub mod access_tokens;
pub mod accounts;
pub mod billing;
pub mod checkpoints;
pub mod credits;
mod names;
pub mod operator_tokens;
pub mod rebuild;
pub mod reconciliation;
pub mod runner;
pub mod schema;
pub mod sessions;
pub mod visibility;

pub use names::Follower;
pub use rebuild::RebuildReport;
pub use runner::{ProjectionError, ProjectionRunner, Projector, Reactor};
pub use schema::{Table, Tables};
pub use visibility::Visibility;

use std::sync::Arc;

/// Every projector of the service, in the order they are listed to operators.
pub fn all() -> Vec<Arc<dyn Projector>> {
    vec![
        Arc::new(accounts::AccountsProjector),
        Arc::new(sessions::SessionsProjector),
        Arc::new(credits::CreditsProjector),
        Arc::new(billing::BillingProjector),
        Arc::new(operator_tokens::OperatorTokensProjector),
        Arc::new(access_tokens::AccessTokensProjector),
        Arc::new(access_tokens::TokenUsageProjector),
    ]
}
