//! `accounts …` options of the mail pipeline (broker, SMTP, the in-process workers) and
//! of the Telegram bot, and the mail workers' and campaigns' own subcommands.

use super::StorageArgs;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The mail pipeline: where messages travel and how they are sent. Its `Debug` shows the
/// broker and SMTP URLs without their password.
#[derive(Clone, Args)]
pub struct MailArgs {
    /// RabbitMQ (`amqp://user:password@host:5672/vhost`). Without it the notifier and
    /// mailer run in-process around a table (the embedded default).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// Names of the exchange and queues (`<prefix>`, `<prefix>.retry.<ms>` per retry delay,
    /// `<prefix>.dead`).
    #[arg(long, env = "ACCOUNTS_AMQP_PREFIX", default_value = "accounts.mail")]
    pub amqp_prefix: String,

    /// SMTP server (`smtp://[user:password@]host[:port]`). Without it each e-mail is
    /// written as an `.eml` file into `<data-dir>/mail`.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// The sender of every e-mail.
    #[arg(
        long,
        env = "ACCOUNTS_MAIL_FROM",
        default_value = "Studio <no-reply@studio.localhost>"
    )]
    pub mail_from: String,

    /// The settings web app (a front end of its own): e-mails link to its
    /// `/settings/notifications` page.
    #[arg(
        long,
        env = "ACCOUNTS_SETTINGS_URL",
        default_value = "http://localhost:3000"
    )]
    pub settings_url: String,

    /// The low-credits alert goes out when the balance drops below this.
    #[arg(long, env = "ACCOUNTS_CREDITS_LOW_THRESHOLD", default_value_t = 20)]
    pub credits_low_threshold: u64,

    /// Delay before the second attempt at a failed e-mail, doubled after each failure
    /// (up to 5 minutes).
    #[arg(long, env = "ACCOUNTS_MAIL_RETRY_DELAY", default_value = "2s", value_parser = humantime::parse_duration)]
    pub mail_retry_delay: Duration,

    /// Attempts before an e-mail is dead-lettered.
    #[arg(long, env = "ACCOUNTS_MAIL_MAX_ATTEMPTS", default_value_t = 15)]
    pub mail_max_attempts: u32,

    /// E-mails a mailer sends at once.
    #[arg(long, env = "ACCOUNTS_MAIL_CONCURRENCY", default_value_t = 8)]
    pub mail_concurrency: u16,

    /// With `--amqp-url`: do not run the notifier and mailer inside `serve` (run
    /// `accounts notifier` and `accounts mailer` instead).
    #[arg(long, env = "ACCOUNTS_NO_MAIL_WORKERS")]
    pub no_mail_workers: bool,

    /// The Telegram bot (linking and notices).
    #[command(flatten)]
    pub telegram: TelegramArgs,
}

/// The Telegram bot. Without a bot token the Telegram routes answer 503
/// `telegram_unavailable` and Telegram notices are skipped. Its `Debug` hides the token
/// and the webhook secret.
#[derive(Clone, Args)]
pub struct TelegramArgs {
    /// The Bot API's base URL (a local fake in tests).
    #[arg(
        long,
        env = "ACCOUNTS_TELEGRAM_API_URL",
        default_value = "https://api.telegram.org",
        hide_env_values = true
    )]
    pub telegram_api_url: String,

    /// The bot's token from @BotFather.
    #[arg(long, env = "ACCOUNTS_TELEGRAM_BOT_TOKEN", hide_env_values = true)]
    pub telegram_bot_token: Option<String>,

    /// The bot's username (deep links are `https://t.me/<username>?start=<token>`).
    #[arg(long, env = "ACCOUNTS_TELEGRAM_BOT_USERNAME")]
    pub telegram_bot_username: Option<String>,

    /// The secret Telegram sends in `X-Telegram-Bot-Api-Secret-Token` (set with
    /// `setWebhook`'s `secret_token`). Without it `/webhooks/telegram` refuses every update.
    #[arg(long, env = "ACCOUNTS_TELEGRAM_WEBHOOK_SECRET", hide_env_values = true)]
    pub telegram_webhook_secret: Option<String>,
}

impl Default for TelegramArgs {
    fn default() -> Self {
        Self {
            telegram_api_url: "https://api.telegram.org".into(),
            telegram_bot_token: None,
            telegram_bot_username: None,
            telegram_webhook_secret: None,
        }
    }
}

impl Default for MailArgs {
    fn default() -> Self {
        Self {
            amqp_url: None,
            amqp_prefix: "accounts.mail".into(),
            smtp_url: None,
            mail_from: "Studio <no-reply@studio.localhost>".into(),
            settings_url: "http://localhost:3000".into(),
            credits_low_threshold: 20,
            mail_retry_delay: Duration::from_secs(2),
            mail_max_attempts: 15,
            mail_concurrency: 8,
            telegram: TelegramArgs::default(),
            no_mail_workers: false,
        }
    }
}

/// `accounts notifier`, `accounts mailer`.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Mail.
    #[command(flatten)]
    pub mail: MailArgs,
    /// The service's public base URL, for the links in e-mails.
    #[arg(
        long,
        env = "ACCOUNTS_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,
}

/// `accounts send-campaign`.
#[derive(Debug, Clone, Args)]
pub struct CampaignArgs {
    /// newsletter or marketing: only accounts that turned it on receive it.
    #[arg(long, value_parser = ["newsletter", "marketing"])]
    pub topic: String,
    /// The subject line.
    #[arg(long)]
    pub subject: String,
    /// A file with the body (plain text; paragraphs separated by blank lines).
    #[arg(long)]
    pub body_file: PathBuf,
    /// Identifies the campaign: running it again with the same id sends nothing twice.
    #[arg(long)]
    pub id: Option<uuid::Uuid>,
    /// Storage.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Mail.
    #[command(flatten)]
    pub mail: MailArgs,
}
