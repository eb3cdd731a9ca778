//! Builds the mail pipeline from the configuration: the queue (RabbitMQ, or the outbox
//! table of the embedded default), the transport (SMTP, or `.eml` files), the notifier and
//! the mailer; `serve`, `accounts notifier` and `accounts mailer` all start here.

use crate::config::MailArgs;
use crate::storage::Storage;
use anyhow::Context;
use commands::SystemClock;
use commands::notifications::Notifications;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vault::UnsubscribeLinks;
use workers::mail::outbox::OutboxQueue;
use workers::mail::rabbit::{RabbitConfig, RabbitConsumer, RabbitPublisher};
use workers::mail::transport::{FolderMailTransport, MailTransport, SmtpMailTransport};
use workers::mail::{MailPublisher, Mailer, RetryPolicy};
use workers::notifier::Notifier;

/// The queue the configuration selects.
#[derive(Clone)]
pub enum MailQueue {
    /// RabbitMQ.
    Rabbit(RabbitConfig),
    /// The `mail_outbox` table (no broker).
    Outbox(OutboxQueue),
}

impl MailQueue {
    /// RabbitMQ with `--amqp-url`, the outbox otherwise.
    pub fn from_args(storage: &Storage, mail: &MailArgs) -> Self {
        match &mail.amqp_url {
            Some(url) => Self::Rabbit(RabbitConfig {
                url: url.clone(),
                prefix: mail.amqp_prefix.clone(),
            }),
            None => Self::Outbox(OutboxQueue::new(storage.db.clone())),
        }
    }

    /// What the notifier and `send-campaign` publish through.
    pub fn publisher(&self) -> Arc<dyn MailPublisher> {
        match self {
            Self::Rabbit(config) => Arc::new(RabbitPublisher::new(config.clone())),
            Self::Outbox(outbox) => Arc::new(outbox.clone()),
        }
    }
}

/// The notifier over `storage`, publishing through `queue`.
pub fn notifier(storage: &Storage, queue: &MailQueue, mail: &MailArgs) -> Arc<Notifier> {
    Arc::new(Notifier::new(
        storage.db.clone(),
        storage.log.clone(),
        Arc::new(storage.codec.clone()),
        queue.publisher(),
        storage.codec.keys().clone(),
        mail.credits_low_threshold,
    ))
}

/// The folder the embedded default writes e-mails into (`<data-dir>/mail`); none with
/// `--smtp-url`.
pub fn folder(data_dir: &Path, mail: &MailArgs) -> Option<PathBuf> {
    mail.smtp_url.is_none().then(|| data_dir.join(MAIL_FOLDER))
}

/// The mail folder's name in the data directory.
const MAIL_FOLDER: &str = "mail";

/// A mailer sending by SMTP with `--smtp-url`, into `<data-dir>/mail` otherwise.
pub fn mailer(
    storage: &Storage,
    data_dir: &Path,
    mail: &MailArgs,
    public_url: &str,
) -> anyhow::Result<Arc<Mailer>> {
    let transport: Arc<dyn MailTransport> = match &mail.smtp_url {
        Some(url) => Arc::new(SmtpMailTransport::from_url(url).map_err(anyhow::Error::msg)?),
        None => {
            let folder = data_dir.join(MAIL_FOLDER);
            Arc::new(
                FolderMailTransport::new(folder.clone())
                    .with_context(|| format!("creating the mail folder {}", folder.display()))?,
            )
        }
    };
    let from = mail
        .mail_from
        .parse()
        .with_context(|| format!("the sender address {:?}", mail.mail_from))?;
    let policy = RetryPolicy {
        first_delay: mail.mail_retry_delay,
        max_attempts: mail.mail_max_attempts.max(1),
        ..RetryPolicy::default()
    };
    Ok(Arc::new(
        Mailer::new(
            storage.db.clone(),
            transport,
            from,
            public_url,
            UnsubscribeLinks::new(storage.master.unsubscribe_secret()),
            policy,
            storage.codec.keys().clone(),
        )
        .with_settings_url(&mail.settings_url)
        .with_invitation_links(vault::InvitationLinks::new(
            storage.master.invitation_secret(),
        ))
        .with_account_links(vault::AccountLinkSet::new(&storage.master))
        .with_telegram(telegram_bot(&mail.telegram)?)
        .with_preferences(Notifications::new(
            storage.exec.clone(),
            Arc::new(SystemClock),
        )),
    ))
}

/// The Telegram bot, if a token is configured (with its username, needed for links).
pub fn telegram_bot(
    args: &crate::config::TelegramArgs,
) -> anyhow::Result<Option<workers::telegram::TelegramBot>> {
    let Some(token) = &args.telegram_bot_token else {
        return Ok(None);
    };
    let username = args
        .telegram_bot_username
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("--telegram-bot-token needs --telegram-bot-username"))?;
    workers::telegram::TelegramBot::new(&args.telegram_api_url, token, username)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("the Telegram bot: {e}"))
}

/// Starts the mailer loop on `queue`.
pub fn spawn_mailer(
    queue: &MailQueue,
    mailer: Arc<Mailer>,
    mail: &MailArgs,
    stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    match queue {
        MailQueue::Rabbit(config) => tokio::spawn(
            RabbitConsumer::new(config.clone(), mail.mail_concurrency).run(mailer, stopping),
        ),
        MailQueue::Outbox(outbox) => tokio::spawn(outbox.clone().run(mailer, stopping)),
    }
}
