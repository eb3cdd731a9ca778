//! The consumer side of the RabbitMQ mail queue: the mailer's loop, with retries through
//! `<prefix>.retry.<ms>` (`RabbitConfig::schedule_retry`) and dead letters into
//! `<prefix>.dead`.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;

/// Why a consuming session ended before its shutdown.
#[derive(Debug, thiserror::Error)]
enum SessionLost {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error("the broker closed the retry channel")]
    RetryChannelClosed,
}

/// Consumes the mail queue and hands each message to the mailer.
pub struct RabbitConsumer {
    config: RabbitConfig,
    prefetch: u16,
}

impl RabbitConsumer {
    /// A consumer sending up to `prefetch` messages at once.
    pub fn new(config: RabbitConfig, prefetch: u16) -> Self {
        Self {
            config,
            prefetch: prefetch.max(1),
        }
    }

    /// Consumes until `shutdown` turns true, reconnecting whenever the broker goes away or
    /// closes the channel retries are published on.
    #[tracing::instrument(skip_all, fields(queue = %self.config.queue()))]
    pub async fn run(self, mailer: Arc<Mailer>, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        while !*shutdown.borrow() {
            match self.consume(&mailer, shutdown.clone()).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(error) => tracing::warn!(%error, "mail consumer lost the broker; reconnecting"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// One session on one connection: until shutdown, the broker going away, or the retry
    /// channel closing (then this returns an error and [`Self::run`] reconnects).
    async fn consume(
        &self,
        mailer: &Arc<Mailer>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SessionLost> {
        let (connection, channel) = self.config.connect().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let retry_channel = connection.create_channel().await?;
        retry_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                self.config.queue().as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!("consuming mail");
        // The broker closes a channel on some errors (a retry queue declared with other
        // arguments, say) and every retry on it would then fail: the session ends, and the
        // deliveries it holds go back to the queue for the next one.
        let retry_channel_lost = Notify::new();
        let lost = AtomicBool::new(false);
        let stopping = async {
            tokio::select! {
                () = async {
                    while !*shutdown.borrow() {
                        if shutdown.changed().await.is_err() {
                            break;
                        }
                    }
                } => {}
                () = retry_channel_lost.notified() => {}
            }
        };
        // In-flight messages finish after a shutdown; new ones are left to the broker.
        consumer
            .take_until(stopping)
            .for_each_concurrent(usize::from(self.prefetch), |delivery| {
                let (retry_channel, retry_channel_lost, lost) =
                    (&retry_channel, &retry_channel_lost, &lost);
                async move {
                    match delivery {
                        Ok(delivery) => {
                            self.handle(mailer, retry_channel, delivery).await;
                            if !retry_channel.status().connected() {
                                lost.store(true, Ordering::Relaxed);
                                retry_channel_lost.notify_one();
                            }
                        }
                        Err(error) => tracing::warn!(%error, "mail delivery failed"),
                    }
                }
            })
            .await;
        // Closing the connection closes the retry channel too: what ended the session is
        // what the deliveries saw, not the channel's state after this.
        let _ = connection.close(200, "bye".into()).await;
        if lost.load(Ordering::Relaxed) {
            Err(SessionLost::RetryChannelClosed)
        } else {
            Ok(())
        }
    }

    async fn handle(
        &self,
        mailer: &Mailer,
        retry_channel: &Channel,
        delivery: lapin::message::Delivery,
    ) {
        let attempt = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
            .and_then(|v| match v {
                AMQPValue::LongUInt(n) => Some(n),
                AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
                AMQPValue::LongInt(n) => u32::try_from(n).ok(),
                _ => None,
            })
            .unwrap_or(1);
        let outcome = match serde_json::from_slice::<MailMessage>(&delivery.data) {
            Ok(message) => mailer.deliver(&message, attempt).await,
            Err(error) => Outcome::Dead {
                error: format!("unreadable message: {error}"),
            },
        };
        let held = matches!(outcome, Outcome::Held { .. });
        let settled = match outcome {
            Outcome::Sent | Outcome::Duplicate | Outcome::Skipped => {
                delivery.ack(BasicAckOptions::default()).await.map(|_| ())
            }
            Outcome::Dead { .. } => delivery
                .nack(BasicNackOptions {
                    requeue: false,
                    ..BasicNackOptions::default()
                })
                .await
                .map(|_| ()),
            Outcome::Retry { after, .. } | Outcome::Held { after } => {
                // The attempt the retry copy carries: a message another mailer held was
                // not tried.
                let next_attempt = if held {
                    attempt
                } else {
                    attempt.saturating_add(1)
                };
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let delayed = self
                    .config
                    .schedule_retry(
                        retry_channel,
                        &delivery.data,
                        &message_id,
                        next_attempt,
                        after,
                    )
                    .await;
                match delayed {
                    // The copy waits in the retry queue; this one is done.
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await.map(|_| ()),
                    Err(error) => {
                        tracing::warn!(%error, "could not schedule a retry; requeueing");
                        // Not at once, unless the channel is gone (the session then ends
                        // and reconnects): a failing retry would otherwise spin.
                        if retry_channel.status().connected() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        delivery
                            .nack(BasicNackOptions {
                                requeue: true,
                                ..BasicNackOptions::default()
                            })
                            .await
                            .map(|_| ())
                    }
                }
            }
        };
        if let Err(error) = settled {
            // The broker redelivers it; the delivery record stops a second send.
            tracing::warn!(%error, "could not settle a mail delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::RetryPolicy;
    use crate::mail::transport::FolderMailTransport;
    use store::Database;
    use store::testkit::TestSqlite;
    use vault::{DataKeys, MasterKey, UnsubscribeLinks};

    /// A session ended by a shutdown ends cleanly, not as a lost retry channel: closing
    /// the connection closes that channel too, and reading its state after the close
    /// reported every session's end as a loss (a warning, and a backoff never reset).
    #[tokio::test]
    async fn a_session_ended_by_shutdown_is_not_a_lost_retry_channel() {
        let url = std::env::var("AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let config = RabbitConfig {
            url: url.clone(),
            prefix: format!("test.mail.{}", uuid::Uuid::new_v4().simple()),
        };
        if let Err(error) = config.reachable().await {
            panic!(
                "RabbitMQ is not reachable at {url} ({error}). Start it with \
                 `rabbitmq-server -detached` or point AMQP_URL at one."
            );
        }
        let file = TestSqlite::create();
        let db = Database::connect(&file.url, 2).await.unwrap();
        let mailer = Arc::new(Mailer::new(
            db.clone(),
            Arc::new(FolderMailTransport::new(file.dir.join("mail")).unwrap()),
            "Studio <no-reply@studio.test>".parse().unwrap(),
            "http://studio.test",
            UnsubscribeLinks::new([9; 32]),
            RetryPolicy::default(),
            Arc::new(DataKeys::new(db, &MasterKey::generate())),
        ));
        let consumer = RabbitConsumer::new(config.clone(), 4);
        let (stop, shutdown) = watch::channel(false);
        let session = consumer.consume(&mailer, shutdown);
        let stopper = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = stop.send(true);
        };
        let (ended, ()) = tokio::join!(session, stopper);
        let _ = config.delete_topology().await;
        assert!(ended.is_ok(), "{ended:?}");
    }
}
