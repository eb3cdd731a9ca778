//! End-to-end tests over HTTP. Every case runs twice: on the embedded SQLite default and on
//! PostgreSQL (which must be reachable; see `store::testkit`).

/// Runs each listed `async fn case(backend)` of the current module on both backends.
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::within_time_limit(super::$case(store::Backend::Sqlite)).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                tests::within_time_limit(super::$case(store::Backend::Postgres)).await;
            })*
        }
    };
}

mod audit;
mod audit_chain;
mod audit_state;
mod auth;
mod avatar_storage;
mod billing;
mod credits;
mod data_export;
mod deletion;
mod doctor;
mod editor_preferences;
mod email_change;
mod email_verification;
mod entitlements;
mod erasure;
mod hardening;
mod idempotency;
mod invitees;
mod limits;
mod mail;
mod mail_retries;
mod metrics;
mod nodes;
mod notifications;
mod openapi;
mod operations;
mod operators;
mod origins;
mod pages;
mod password;
mod password_reset;
mod payments_provider;
mod privacy;
mod profile;
mod provider_keys;
mod reauth;
mod rejections;
mod s3;
mod security;
mod security_log;
mod sessions;
mod telegram;
mod tokens;
mod workspace_settings;
mod workspaces;
