//! Background work fed by the log and the clock.
//!
//! - [`billing::BillingReactor`]: invoices, charges and allowance credits that subscription
//!   and purchase events cause (a process manager with its own checkpoint);
//! - [`scheduler::Scheduler`]: renews or ends subscriptions at the end of their period,
//!   releases holds past their deadline, expires lots;
//! - [`erasure::ErasureReactor`]: ends, frees and shreds what a deleted account leaves;
//! - [`key_eviction::KeyEviction`]: drops erased accounts' keys from this process's cache;
//! - [`reconcile`]: recomputes balances, holds and invoices from the log and compares them
//!   with the read models;
//! - [`notifier::Notifier`]: decides the e-mails the log's events cause and publishes them;
//! - [`mail`]: the queues (RabbitMQ, or a table), templates, transports and the mailer;
//! - [`campaign`]: newsletter and marketing sends to opted-in accounts;
//! - [`pdf`]: the invoice PDF (served by the API, attached to receipts).
//!
//! Unlike the table in DESIGN.md, this crate also depends on `commands`: the scheduler and
//! the billing process act by issuing commands, like any other client.

pub mod billing;
pub mod campaign;
pub mod erasure;
pub mod key_eviction;
pub mod mail;
pub mod notifier;
pub mod pdf;
pub mod reconcile;
pub mod scheduler;
pub mod telegram;
