//! The HTTP API of the account backend and its composition root.
//!
//! [`app::App`] builds every service from the configuration ([`config`]) and serves the
//! routes of [`routes`]; [`cli`] runs the `accounts` binary's subcommands.

pub mod allocator;
pub mod app;
pub mod audit;
pub mod byok;
pub mod cli;
pub mod config;
pub mod device;
pub mod doctor;
pub mod error;
pub mod extract;
pub mod html;
pub mod integers;
pub mod limits;
pub mod linger;
pub mod mail;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod payments;
pub mod read_cache;
pub mod request_span;
pub mod routes;
pub mod session_cache;
pub mod settings_http;
pub mod state;
pub mod storage;
pub mod token_auth;
pub mod token_cache;

pub use app::{App, AppOptions};
pub use config::{Cli, ServeArgs, StorageArgs};
