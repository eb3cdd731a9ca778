//! The mail pipeline with real parts: the RabbitMQ of this machine (queue names of each
//! test's own) and a real SMTP server over TCP (`tests::mail::SmtpServer`). Every
//! e-mail-worthy event yields exactly one e-mail, through bursts, broker and SMTP outages,
//! and a notifier killed mid-batch.

use async_trait::async_trait;
use commands::CommandContext;
use commands::credits::Grant;
use domain::AccountId;
use domain::credits::{Feature, SourceKind};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::Backend;
use tests::broker::{TcpProxy, amqp_address, amqp_url, rabbit};
use tests::mail::{SmtpServer, header};
use tests::{TestApp, eventually, json_body, spawn_app_with};
use uuid::Uuid;
use vault::UnsubscribeLinks;
use workers::mail::rabbit::{RabbitConfig, RabbitConsumer, RabbitPublisher};
use workers::mail::transport::{FolderMailTransport, MailTransport, SmtpMailTransport};
use workers::mail::{
    MailKind, MailMessage, MailPublisher, Mailer, Outcome, QueueError, RetryPolicy,
};
use workers::notifier::Notifier;

/// Starts the service publishing through RabbitMQ at `amqp` (queues `rabbit.prefix`) and
/// sending to `smtp`, with quick retries.
async fn spawn_with_mail(
    backend: Backend,
    amqp: &str,
    rabbit: &RabbitConfig,
    smtp: &SmtpServer,
    configure: impl FnOnce(&mut api::config::MailArgs),
) -> TestApp {
    spawn_app_with(backend, |setup| {
        let mail = &mut setup.serve.mail;
        mail.amqp_url = Some(amqp.to_owned());
        mail.amqp_prefix = rabbit.prefix.clone();
        mail.smtp_url = Some(smtp.url());
        mail.mail_retry_delay = Duration::from_millis(200);
        mail.mail_max_attempts = 1_000;
        configure(mail);
    })
    .await
}

/// Accounts with plenty of credits (no low-credits alert in the way). Each registration
/// also sends one e-mail, the link that verifies the address: the counts below include
/// those (one per account).
async fn funded_accounts(app: &TestApp, count: usize) -> Vec<(String, AccountId)> {
    let mut accounts = Vec::new();
    for _ in 0..count {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let id = app.register(&email).await;
        let account = AccountId(Uuid::parse_str(&id).unwrap());
        app.state
            .payments
            .credits
            .grant(
                &CommandContext::system("test"),
                account,
                Grant {
                    grant_key: format!("test:{id}"),
                    amount: 1_000_000,
                    source: SourceKind::Purchase,
                    expires_at: None,
                },
                commands::Clock::now(&*app.clock),
            )
            .await
            .unwrap();
        accounts.push((email, account));
    }
    accounts
}

