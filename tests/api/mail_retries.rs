//! Retries through RabbitMQ (the tests' broker, queue names of each test's own): each retry
//! waits its own delay, and a retry channel the broker closed is replaced; and waiting for
//! another mailer's lease spends no attempt.

use super::mail::{generation_notice, mailer_through};
use async_trait::async_trait;
use lapin::options::{BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::AMQPValue;
use lettre::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use store::Backend;
use tests::broker::{amqp_url, rabbit};
use tests::mail::SmtpServer;
use tests::{eventually, spawn_app};
use uuid::Uuid;
use workers::mail::rabbit::{RabbitConfig, RabbitConsumer, RabbitPublisher, retry_delay_ms};
use workers::mail::transport::{Handed, MailTransport, SendError, SmtpMailTransport};
use workers::mail::{MailPublisher, RetryPolicy};

/// A retry waits its own delay, not the longest one queued before it. RabbitMQ expires
/// messages only at a queue's head: with one retry queue and per-message TTLs (before), a
/// short retry published after a long one came back only once the long one had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_retry_is_not_held_behind_a_long_one() {
    tests::within_time_limit(async {
        let rabbit = rabbit(&amqp_url()).await;
        let (connection, channel) = rabbit.connect().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let long = Duration::from_secs(3);
        let short = Duration::from_millis(100);
        rabbit
            .schedule_retry(&channel, b"{}", "long", 2, long)
            .await
            .unwrap();
        rabbit
            .schedule_retry(&channel, b"{}", "short", 5, short)
            .await
            .unwrap();

        let mut arrived = Vec::new();
        while arrived.len() < 2 {
            let got = channel
                .basic_get(
                    rabbit.queue().as_str().into(),
                    BasicGetOptions { no_ack: true },
                )
                .await
                .unwrap();
            let Some(got) = got else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let properties = &got.delivery.properties;
            let id = properties.message_id().as_ref().unwrap().to_string();
            let attempt = properties
                .headers()
                .as_ref()
                .and_then(|headers| headers.inner().get("x-attempt").cloned());
            arrived.push((id, attempt));
        }
        assert_eq!(
            arrived,
            [
                ("short".to_owned(), Some(AMQPValue::LongUInt(5))),
                ("long".to_owned(), Some(AMQPValue::LongUInt(2))),
            ],
            "the retries in the order their delays ran out, each with its attempt number"
        );

        for delay in [long, short] {
            let queue = rabbit.retry_queue_for(retry_delay_ms(delay));
            channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await
                .unwrap();
        }
        let _ = connection.close(200, "done".into()).await;
    })
    .await;
}

/// The real SMTP transport, counting the attempts made through it.
struct CountingSmtp {
    inner: SmtpMailTransport,
    attempts: AtomicUsize,
}

#[async_trait]
impl MailTransport for CountingSmtp {
    async fn send(
        &self,
        message: &Message,
        recipient: domain::AccountId,
    ) -> Result<Handed, SendError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.inner.send(message, recipient).await
    }
}

/// Whether `queue` exists (a passive declaration, on a channel of its own: a missing queue
/// closes the channel that asked).
async fn queue_exists(rabbit: &RabbitConfig, queue: &str) -> bool {
    let (connection, channel) = rabbit.connect().await.unwrap();
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let exists = channel
        .queue_declare(queue.into(), passive, Default::default())
        .await
        .is_ok();
    let _ = connection.close(200, "checked".into()).await;
    exists
}

/// The broker closes a channel on some errors, here a retry queue declared beforehand with
/// other arguments (as a change of the retry queues' arguments would do). Every retry on
/// that channel then fails: the consumer starts a new session (connection and channels)
/// instead of requeueing the message on the dead channel for ever, so once the queue in the
/// way is gone the retries go through again, and the e-mail is sent once the SMTP server is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_channel_the_broker_closed_is_replaced() {
    tests::within_time_limit(async {
        let rabbit = rabbit(&amqp_url()).await;
        let mut smtp = SmtpServer::start().await;
        smtp.down();
        let app = spawn_app(Backend::Sqlite).await;
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let account = Uuid::parse_str(&app.register(&email).await).unwrap();

        let delay = Duration::from_millis(200);
        let retry_queue = rabbit.retry_queue_for(retry_delay_ms(delay));
        let (connection, channel) = rabbit.connect().await.unwrap();
        channel
            .queue_declare(
                retry_queue.as_str().into(),
                QueueDeclareOptions::durable(),
                Default::default(),
            )
            .await
            .unwrap();

        let transport = Arc::new(CountingSmtp {
            inner: SmtpMailTransport::from_url(&smtp.url()).unwrap(),
            attempts: AtomicUsize::new(0),
        });
        let policy = RetryPolicy {
            first_delay: delay,
            max_delay: delay,
            max_attempts: 1_000,
            ..RetryPolicy::default()
        };
        let mailer = Arc::new(mailer_through(&app, transport.clone(), policy));
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let consumer = tokio::spawn(RabbitConsumer::new(rabbit.clone(), 4).run(mailer, stopping));
        let message = generation_notice(account);
        RabbitPublisher::new(rabbit.clone())
            .publish(std::slice::from_ref(&message))
            .await
            .unwrap();

        // Tried, failed, and its retry refused by the broker more than once.
        let attempts = &transport.attempts;
        eventually(Duration::from_secs(60), || async move {
            match attempts.load(Ordering::SeqCst) {
                n if n >= 3 => Ok(()),
                n => Err(format!("{n} attempts so far")),
            }
        })
        .await;
        channel
            .queue_delete(retry_queue.as_str().into(), Default::default())
            .await
            .unwrap();
        let _ = connection.close(200, "done".into()).await;

        let (rabbit_ref, queue) = (&rabbit, retry_queue.as_str());
        eventually(Duration::from_secs(60), || async move {
            if queue_exists(rabbit_ref, queue).await {
                Ok(())
            } else {
                Err("no retry was scheduled since the queue in the way went".to_owned())
            }
        })
        .await;
        smtp.up().await;
        smtp.wait_for(1, Duration::from_secs(60)).await;
        assert_eq!(smtp.by_message_id().len(), 1, "the e-mail arrived, once");

        let _ = stop.send(true);
        let _ = consumer.await;
        let (connection, channel) = rabbit.connect().await.unwrap();
        let _ = channel
            .queue_delete(retry_queue.as_str().into(), Default::default())
            .await;
        let _ = connection.close(200, "done".into()).await;
    })
    .await;
}

