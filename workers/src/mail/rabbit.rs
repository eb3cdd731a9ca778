//! The mail queue on RabbitMQ (lapin).
//!
//! Topology, declared by every publisher and consumer at connection (idempotent):
//! - `<prefix>`: durable direct exchange, bound to the durable queue `<prefix>`, whose
//!   rejected messages go to the `<prefix>.dead` exchange;
//! - `<prefix>.retry`: a durable queue without consumers; a message waits there for its
//!   per-message TTL (the backoff), then expires back into `<prefix>`;
//! - `<prefix>.dead`: fanout exchange and durable queue holding the dead letters.
//!
//! Messages are persistent, published as mandatory with publisher confirms; the message
//! id is derived from the event that caused the mail.

use super::mailer::{Mailer, Outcome};
use super::message::MailMessage;
use super::queue::{MailPublisher, QueueError};
use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// The routing key of mail messages.
const ROUTING_KEY: &str = "mail";
/// Longest wait for a batch's confirms.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);
/// The header counting delivery attempts.
const ATTEMPT_HEADER: &str = "x-attempt";

/// Where the broker is and what the queues are called. Its `Debug` leaves the URL out (it
/// holds the broker's password).
#[derive(Clone)]
pub struct RabbitConfig {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// Exchange and queue names start with this (default `accounts.mail`).
    pub prefix: String,
}

impl std::fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("url", &"<hidden>")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RabbitConfig {
    /// The main exchange and queue.
    pub fn queue(&self) -> String {
        self.prefix.clone()
    }

    /// The retry (delay) queue.
    pub fn retry_queue(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    /// The dead-letter exchange and queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Connects and declares the topology.
    pub async fn connect(&self) -> Result<(Connection, Channel), lapin::Error> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        self.declare(&channel).await?;
        Ok((connection, channel))
    }

    async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let (queue, retry, dead) = (self.queue(), self.retry_queue(), self.dead_queue());
        channel
            .exchange_declare(
                queue.as_str().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                dead.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await?;
        let mut main_arguments = FieldTable::default();
        main_arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        let mut retry_arguments = FieldTable::default();
        retry_arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(queue.as_str().into()),
        );
        retry_arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(ROUTING_KEY.into()),
        );
        let durable = QueueDeclareOptions::durable();
        for (name, arguments) in [
            (&queue, main_arguments),
            (&retry, retry_arguments),
            (&dead, FieldTable::default()),
        ] {
            channel
                .queue_declare(name.as_str().into(), durable, arguments)
                .await?;
        }
        channel
            .queue_bind(
                queue.as_str().into(),
                queue.as_str().into(),
                ROUTING_KEY.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                dead.as_str().into(),
                dead.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Deletes the queues and exchanges (tests clean up with this).
    pub async fn delete_topology(&self) -> Result<(), lapin::Error> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        for queue in [self.queue(), self.retry_queue(), self.dead_queue()] {
            channel
                .queue_delete(queue.as_str().into(), Default::default())
                .await?;
        }
        for exchange in [self.queue(), self.dead_queue()] {
            channel
                .exchange_delete(exchange.as_str().into(), Default::default())
                .await?;
        }
        connection.close(200, "done".into()).await
    }
}

fn properties(message_id: &str, attempt: u32) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(ShortString::from(message_id))
        .with_headers(headers)
}

/// Publishes on a confirm channel, reconnecting when the connection is gone.
pub struct RabbitPublisher {
    config: RabbitConfig,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl RabbitPublisher {
    /// A publisher to `config` (connects on first use).
    pub fn new(config: RabbitConfig) -> Self {
        Self {
            config,
            link: Mutex::new(None),
        }
    }

    async fn channel(
        &self,
        link: &mut Option<(Connection, Channel)>,
    ) -> Result<Channel, lapin::Error> {
        if let Some((connection, channel)) = link.as_ref()
            && connection.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let (connection, channel) = self.config.connect().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }
}

/// Publishes `body` and waits for the broker's confirm; a returned (unroutable) or
/// nacked message is an error.
async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: BasicProperties,
) -> Result<lapin::PublisherConfirm, QueueError> {
    channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            body,
            properties,
        )
        .await
        .map_err(|e| QueueError::Broker(e.to_string()))
}

async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<(), QueueError> {
    let confirmation = confirm
        .await
        .map_err(|e| QueueError::Broker(e.to_string()))?;
    if !confirmation.is_ack() {
        return Err(QueueError::Broker("the broker refused a message".into()));
    }
    if confirmation.take_message().is_some() {
        return Err(QueueError::Broker(
            "a message could not be routed to the mail queue".into(),
        ));
    }
    Ok(())
}

#[async_trait]
impl MailPublisher for RabbitPublisher {
    #[tracing::instrument(skip_all, fields(messages = messages.len()))]
    async fn publish(&self, messages: &[MailMessage]) -> Result<(), QueueError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut link = self.link.lock().await;
        let work = async {
            let channel = self
                .channel(&mut link)
                .await
                .map_err(|e| QueueError::Broker(e.to_string()))?;
            let exchange = self.config.queue();
            let mut confirms = Vec::with_capacity(messages.len());
            for message in messages {
                let body = serde_json::to_vec(message)
                    .map_err(|e| QueueError::Broker(format!("encoding a message: {e}")))?;
                confirms.push(
                    publish_confirmed(
                        &channel,
                        &exchange,
                        ROUTING_KEY,
                        &body,
                        properties(&message.message_id.to_string(), 1),
                    )
                    .await?,
                );
            }
            for confirm in confirms {
                confirmed(confirm).await?;
            }
            Ok(())
        };
        // A broker that stops answering (a blocked connection, a half-open socket) must not
        // stall the notifier: give up, reconnect, and publish the batch again.
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(QueueError::Broker(format!(
                "no confirm within {PUBLISH_TIMEOUT:?}"
            ))),
        };
        if result.is_err() {
            // Start afresh next time: a channel that failed a publish is not trusted.
            if let Some((connection, _)) = link.take() {
                let _ = connection.close(200, "reconnecting".into()).await;
            }
        }
        result
    }
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

    /// Consumes until `shutdown` turns true, reconnecting whenever the broker goes away.
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

    async fn consume(
        &self,
        mailer: &Arc<Mailer>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), lapin::Error> {
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
        let stopping = async move {
            while !*shutdown.borrow() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        // In-flight messages finish after a shutdown; new ones are left to the broker.
        consumer
            .take_until(stopping)
            .for_each_concurrent(usize::from(self.prefetch), |delivery| {
                let retry_channel = retry_channel.clone();
                async move {
                    match delivery {
                        Ok(delivery) => self.handle(mailer, &retry_channel, delivery).await,
                        Err(error) => tracing::warn!(%error, "mail delivery failed"),
                    }
                }
            })
            .await;
        let _ = connection.close(200, "bye".into()).await;
        Ok(())
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
            Outcome::Retry { after, .. } => {
                let message_id = delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let delayed = async {
                    let confirm = publish_confirmed(
                        retry_channel,
                        "",
                        &self.config.retry_queue(),
                        &delivery.data,
                        properties(&message_id, attempt.saturating_add(1))
                            .with_expiration(after.as_millis().max(1).to_string().into()),
                    )
                    .await?;
                    confirmed(confirm).await
                }
                .await;
                match delayed {
                    // The copy waits in the retry queue; this one is done.
                    Ok(()) => delivery.ack(BasicAckOptions::default()).await.map(|_| ()),
                    Err(error) => {
                        tracing::warn!(%error, "could not schedule a retry; requeueing");
                        tokio::time::sleep(Duration::from_secs(1)).await;
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
