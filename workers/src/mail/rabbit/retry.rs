//! The retry queues: a failed message waits its backoff in `<prefix>.retry.<ms>`, one queue
//! per delay, then goes back into the mail queue (the topology is in the parent module).

use super::{ROUTING_KEY, RabbitConfig, confirmed, properties, publish_confirmed};
use crate::mail::queue::QueueError;
use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use std::time::Duration;

/// How long (in milliseconds) a retry queue outlives its delay, unused, before the broker
/// deletes it.
// Part of each retry queue's arguments: RabbitMQ refuses to declare an existing queue with
// other arguments (and closes the channel), so a change here must also change the queues'
// names (`RabbitConfig::retry_queue_for`).
const RETRY_QUEUE_GRACE_MS: i64 = 60_000;

impl RabbitConfig {
    /// The retry queue of the messages that wait `delay_ms` (see [`retry_delay_ms`]).
    pub fn retry_queue_for(&self, delay_ms: u32) -> String {
        format!("{}.retry.{delay_ms}", self.prefix)
    }

    /// Puts a copy of a delivered message (`body`, its `message_id`) back on the mail queue
    /// after `after` (rounded up, [`retry_delay_ms`]), as attempt number `attempt`, through
    /// the retry queue of that delay, declared first. `channel` is in confirm mode; this
    /// returns once the broker has confirmed the copy.
    #[tracing::instrument(skip_all, fields(attempt = attempt, delay_ms = retry_delay_ms(after)))]
    pub async fn schedule_retry(
        &self,
        channel: &Channel,
        body: &[u8],
        message_id: &str,
        attempt: u32,
        after: Duration,
    ) -> Result<(), QueueError> {
        let delay_ms = retry_delay_ms(after);
        let queue = self.retry_queue_for(delay_ms);
        // Declared at every retry: a declaration also keeps the queue from expiring while
        // its messages wait (RabbitMQ counts neither publishing nor holding as use).
        let mut arguments = self.back_to_the_mail_queue();
        let ttl = i64::from(delay_ms);
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        arguments.insert(
            "x-expires".into(),
            AMQPValue::LongLongInt(ttl + ttl.max(RETRY_QUEUE_GRACE_MS)),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                arguments,
            )
            .await
            .map_err(|e| QueueError::Broker(e.to_string()))?;
        let confirm =
            publish_confirmed(channel, "", &queue, body, properties(message_id, attempt)).await?;
        confirmed(confirm).await
    }

    /// The arguments of a queue whose expired messages go back into the mail queue.
    pub(super) fn back_to_the_mail_queue(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.queue().as_str().into()),
        );
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(ROUTING_KEY.into()),
        );
        arguments
    }
}

/// The delay of a retry in milliseconds, rounded up to two significant digits (at most a
/// tenth longer, and at most 49 days, RabbitMQ's limit for a TTL), so that one queue serves
/// every delay close to it: the mailer's backoff (2 s, 4 s, … 300 s by default) uses a queue
/// per step, and the leases' remainders a few more.
pub fn retry_delay_ms(after: Duration) -> u32 {
    let ms = u64::try_from(after.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, u64::from(u32::MAX));
    let mut step = 1;
    while ms / step >= 100 {
        step *= 10;
    }
    u32::try_from(ms.div_ceil(step) * step).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::retry_delay_ms;
    use std::time::Duration;

    #[test]
    fn retry_delays_round_up_to_two_significant_digits() {
        for (ms, expected) in [
            (0, 1),
            (1, 1),
            (99, 99),
            (100, 100),
            (101, 110),
            (2_000, 2_000),
            (128_000, 130_000),
            (117_345, 120_000),
            (300_000, 300_000),
        ] {
            assert_eq!(
                retry_delay_ms(Duration::from_millis(ms)),
                expected,
                "{ms} ms"
            );
        }
        assert_eq!(retry_delay_ms(Duration::MAX), u32::MAX);
    }
}
