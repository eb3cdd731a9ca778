//! The mail queue on RabbitMQ (lapin).
//!
//! Topology, declared by every publisher and consumer at connection (idempotent):
//! - `<prefix>`: durable direct exchange, bound to the durable queue `<prefix>`, whose
//!   rejected messages go to the `<prefix>.dead` exchange;
//! - `<prefix>.retry.<ms>`: one durable queue without consumers per retry delay (rounded
//!   up to two significant digits of milliseconds, [`retry_delay_ms`]), whose queue-wide
//!   TTL sends each message back into `<prefix>` once it has waited its delay. All of one
//!   queue's messages wait the same time, so none is held behind a longer one (RabbitMQ
//!   expires messages only at a queue's head). Declared by the retry that needs it, again
//!   at every retry; a queue unused for its delay plus a minute or more is deleted by the
//!   broker (`x-expires`), so delays no longer used leave nothing behind.
//! - `<prefix>.retry`: the single retry queue of earlier versions (per-message TTLs), still
//!   declared so that what it holds after an upgrade goes back into `<prefix>`;
//! - `<prefix>.dead`: fanout exchange and durable queue holding the dead letters.
//!
//! Messages are persistent, published as mandatory with publisher confirms; the message
//! id is derived from the event that caused the mail. The consumer is in `consumer`.

mod consumer;
mod retry;

pub use consumer::RabbitConsumer;
pub use retry::retry_delay_ms;

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

    /// The retry queue of earlier versions (one queue, per-message TTLs).
    pub fn retry_queue(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    /// The dead-letter exchange and queue.
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Whether the broker accepts a connection (declaring nothing), for `accounts doctor`.
    pub async fn reachable(&self) -> Result<(), lapin::Error> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default()).await?;
        connection.close(200, "checked".into()).await
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
        let retry_arguments = self.back_to_the_mail_queue();
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

    /// Deletes the queues and exchanges (tests clean up with this). The retry queues of
    /// each delay are left to expire (`x-expires`).
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