/// Completes `per_account` generations through the API's command for each account, in
/// parallel: each is one "generation complete" e-mail.
async fn complete_generations(app: &TestApp, accounts: &[(String, AccountId)], per_account: usize) {
    let token = Some(Uuid::new_v4());
    let mut tasks = Vec::new();
    for (_, account) in accounts {
        let credits = app.state.payments.credits.clone();
        let account = *account;
        tasks.push(tokio::spawn(async move {
            let ctx = CommandContext::system("test");
            for i in 0..per_account {
                let id = format!("g-{}-{i}", Uuid::new_v4().simple());
                credits
                    .hold(&ctx, account, &id, Feature::Api, 2, token)
                    .await
                    .unwrap();
                credits.settle(&ctx, account, &id, 1, token).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Asserts exactly `expected` e-mails arrived, none twice.
async fn exactly_once(smtp: &SmtpServer, expected: usize, timeout: Duration) {
    let messages = smtp.wait_for(expected, timeout).await;
    let ids = smtp.by_message_id();
    let doubled: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sent twice: {doubled:?}");
    assert_eq!(messages.len(), expected, "e-mails received");
    assert_eq!(ids.len(), expected, "distinct message ids");
}

async fn a_burst_of_events_yields_exactly_one_email_each(backend: Backend) {
    let url = amqp_url();
    let rabbit = rabbit(&url).await;
    let smtp = SmtpServer::start().await;
    let app = spawn_with_mail(backend, &url, &rabbit, &smtp, |_| {}).await;
    let accounts = funded_accounts(&app, 10).await;
    complete_generations(&app, &accounts, 250).await;
    exactly_once(&smtp, 2_500 + 10, Duration::from_secs(180)).await;
    let generations = smtp
        .messages()
        .iter()
        .filter(|m| header(m, "Subject").unwrap().starts_with("Your generation"))
        .count();
    assert_eq!(generations, 2_500);
}

async fn the_broker_going_away_loses_and_doubles_nothing(backend: Backend) {
    let url = amqp_url();
    let rabbit = rabbit(&url).await;
    let smtp = SmtpServer::start().await;
    let proxy = TcpProxy::start(amqp_address(&url)).await;
    let app = spawn_with_mail(backend, &proxy.amqp_url(&url), &rabbit, &smtp, |_| {}).await;
    let accounts = funded_accounts(&app, 4).await;
    complete_generations(&app, &accounts, 25).await;
    smtp.wait_for(100 + 4, Duration::from_secs(60)).await;

    // Every connection (the notifier's publisher and the mailer's consumer) is closed and
    // the broker stays unreachable while events keep coming.
    proxy.cut();
    complete_generations(&app, &accounts, 50).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        smtp.messages().len(),
        100 + 4,
        "nothing can be sent without the broker"
    );
    proxy.restore();
    complete_generations(&app, &accounts, 25).await;
    exactly_once(&smtp, 400 + 4, Duration::from_secs(120)).await;
}

async fn the_smtp_server_going_away_loses_and_doubles_nothing(backend: Backend) {
    let url = amqp_url();
    let rabbit = rabbit(&url).await;
    let mut smtp = SmtpServer::start().await;
    let app = spawn_with_mail(backend, &url, &rabbit, &smtp, |_| {}).await;
    let accounts = funded_accounts(&app, 4).await;
    complete_generations(&app, &accounts, 10).await;
    smtp.wait_for(40, Duration::from_secs(60)).await;

    smtp.down();
    complete_generations(&app, &accounts, 50).await;
    // Long enough for several failed attempts of each message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    smtp.up().await;
    exactly_once(&smtp, 240 + 4, Duration::from_secs(120)).await;
}

/// The embedded queue (a table, no broker) claims and records each drained batch of
/// messages together: an SMTP outage in the middle of a burst still sends each e-mail once,
/// and leaves every message recorded (and counted) as sent and none in the queue.
async fn the_embedded_queue_sends_each_email_once_through_an_smtp_outage(backend: Backend) {
    let mut smtp = SmtpServer::start().await;
    let app = spawn_app_with(backend, |setup| {
        let mail = &mut setup.serve.mail;
        mail.smtp_url = Some(smtp.url());
        mail.mail_retry_delay = Duration::from_millis(200);
        mail.mail_max_attempts = 1_000;
    })
    .await;
    let accounts = funded_accounts(&app, 4).await;
    complete_generations(&app, &accounts, 10).await;
    smtp.wait_for(40, Duration::from_secs(60)).await;

    smtp.down();
    complete_generations(&app, &accounts, 30).await;
    // Long enough for several failed attempts of each message.
    tokio::time::sleep(Duration::from_secs(2)).await;
    smtp.up().await;
    exactly_once(&smtp, 160 + 4, Duration::from_secs(120)).await;
    let db = app.state.core.db.clone();
    let db = &db;
    eventually(Duration::from_secs(30), || async move {
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mail_outbox")
            .fetch_one(db.pool())
            .await
            .unwrap();
        match queued {
            0 => Ok(()),
            _ => Err(format!("{queued} messages stayed queued")),
        }
    })
    .await;
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, COUNT(*) FROM mail_deliveries WHERE status <> 'skipped' GROUP BY status",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(statuses, vec![("sent".to_owned(), 160 + 4)]);
    // The metrics' counts, kept as messages are settled, agree with the ledger: the
    // messages released during the outage and sent later count once.
    let stats = workers::mail::queue::stats(db).await.unwrap();
    assert_eq!((stats.sent, stats.sending), (160 + 4, 0), "{stats:?}");
}

/// A new message telling `account` a generation completed (its own id each time).
pub(crate) fn generation_notice(account: Uuid) -> MailMessage {
    MailMessage::caused_by(
        Uuid::new_v4(),
        MailKind::GenerationComplete,
        account,
        json!({"generation_id": "g-1", "credits": 3, "feature": "api"}),
    )
}

/// A batch's outcomes come back in its order: a message already sent is a duplicate, a
/// message listed twice is sent once (its copy finds it held), and a second mailer finds
/// the sent ones done.
async fn a_batch_is_claimed_together_and_each_message_sent_once(backend: Backend) {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(backend, |_| {}).await;
    let accounts = funded_accounts(&app, 2).await;
    let mailer = || test_mailer(&app, &smtp, RetryPolicy::default());
    let (first, second) = (
        generation_notice(accounts[0].1.0),
        generation_notice(accounts[1].1.0),
    );
    let one = mailer();
    assert_eq!(one.deliver(&first, 1).await, Outcome::Sent);
    let outcomes = one
        .deliver_all(&[(&first, 1), (&second, 1), (&second, 1)])
        .await;
    assert_eq!(outcomes[0], Outcome::Duplicate, "{outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Sent, "{outcomes:?}");
    assert!(
        matches!(outcomes[2], Outcome::Held { .. }),
        "the copy finds it held: {outcomes:?}"
    );
    let other = mailer();
    assert_eq!(
        other.deliver_all(&[(&second, 2), (&first, 2)]).await,
        vec![Outcome::Duplicate, Outcome::Duplicate]
    );
    exactly_once(&smtp, 2, Duration::from_secs(30)).await;
}

/// A message for an account whose mail folder was erased while the message was on its way
/// (the account being erased) is dropped by the folder and recorded as skipped, not sent:
/// the mail figures count only what some mailbox holds.
async fn a_message_dropped_by_an_erased_folder_is_skipped_not_sent(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    let accounts = funded_accounts(&app, 2).await;
    let root = store::testkit::TempDir::create();
    let folder = root.path().join("mail");
    let mailer = mailer_through(
        &app,
        Arc::new(FolderMailTransport::new(folder.clone()).unwrap()),
        RetryPolicy::default(),
    );
    let (erased, kept) = (accounts[0].1, accounts[1].1);
    FolderMailTransport::erase(&folder, erased).await.unwrap();
    let (dropped, delivered) = (generation_notice(erased.0), generation_notice(kept.0));
    assert_eq!(
        mailer.deliver_all(&[(&dropped, 1), (&delivered, 1)]).await,
        vec![Outcome::Skipped, Outcome::Sent]
    );
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT message_id, status FROM mail_deliveries ORDER BY status")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    let status_of = |message: &MailMessage| {
        statuses
            .iter()
            .find(|(id, _)| *id == message.message_id.to_string())
            .map(|(_, status)| status.as_str())
    };
    assert_eq!(status_of(&dropped), Some("skipped"), "{statuses:?}");
    assert_eq!(status_of(&delivered), Some("sent"), "{statuses:?}");
}

/// A mailer of this test's own (outside the service's workers) sending to `smtp` with
/// `policy`.
pub(crate) fn test_mailer(app: &TestApp, smtp: &SmtpServer, policy: RetryPolicy) -> Mailer {
    mailer_through(
        app,
        Arc::new(SmtpMailTransport::from_url(&smtp.url()).unwrap()),
        policy,
    )
}

/// A mailer of this test's own sending through `transport` with `policy`.
pub(crate) fn mailer_through(
    app: &TestApp,
    transport: Arc<dyn MailTransport>,
    policy: RetryPolicy,
) -> Mailer {
    Mailer::new(
        app.db.clone(),
        transport,
        "Studio <no-reply@studio.test>".parse().unwrap(),
        "http://studio.test",
        UnsubscribeLinks::new([9; 32]),
        policy,
        app.state.core.codec.keys().clone(),
    )
}

/// Publishes the first half of the first batch it is given, then hangs: a notifier killed
/// after some of a batch reached the broker but before its checkpoint moved.
struct HalfThenHang {
    inner: RabbitPublisher,
    hung: AtomicBool,
}

#[async_trait]
impl MailPublisher for HalfThenHang {
    async fn publish(&self, messages: &[MailMessage]) -> Result<(), QueueError> {
        self.inner.publish(&messages[..messages.len() / 2]).await?;
        self.hung.store(true, Ordering::SeqCst);
        std::future::pending::<()>().await;
        Ok(())
    }
}

async fn a_notifier_killed_mid_batch_and_restarted_loses_and_doubles_nothing(backend: Backend) {
    let url = amqp_url();
    let rabbit = rabbit(&url).await;
    let smtp = SmtpServer::start().await;
    // The service runs no mail workers: this test runs them, and kills one.
    let app = spawn_with_mail(backend, &url, &rabbit, &smtp, |mail| {
        mail.no_mail_workers = true;
    })
    .await;
    let accounts = funded_accounts(&app, 4).await;
    complete_generations(&app, &accounts, 150).await;

    let mailer = Arc::new(test_mailer(
        &app,
        &smtp,
        RetryPolicy {
            first_delay: Duration::from_millis(200),
            max_attempts: 1_000,
            ..RetryPolicy::default()
        },
    ));
    let (_stop, stopping) = tokio::sync::watch::channel(false);
    let consumer =
        tokio::spawn(RabbitConsumer::new(rabbit.clone(), 8).run(mailer, stopping.clone()));

    let notifier = |publisher: Arc<dyn MailPublisher>| {
        Arc::new(Notifier::new(
            app.db.clone(),
            app.state.core.log.clone(),
            Arc::new(app.state.core.codec.clone()),
            publisher,
            app.state.core.codec.keys().clone(),
            20,
        ))
    };
    let hanging = Arc::new(HalfThenHang {
        inner: RabbitPublisher::new(rabbit.clone()),
        hung: AtomicBool::new(false),
    });
    let first = notifier(hanging.clone());
    let killed = tokio::spawn(first.clone().run(stopping.clone()));
    let hung = &hanging.hung;
    eventually(Duration::from_secs(60), || async move {
        if hung.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("the first batch was never published".to_owned())
        }
    })
    .await;
    killed.abort();
    let _ = killed.await;
    assert_eq!(
        first.checkpoint().await.unwrap().0,
        0,
        "killed before its checkpoint moved"
    );
    // Half a batch of e-mails went out before the kill.
    smtp.wait_for(1, Duration::from_secs(60)).await;

    let restarted = tokio::spawn(
        notifier(Arc::new(RabbitPublisher::new(rabbit.clone()))).run(stopping.clone()),
    );
    exactly_once(&smtp, 600, Duration::from_secs(120)).await;
    restarted.abort();
    consumer.abort();
}

async fn put(app: &TestApp, token: &str, body: Value) {
    let response = app.put("/me/notifications", Some(token), &body).await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Waits until the notifier has handled the whole log.
async fn notifier_caught_up(app: &TestApp) {
    let head = app.state.core.log.committed_head().await.unwrap();
    eventually(Duration::from_secs(30), || async move {
        let position =
            projections::checkpoints::stored_checkpoint(&app.db, projections::Follower::Notifier)
                .await
                .unwrap();
        if position >= head {
            Ok(())
        } else {
            Err(format!(
                "the notifier is stuck at {position:?}, short of {head:?}"
            ))
        }
    })
    .await;
}

async fn send_campaign(
    app: &TestApp,
    url: &str,
    rabbit: &RabbitConfig,
    id: Uuid,
    topic: &str,
) -> Value {
    let body = std::env::temp_dir().join(format!("campaign-{}.txt", Uuid::new_v4().simple()));
    std::fs::write(&body, "New models are here.\n\nTry them today.").unwrap();
    let mut args: Vec<String> = [
        "accounts",
        "send-campaign",
        "--topic",
        topic,
        "--subject",
        "Studio news",
        "--body-file",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(body.display().to_string());
    args.extend(["--id".to_owned(), id.to_string()]);
    args.extend(app.storage_args.clone());
    args.extend([
        "--amqp-url".to_owned(),
        url.to_owned(),
        "--amqp-prefix".to_owned(),
        rabbit.prefix.clone(),
    ]);
    let outcome = api::cli::run_from(args).await.unwrap();
    std::fs::remove_file(body).unwrap();
    assert_eq!(outcome.exit_code, 0);
    serde_json::from_str(&outcome.stdout).unwrap()
}

async fn campaigns_reach_opted_in_accounts_with_a_one_click_unsubscribe(backend: Backend) {
    let url = amqp_url();
    let rabbit = rabbit(&url).await;
    let smtp = SmtpServer::start().await;
    let app = spawn_with_mail(backend, &url, &rabbit, &smtp, |_| {}).await;
    let (reader, reader_session) = app.signed_up().await;
    let (_, marketer) = app.signed_up().await;
    let (_, _nobody) = app.signed_up().await;
    put(&app, &reader_session.token, json!({"newsletter": true})).await;
    put(&app, &marketer.token, json!({"marketing": true})).await;
    notifier_caught_up(&app).await;
    // The links verifying the three addresses go first.
    let verifications = 3;
    smtp.wait_for(verifications, Duration::from_secs(60)).await;

    let campaign = Uuid::new_v4();
    let sent = send_campaign(&app, &url, &rabbit, campaign, "newsletter").await;
    assert_eq!(sent["recipients"], 1);
    let mails = smtp
        .wait_for(verifications + 1, Duration::from_secs(60))
        .await;
    assert_eq!(mails.len(), verifications + 1);
    let mail = mails
        .iter()
        .find(|m| header(m, "Subject").is_some_and(|s| s == "Studio news"))
        .expect("the campaign");
    assert!(header(mail, "To").unwrap().contains(&reader));
    assert_eq!(header(mail, "Subject").unwrap(), "Studio news");
    assert_eq!(
        header(mail, "List-Unsubscribe-Post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    let link = header(mail, "List-Unsubscribe").unwrap();
    let link = link.trim_start_matches('<').trim_end_matches('>');
    let token = link.split("token=").nth(1).unwrap();

    // Running the same campaign again sends nothing twice.
    send_campaign(&app, &url, &rabbit, campaign, "newsletter").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), verifications + 1);

    let forged = app
        .client
        .post(app.url(&format!("/unsubscribe?token={}x", token)))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    let page = app.get(&format!("/unsubscribe?token={token}"), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let preferences = json_body(
        app.get("/me/notifications", Some(&reader_session.token))
            .await,
    )
    .await;
    assert_eq!(
        preferences["newsletter"], true,
        "opening the page changes nothing"
    );
    let one_click = app
        .client
        .post(app.url(&format!("/unsubscribe?token={token}")))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(one_click.status(), StatusCode::OK);
    let preferences = json_body(
        app.get("/me/notifications", Some(&reader_session.token))
            .await,
    )
    .await;
    assert_eq!(preferences["newsletter"], false);
    let history = json_body(
        app.get("/me/notifications/history", Some(&reader_session.token))
            .await,
    )
    .await;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["toggle"], "newsletter");
    assert_eq!(last["via"], "unsubscribe_link");

    // The next campaign skips the account that left.
    notifier_caught_up(&app).await;
    let next = send_campaign(&app, &url, &rabbit, Uuid::new_v4(), "newsletter").await;
    assert_eq!(next["recipients"], 0);
    let marketing = send_campaign(&app, &url, &rabbit, Uuid::new_v4(), "marketing").await;
    assert_eq!(marketing["recipients"], 1);
    smtp.wait_for(verifications + 2, Duration::from_secs(60))
        .await;

    // A campaign published from a view that had not caught up with the unsubscribe (the
    // notifier's row set back to what it was before it handled the one-click) is published
    // to the reader, and not sent: the mailer reads the account's preferences as it sends.
    let reader_id =
        json_body(app.get("/me", Some(&reader_session.token)).await).await["account_id"]
            .as_str()
            .unwrap()
            .to_owned();
    sqlx::query(
        "UPDATE notifier_preferences SET enabled = 1 \
         WHERE account_id = $1 AND toggle = 'newsletter'",
    )
    .bind(&reader_id)
    .execute(app.db.pool())
    .await
    .unwrap();
    let late = Uuid::new_v4();
    let stale = send_campaign(&app, &url, &rabbit, late, "newsletter").await;
    assert_eq!(stale["recipients"], 1, "published to the view's opt-ins");
    let reader = Uuid::parse_str(&reader_id).unwrap();
    let message_id = MailMessage::caused_by(
        Uuid::new_v5(&late, reader.as_bytes()),
        MailKind::Campaign,
        reader,
        json!({}),
    )
    .message_id;
    let db = &app.db;
    eventually(Duration::from_secs(30), || async move {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM mail_deliveries WHERE message_id = $1")
                .bind(message_id.to_string())
                .fetch_optional(db.pool())
                .await
                .unwrap();
        match status.as_deref() {
            Some("skipped") => Ok(()),
            other => Err(format!("the late campaign's message is {other:?}")),
        }
    })
    .await;
    assert_eq!(
        smtp.messages().len(),
        verifications + 2,
        "nothing sent to the reader"
    );
}

async fn mail_that_keeps_failing_is_dead_lettered_and_reported(backend: Backend) {
    let url = amqp_url();
    let rabbit = rabbit(&url).await;
    let mut smtp = SmtpServer::start().await;
    smtp.down();
    let app = spawn_with_mail(backend, &url, &rabbit, &smtp, |mail| {
        mail.mail_retry_delay = Duration::from_millis(100);
        mail.mail_max_attempts = 2;
    })
    .await;
    let (_, session) = app.signed_up().await;
    let created = app
        .post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "deploy-bot-7", "scopes": ["account:read"]}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let mut args = vec![
        "accounts".to_owned(),
        "mail".to_owned(),
        "dead-letters".to_owned(),
    ];
    args.extend(app.storage_args.clone());
    let args = &args;
    let letters = eventually(Duration::from_secs(60), || async move {
        let outcome = api::cli::run_from(args.clone()).await.unwrap();
        let letters: Value = serde_json::from_str(&outcome.stdout).unwrap();
        // The token's security notice, and the link verifying the address.
        match letters.as_array().unwrap().len() {
            2 => Ok(letters),
            n => Err(format!("{n} of 2 messages dead-lettered")),
        }
    })
    .await;
    let letters = letters.as_array().unwrap();
    assert!(letters.iter().all(|l| l["attempts"] == 2), "{letters:?}");
    let text = serde_json::to_string(letters).unwrap();
    for secret in ["deploy-bot-7", "@example.com"] {
        assert!(
            !text.contains(secret),
            "personal fields stay sealed in dead letters: {text}"
        );
    }
    let mut kinds: Vec<&str> = letters
        .iter()
        .map(|l| l["message"]["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["email_verification", "security_notice"]);
    let error = letters[0]["last_error"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        error.contains("connect"),
        "the SMTP failure is kept: {error}"
    );

    // The broker holds it in the dead-letter queue too.
    let (connection, channel) = rabbit.connect().await.unwrap();
    let dead = channel
        .queue_declare(
            rabbit.dead_queue().as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(dead.message_count(), 2);
    let _ = connection.close(200, "done".into()).await;

    let (_, operator) = app.operator_token("auditor").await;
    let operator = operator.as_str();
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let metrics = app
        .get("/metrics", Some(operator))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("accounts_mail_dead_letters 2"),
        "{metrics}"
    );
    let listed = json_body(app.get("/admin/mail/dead-letters", Some(operator)).await).await;
    assert_eq!(
        listed["dead_letters"].as_array().unwrap().len(),
        2,
        "{listed}"
    );
    assert!(listed["next_cursor"].is_null(), "{listed}");
}

on_both_backends!(
    a_burst_of_events_yields_exactly_one_email_each,
    the_broker_going_away_loses_and_doubles_nothing,
    the_smtp_server_going_away_loses_and_doubles_nothing,
    a_notifier_killed_mid_batch_and_restarted_loses_and_doubles_nothing,
    campaigns_reach_opted_in_accounts_with_a_one_click_unsubscribe,
    mail_that_keeps_failing_is_dead_lettered_and_reported,
    the_embedded_queue_sends_each_email_once_through_an_smtp_outage,
    a_batch_is_claimed_together_and_each_message_sent_once,
    a_message_dropped_by_an_erased_folder_is_skipped_not_sent,
);
