//! The arguments of `accounts audit events|state|verify`.

use super::StorageArgs;
use clap::{Args, Subcommand};

/// How `accounts audit …` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// JSON, as the HTTP routes answer.
    Json,
    /// A readable table (`text` is the same).
    #[value(alias = "text")]
    Table,
}

/// `accounts audit …`: the answers of `/admin/audit/accounts/{id}/…`, from the storage.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the account's events in log order, with their envelope (as
    /// `GET /admin/audit/accounts/{id}/events`).
    Events {
        /// The account's id.
        account: uuid::Uuid,
        /// Events recorded at or after this RFC 3339 instant.
        #[arg(long)]
        from: Option<String>,
        /// Events recorded at or before this RFC 3339 instant.
        #[arg(long)]
        to: Option<String>,
        /// The `next_cursor` of a previous page.
        #[arg(long)]
        cursor: Option<String>,
        /// Events at most (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// json or table.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// Storage.
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Print the account as it was at an instant (as
    /// `GET /admin/audit/accounts/{id}/state`).
    State {
        /// The account's id.
        account: uuid::Uuid,
        /// The RFC 3339 instant (events recorded then count); now if absent or later.
        #[arg(long)]
        as_of: Option<String>,
        /// json or table.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// The service's session idle timeout: sessions idle this long at the instant had
        /// ended, and are not listed.
        #[arg(long, env = "ACCOUNTS_SESSION_IDLE_TIMEOUT", default_value = "7d", value_parser = humantime::parse_duration)]
        session_idle_timeout: std::time::Duration,
        /// Storage.
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Read the whole log again, recompute every link of the hash chain and compare it with
    /// the stored chain; print the first broken link and the head (position and hash) to
    /// publish elsewhere. Exits non-zero when a link is broken or `--expect-head` differs.
    Verify(AuditVerifyArgs),
}

/// `accounts audit verify` (its help is the `Verify` variant's).
#[derive(Debug, Clone, Args)]
pub struct AuditVerifyArgs {
    /// A head published before, `<position>:<hash>`: fails unless the chain still has
    /// exactly that link at that position.
    #[arg(long, value_name = "POSITION:HASH")]
    pub expect_head: Option<projections::chain::Anchor>,
    /// `json` (the report) or `table`/`text` (one line per finding).
    #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
}