/// A message another mailer holds (a crashed one's lease not run out yet) is looked at
/// again and again until the lease ends; that waiting spends none of its attempts, so its
/// first real failure afterwards is not its last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_another_mailers_lease_spends_no_attempt() {
    tests::within_time_limit(async {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let app = spawn_app(backend).await;
            let email = format!("held-{}@example.com", Uuid::new_v4().simple());
            let account = Uuid::parse_str(&app.register(&email).await).unwrap();
            let message = generation_notice(account);
            let id = message.message_id.to_string();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64;
            sqlx::query(
                "INSERT INTO mail_deliveries (message_id, status, claimed_by, lease_until, \
                 updated_at) VALUES ($1, 'sending', 'a mailer that crashed', $2, $3)",
            )
            .bind(&id)
            .bind(now + 60_000_000)
            .bind(now)
            .execute(app.db.pool())
            .await
            .unwrap();
            workers::mail::outbox::OutboxQueue::new(app.db.clone())
                .publish(&[message])
                .await
                .unwrap();
            // The service's outbox finds it held, and says so.
            let (db, id) = (&app.db, &id);
            eventually(Duration::from_secs(30), || async move {
                let row: Option<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT attempts, last_error FROM mail_outbox WHERE message_id = $1",
                )
                .bind(id)
                .fetch_optional(db.pool())
                .await
                .unwrap();
                match row {
                    Some((attempts, Some(error))) => {
                        assert!(error.contains("holds"), "{error}");
                        assert_eq!(attempts, 0, "waiting is no attempt ({backend:?})");
                        Ok(())
                    }
                    other => Err(format!("not looked at yet: {other:?}")),
                }
            })
            .await;
        }
    })
    .await;
}

/// Sends through SMTP after a pause, as a slow relay does.
struct SlowTransport {
    inner: SmtpMailTransport,
    pause: Duration,
}

#[async_trait]
impl MailTransport for SlowTransport {
    async fn send(
        &self,
        message: &Message,
        recipient: domain::AccountId,
    ) -> Result<Handed, SendError> {
        tokio::time::sleep(self.pause).await;
        self.inner.send(message, recipient).await
    }
}

/// A long batch through a slow relay: its claims are taken a few at a time, so a lease
/// runs while its message is sent. Claimed all at once, the last messages' leases ran out
/// while the first were sent, and a second mailer draining the same messages sent those
/// too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_batch_is_not_sent_twice_by_a_second_mailer() {
    tests::within_time_limit(async {
        let smtp = SmtpServer::start().await;
        let app = spawn_app(Backend::Sqlite).await;
        let email = format!("slow-{}@example.com", Uuid::new_v4().simple());
        let account = Uuid::parse_str(&app.register(&email).await).unwrap();
        let messages: Vec<_> = (0..48).map(|_| generation_notice(account)).collect();
        let policy = RetryPolicy {
            lease: Duration::from_millis(1_500),
            ..RetryPolicy::default()
        };
        let mailer = || {
            let transport = Arc::new(SlowTransport {
                inner: SmtpMailTransport::from_url(&smtp.url()).unwrap(),
                pause: Duration::from_millis(400),
            });
            mailer_through(&app, transport, policy.clone())
        };
        let (first, second) = (mailer(), mailer());
        let batch: Vec<_> = messages.iter().map(|m| (m, 1)).collect();
        let later = async {
            // Past the first claims' leases, while the first mailer is still sending.
            tokio::time::sleep(Duration::from_millis(1_700)).await;
            second.deliver_all(&batch).await
        };
        let (_, _) = tokio::join!(first.deliver_all(&batch), later);
        smtp.wait_for(48, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = smtp.by_message_id();
        assert_eq!(sent.len(), 48, "every message arrived");
        let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "sent twice: {twice:?}");
    })
    .await;
}
