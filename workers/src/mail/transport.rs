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
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// An SMTP server that refuses every recipient with a reply naming it, as Postfix does.
    async fn refusing_server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 test ESMTP\r\n").await?;
                    while let Some(line) = lines.next_line().await? {
                        let reply = match line.get(..4).map(str::to_ascii_uppercase).as_deref() {
                            Some("RCPT") => {
                                let to = line.split(':').nth(1).unwrap_or("").trim().to_owned();
                                format!("550 5.1.1 {to}: Recipient address rejected\r\n")
                            }
                            Some("QUIT") => "221 bye\r\n".to_owned(),
                            _ => "250 ok\r\n".to_owned(),
                        };
                        write.write_all(reply.as_bytes()).await?;
                    }
                    std::io::Result::Ok(())
                });
            }
        });
        port
    }

    /// The server's refusal says why, not to whom: the address is in no error the mailer
    /// logs or keeps, whatever its case.
    #[tokio::test]
    async fn an_smtp_refusal_keeps_its_reason_without_the_address() {
        let port = refusing_server().await;
        let transport = SmtpMailTransport::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
        let message = Message::builder()
            .from("Accounts <noreply@example.com>".parse().unwrap())
            .to("Bob.Stone@Example.com".parse().unwrap())
            .subject("Hello")
            .body("Hello".to_owned())
            .unwrap();
        let refused = transport
            .send(&message, AccountId(uuid::Uuid::new_v4()))
            .await
            .unwrap_err();
        let SendError::Permanent(text) = refused else {
            panic!("a 550 is permanent: {refused:?}");
        };
        assert!(
            text.contains("Recipient address rejected") && text.contains("<address>"),
            "{text}"
        );
        assert!(!text.to_ascii_lowercase().contains("bob.stone"), "{text}");
    }

    fn message() -> Message {
        Message::builder()
            .from("Accounts <noreply@example.com>".parse().unwrap())
            .to("someone@example.com".parse().unwrap())
            .subject("Hello")
            .message_id(Some("<m-1@accounts.studio>".into()))
            .body("Hello".to_owned())
            .unwrap()
    }

    /// A message goes into a folder of its account, created as needed, as does the mail
    /// folder itself; the data directory above it is never created again once removed.
    #[tokio::test]
    async fn the_folder_transport_never_recreates_a_removed_data_directory() {
        let root = store::testkit::TempDir::create();
        let data = root.path().join("data");
        let mail = data.join("mail");
        let transport = FolderMailTransport::new(mail.clone()).unwrap();
        let account = AccountId(uuid::Uuid::new_v4());
        transport.send(&message(), account).await.unwrap();
        let written = mail.join(account.to_string()).join("m-1accountsstudio.eml");
        assert!(written.exists(), "{written:?}");

        std::fs::remove_dir_all(&mail).unwrap();
        transport.send(&message(), account).await.unwrap();
        assert!(written.exists(), "the mail folder comes back: {written:?}");

        std::fs::remove_dir_all(&data).unwrap();
        let error = transport.send(&message(), account).await.unwrap_err();
        assert!(matches!(error, SendError::Transient(_)), "{error:?}");
        assert!(!data.exists(), "the data directory was created again");
    }

    /// Once an account's folder is erased, nothing is written there again: not a message
    /// its mailer had composed before the erasure and writes after it (which recreated
    /// the folder before), nor any later one. The erasure is idempotent.
    #[tokio::test]
    async fn nothing_is_written_into_an_erased_folder() {
        let root = store::testkit::TempDir::create();
        let mail = root.path().join("mail");
        let transport = FolderMailTransport::new(mail.clone()).unwrap();
        let (erased, kept) = (
            AccountId(uuid::Uuid::new_v4()),
            AccountId(uuid::Uuid::new_v4()),
        );
        for account in [erased, kept] {
            assert_eq!(
                transport.send(&message(), account).await.unwrap(),
                Handed::Delivered
            );
        }
        let files = |account: AccountId| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(mail.join(account.to_string()))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(files(erased), ["m-1accountsstudio.eml"]);

        FolderMailTransport::erase(&mail, erased).await.unwrap();
        assert_eq!(files(erased), [ERASED_MARK]);
        assert_eq!(
            transport.send(&message(), erased).await.unwrap(),
            Handed::Dropped,
            "a late message is dropped, and says so (not counted as sent)"
        );
        assert_eq!(files(erased), [ERASED_MARK], "a late message is dropped");
        FolderMailTransport::erase(&mail, erased).await.unwrap();
        assert_eq!(files(erased), [ERASED_MARK]);
        assert_eq!(
            files(kept),
            ["m-1accountsstudio.eml"],
            "other folders untouched"
        );

        // An account that never had mail: marked all the same.
        let never = AccountId(uuid::Uuid::new_v4());
        FolderMailTransport::erase(&mail, never).await.unwrap();
        assert_eq!(
            transport.send(&message(), never).await.unwrap(),
            Handed::Dropped
        );
        assert_eq!(files(never), [ERASED_MARK]);
    }

    // The connection pool starts a task: it needs a runtime, as in the service.
    #[tokio::test]
    async fn smtp_urls_are_parsed_or_refused_clearly() {
        assert!(SmtpMailTransport::from_url("smtp://127.0.0.1:2525").is_ok());
        assert!(SmtpMailTransport::from_url("smtp://user:secret@mail.example.com").is_ok());
        assert!(SmtpMailTransport::from_url("http://127.0.0.1").is_err());
        assert!(SmtpMailTransport::from_url("smtp://host:notaport").is_err());
        assert!(SmtpMailTransport::from_url("smtp://").is_err());
        for url in [
            "smtps://user:s3cret@mail.example.com",
            "smtp://user:s3cret@mail.example.com:notaport",
            "smtp://user:s3cret@",
            "smtp://user:s3cret",
        ] {
            let error = SmtpMailTransport::from_url(url).err().unwrap();
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
