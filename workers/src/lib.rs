//! Background work fed by the log and the clock.
//!
//! - [`billing::BillingReactor`]: invoices, charges and allowance credits that subscription
//!   and purchase events cause (a process manager with its own checkpoint);
//! - [`scheduler::Scheduler`]: renews or ends subscriptions at the end of their period,
//!   releases holds past their deadline, expires lots;
//! - [`erasure::ErasureReactor`]: ends, frees and shreds what a deleted account leaves;
//! - [`reconcile`]: recomputes balances, holds and invoices from the log and compares them
//!   with the read models.
//!
//! Unlike the table in DESIGN.md, this crate also depends on `commands`: the scheduler and
//! the billing process act by issuing commands, like any other client.

pub mod billing;
pub mod erasure;
pub mod reconcile;
pub mod scheduler;
