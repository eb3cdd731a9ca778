//! The transports against a folder and an SMTP server that refuses recipients.

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
