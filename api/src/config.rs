//! Command-line interface and configuration: every option is a flag and an environment
//! variable (see the README's table).

mod audit;
mod debug;
mod mail;
mod serve;
mod storage;

pub use audit::{AuditCommand, AuditVerifyArgs, OutputFormat};
use clap::{Args, Parser, Subcommand};
pub use mail::{CampaignArgs, MailArgs, TelegramArgs, WorkerArgs};
pub use serve::{PaymentsProvider, ServeArgs, Switch};
pub use storage::{BlobArgs, BlobStoreKind, StorageArgs};

/// What `accounts --help` opens with.
const ABOUT: &str = "accounts: the account-settings backend of the video studio \
(profile, security, sessions, notifications, billing, credits, API tokens), \
event-sourced: every change is an event in a log, read models answer the queries.";

/// What `accounts --help` says after the options.
const EXAMPLES: &str = "Examples:
  accounts                                   # serve on 127.0.0.1:8080, SQLite in ./data
  accounts --listen 0.0.0.0:9000             # serve elsewhere (serve's flags need no `serve`)
  accounts doctor --database-url postgres://postgres@127.0.0.1/accounts
  accounts --log-format json                 # logs as JSON lines, for log collectors";

/// The account-settings backend of the video studio.
#[derive(Debug, Parser)]
#[command(
    name = "accounts",
    version,
    about = ABOUT,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// How logs are written (to standard error): `text` for people, `json` for log
    /// collectors.
    #[arg(
        long,
        global = true,
        env = "ACCOUNTS_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// `serve`'s flags, which work without naming it.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API with its projectors and workers (the default).
    #[command(
        after_help = "Example:\n  accounts serve --listen 0.0.0.0:8080 --database-url postgres://postgres@127.0.0.1/accounts"
    )]
    Serve(Box<ServeArgs>),
    /// Apply database migrations and create missing read-model tables, then exit.
    #[command(
        after_help = "Example:\n  accounts migrate --database-url postgres://postgres@127.0.0.1/accounts"
    )]
    Migrate(StorageArgs),
    /// Replay a read model from position 0 into fresh tables and swap them in.
    #[command(
        after_help = "Examples:\n  accounts rebuild credits\n  accounts rebuild all --data-dir ./data"
    )]
    Rebuild(RebuildArgs),
    /// Recompute balances, holds and invoices from the log and compare them with the read
    /// models; prints a JSON report and exits non-zero on any drift.
    #[command(
        after_help = "Example:\n  accounts reconcile --database-url postgres://postgres@127.0.0.1/accounts > report.json"
    )]
    Reconcile(StorageArgs),
    /// Operator tokens for the `/admin` routes (`admin-token` is the former name).
    #[command(
        subcommand,
        visible_alias = "admin-token",
        after_help = "Examples:\n  accounts operator-token create --role auditor --label reconciliation\n  accounts operator-token revoke 7f0c…"
    )]
    OperatorToken(OperatorTokenCommand),
    /// Run only the notifier: decide the e-mails the log's events cause and publish them
    /// to RabbitMQ (needs `--amqp-url`).
    #[command(
        after_help = "Example:\n  accounts notifier --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --database-url postgres://…"
    )]
    Notifier(WorkerArgs),
    /// Run only a mailer: consume the mail queue and send by SMTP (needs `--amqp-url`;
    /// several may run at once).
    #[command(
        after_help = "Example:\n  accounts mailer --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f --smtp-url smtp://relay:587 --database-url postgres://…"
    )]
    Mailer(WorkerArgs),
    /// Send a newsletter or marketing e-mail to the accounts that opted in.
    #[command(
        after_help = "Example:\n  accounts send-campaign --topic newsletter --subject \"What's new\" --body-file news.txt --id 0b9c…"
    )]
    SendCampaign(CampaignArgs),
    /// Mail operations.
    #[command(
        subcommand,
        after_help = "Example:\n  accounts mail dead-letters --database-url postgres://…"
    )]
    Mail(MailCommand),
    /// Check the configuration given (database, migrations, master key, blob store,
    /// broker, SMTP, public URL) and say what to fix; exits non-zero if anything is wrong.
    #[command(
        after_help = "Example:\n  accounts doctor --database-url postgres://postgres@127.0.0.1/accounts --amqp-url amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    Doctor(Box<ServeArgs>),
    /// Audit from the log: an account's events or its state at an instant, and the hash
    /// chain over the stored events.
    #[command(
        subcommand,
        after_help = "Examples:\n  accounts audit events 0b9c… --from 2026-03-01T00:00:00Z --format table\n  accounts audit state 0b9c… --as-of 2026-03-03T12:00:00Z\n  accounts audit verify --database-url postgres://… --expect-head 1234:9f86d0…"
    )]
    Audit(AuditCommand),
}

/// `accounts mail …`.
#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// Print the messages the mailer gave up on, as JSON, newest first.
    DeadLetters(StorageArgs),
}

/// `accounts operator-token …`.
#[derive(Debug, Subcommand)]
pub enum OperatorTokenCommand {
    /// Create a token and print it (once).
    Create {
        /// admin, auditor, or service (the studio's workers: `/internal/*` only).
        #[arg(long, value_parser = ["admin", "auditor", "service"])]
        role: String,
        /// A note for operators.
        #[arg(long, default_value = "")]
        label: String,
        /// Days until the token expires (1 to 3650).
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=3650))]
        expires_in_days: u16,
        /// Storage.
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        token_id: uuid::Uuid,
        /// Storage.
        #[command(flatten)]
        storage: StorageArgs,
    },
}

/// `accounts rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// The read model to rebuild (`accounts`, `sessions`), or `all`.
    pub projection: String,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
}

#[cfg(test)]
mod tests;
