//! Where rendered e-mails go: an SMTP server (lettre), or `.eml` files in a folder (the
//! embedded default).

use async_trait::async_trait;
use domain::AccountId;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (server down, timeout, 4xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Will fail again (5xx: the server refuses this message).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// What became of a message a transport took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// The server (or folder) has it.
    Delivered,
    /// Not kept: the recipient's mail was erased (the account, or the workspace, is gone).
    Dropped,
}

/// Sends one message.
#[async_trait]
pub trait MailTransport: Send + Sync {
    /// Hands `message` over; `Ok` once the server (or folder) has it, or has refused to
    /// keep it for a recipient that is gone.
    async fn send(&self, message: &Message, recipient: AccountId) -> Result<Handed, SendError>;
}

/// SMTP through lettre.
pub struct SmtpMailTransport(AsyncSmtpTransport<Tokio1Executor>);

impl SmtpMailTransport {
    /// `smtp://[user:password@]host[:port]` (plain SMTP; put a TLS-terminating relay in
    /// front for servers on the internet). Call it inside the Tokio runtime: the
    /// connection pool runs a task of its own. Errors never repeat the URL, which may hold
    /// a password.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("smtp://")
            .ok_or_else(|| "the SMTP URL must start with smtp://".to_owned())?;
        let rest = rest.trim_end_matches('/');
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| "the SMTP URL's port is not a number".to_owned())?,
            ),
            None => (address, 25),
        };
        if host.is_empty() {
            return Err("no SMTP host in the SMTP URL".to_owned());
        }
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(Duration::from_secs(20)));
        if let Some((user, password)) = credentials.and_then(|c| c.split_once(':')) {
            builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
        }
        Ok(Self(builder.build()))
    }
}

impl SmtpMailTransport {
    /// Whether the SMTP server answers (a connection and `NOOP`), for `accounts doctor`.
    pub async fn reachable(&self) -> Result<(), String> {
        match self.0.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the server did not answer NOOP".into()),
            Err(error) => Err(error.to_string()),
        }
    }
}

#[async_trait]
impl MailTransport for SmtpMailTransport {
    async fn send(&self, message: &Message, _recipient: AccountId) -> Result<Handed, SendError> {
        match self.0.send(message.clone()).await {
            Ok(_) => Ok(Handed::Delivered),
            Err(error) => {
                // A server's reply often names the recipient ("550 <bob@…>: unknown"), and
                // the error is logged and kept (outbox, dead letters) where no account's
                // key seals it: the addresses go.
                let text = without_addresses(&error.to_string(), message);
                Err(if error.is_permanent() {
                    SendError::Permanent(text)
                } else {
                    SendError::Transient(text)
                })
            }
        }
    }
}

/// `text` with every address of `message`'s envelope (ASCII letters in any case) replaced
/// by `<address>`.
fn without_addresses(text: &str, message: &Message) -> String {
    let envelope = message.envelope();
    let addresses = envelope.to().iter().chain(envelope.from());
    let mut text = text.to_owned();
    for address in addresses.map(|a| a.to_string().to_ascii_lowercase()) {
        if address.is_empty() {
            continue;
        }
        // ASCII lowercasing keeps every byte where it was, so offsets carry over.
        while let Some(at) = text.to_ascii_lowercase().find(&address) {
            text.replace_range(at..at + address.len(), "<address>");
        }
    }
    text
}

/// One `.eml` file per message, in a folder per recipient account
/// (`<folder>/<account id>/<message id>.eml`; a workspace's invitations under the
/// workspace's id), so that erasing an account or deleting a workspace removes its mail.
/// An erased folder keeps only a mark ([`ERASED_MARK`]), and nothing is written there
/// again: a message its mailer was writing while the erasure ran is removed by whichever
/// of the two comes last.
pub struct FolderMailTransport {
    folder: PathBuf,
}

/// The empty file left in an erased account's (or deleted workspace's) mail folder.
pub const ERASED_MARK: &str = ".erased";

impl FolderMailTransport {
    /// Writes into `folder`, created if missing.
    pub fn new(folder: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&folder)?;
        Ok(Self { folder })
    }

    /// Deletes every message written for `account` in `folder`.
    pub async fn erase(folder: &Path, account: AccountId) -> std::io::Result<()> {
        Self::erase_folder_of(folder, account.0).await
    }

    /// Deletes every message written under `id` in `folder`: an account's, or a
    /// workspace's invitations (written under the workspace's id), and marks the folder
    /// erased so that nothing is written there again.
    pub async fn erase_folder_of(folder: &Path, id: uuid::Uuid) -> std::io::Result<()> {
        let dir = folder.join(id.to_string());
        match create_folders(folder, &dir).await {
            // The data directory itself is gone (a service being torn down): nothing to
            // erase, and no message can be written there either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            created => created?,
        }
        // The mark first, then the messages: one written meanwhile is either listed below
        // or finds the mark once written, and removes itself (`send`).
        tokio::fs::write(dir.join(ERASED_MARK), b"").await?;
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name() == ERASED_MARK {
                continue;
            }
            let removed = if entry.file_type().await?.is_dir() {
                tokio::fs::remove_dir_all(entry.path()).await
            } else {
                tokio::fs::remove_file(entry.path()).await
            };
            match removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Creates the mail folder and the recipient's `dir` in it if missing, but never what holds
/// the mail folder (`NotFound` when that is gone).
async fn create_folders(mail: &Path, dir: &Path) -> std::io::Result<()> {
    for folder in [mail, dir] {
        match tokio::fs::create_dir(folder).await {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[async_trait]
impl MailTransport for FolderMailTransport {
    async fn send(&self, message: &Message, recipient: AccountId) -> Result<Handed, SendError> {
        let transient = |e: std::io::Error| SendError::Transient(e.to_string());
        // The mail folder and the account's folder, but never what holds the mail folder:
        // a message finishing after the data directory was removed (a test's, or a
        // service's being torn down) fails and stays queued instead of recreating it.
        let dir = self.folder.join(recipient.to_string());
        create_folders(&self.folder, &dir)
            .await
            .map_err(transient)?;
        let mark = dir.join(ERASED_MARK);
        if tokio::fs::try_exists(&mark).await.map_err(transient)? {
            tracing::info!("the recipient's mail was erased; message dropped");
            return Ok(Handed::Dropped);
        }
        let id = message
            .headers()
            .get_raw("Message-ID")
            .map(|id| {
                id.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect::<String>()
            })
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        // Written whole, then renamed: a reader never sees half a message.
        let partial = dir.join(format!("{id}.eml.partial"));
        tokio::fs::write(&partial, message.formatted())
            .await
            .map_err(transient)?;
        let written = dir.join(format!("{id}.eml"));
        let renamed = tokio::fs::rename(&partial, &written).await;
        // Erased while this was written: the erasure may have listed the folder before
        // this message was in it (or removed it half-written, failing the rename).
        if tokio::fs::try_exists(&mark).await.map_err(transient)? {
            let _ = tokio::fs::remove_file(&written).await;
            let _ = tokio::fs::remove_file(&partial).await;
            tracing::info!("the recipient's mail was erased while written; message dropped");
            return Ok(Handed::Dropped);
        }
        renamed.map_err(transient)?;
        Ok(Handed::Delivered)
    }
}

#[cfg(test)]
mod tests;
