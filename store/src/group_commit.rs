//! Group commit: concurrent appends handed to one writer per log, which commits what has
//! queued in one transaction.
//!
//! A commit costs a disk flush, whatever it writes; appends that each commit on their own
//! are bounded by that latency, and on SQLite they also queue for its one write lock. The
//! writer takes the first append waiting, then everything else already queued (up to
//! [`MAX_BATCH_APPENDS`] appends and [`MAX_BATCH_EVENTS`] events), and commits them
//! together. It never waits for more: a lone append is committed at once, and under load
//! the appends that arrive while one batch commits form the next.
//!
//! Each append in a batch keeps its own expected-revision check and its own result; the
//! backends decide how (see `postgres` and `sqlite`).

use crate::envelope::{ExpectedRevision, NewEvent};
use crate::error::StoreError;
use crate::log::MAX_EVENTS_PER_APPEND;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most appends one batch carries.
pub(crate) const MAX_BATCH_APPENDS: usize = 64;

/// Most events one batch carries (a single append may bring this many on its own). On
/// PostgreSQL a transaction numbers its events below `1 << 20`, far above this.
pub(crate) const MAX_BATCH_EVENTS: usize = MAX_EVENTS_PER_APPEND;

/// One append waiting for the writer, and where its result goes.
pub(crate) struct Append<R> {
    /// The stream.
    pub stream: String,
    /// The caller's expectation.
    pub expected: ExpectedRevision,
    /// The events, shared with the caller (which may need them to explain a refusal).
    pub events: Arc<Vec<NewEvent>>,
    /// The caller's end.
    pub reply: oneshot::Sender<R>,
}

/// The appenders' side of the queue.
pub(crate) struct Queue<R>(mpsc::UnboundedSender<Append<R>>);

impl<R> Queue<R> {
    /// A queue and the batcher its writer reads from.
    pub(crate) fn new() -> (Self, Batcher<R>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), Batcher { rx, held: None })
    }

    /// Hands an append to the writer and waits for its result.
    pub(crate) async fn submit(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Arc<Vec<NewEvent>>,
    ) -> Result<R, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send(Append {
                stream: stream.to_owned(),
                expected,
                events,
                reply,
            })
            .map_err(|_| closed())?;
        // The writer only drops an append unanswered when it stops (the log is dropped
        // or its runtime shuts down).
        answer.await.map_err(|_| closed())
    }
}

fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The writer's side of the queue: hands out batches.
pub(crate) struct Batcher<R> {
    rx: mpsc::UnboundedReceiver<Append<R>>,
    /// An append taken from the queue that did not fit in the last batch.
    held: Option<Append<R>>,
}

impl<R> Batcher<R> {
    /// Waits for an append, then takes whatever else is queued, within the limits. `None`
    /// once every appender is gone. Appends whose caller stopped waiting (a cancelled
    /// request) are left out: nothing is written for them.
    pub(crate) async fn next_batch(&mut self) -> Option<Vec<Append<R>>> {
        let first = loop {
            let next = match self.held.take() {
                Some(held) => held,
                None => self.rx.recv().await?,
            };
            if !next.reply.is_closed() {
                break next;
            }
        };
        let mut events = first.events.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_APPENDS {
            let Ok(next) = self.rx.try_recv() else {
                break;
            };
            if next.reply.is_closed() {
                continue;
            }
            if events + next.events.len() > MAX_BATCH_EVENTS {
                self.held = Some(next);
                break;
            }
            events += next.events.len();
            batch.push(next);
        }
        Some(batch)
    }
}

/// Answers every append of a batch that failed as a whole (the connection broke, the
/// commit failed) with the same error. `sqlx::Error` cannot be cloned: each caller gets
/// its text.
pub(crate) fn shared_failure(error: &sqlx::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!(
        "the group commit of this append failed: {error}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Actor, Metadata};
    use domain::Timestamp;
    use uuid::Uuid;

    fn events(n: usize) -> Arc<Vec<NewEvent>> {
        Arc::new(
            (0..n)
                .map(|_| NewEvent {
                    event_id: Uuid::new_v4(),
                    event_type: "Happened".into(),
                    schema_version: 1,
                    data: serde_json::json!({}),
                    metadata: Metadata {
                        correlation_id: Uuid::new_v4(),
                        causation_id: None,
                        actor: Actor::Anonymous,
                        occurred_at: Timestamp::from_unix_micros(0),
                        idempotency_key: None,
                        data_subject: None,
                    },
                })
                .collect(),
        )
    }

    fn queue_up(queue: &Queue<()>, sizes: &[usize]) -> Vec<oneshot::Receiver<()>> {
        sizes
            .iter()
            .map(|&n| {
                let (reply, answer) = oneshot::channel();
                queue
                    .0
                    .send(Append {
                        stream: "s".into(),
                        expected: ExpectedRevision::Any,
                        events: events(n),
                        reply,
                    })
                    .ok()
                    .unwrap();
                answer
            })
            .collect()
    }

    /// 200 queued appends go out in batches of at most 64, none lost, in queue order.
    #[tokio::test]
    async fn takes_what_is_queued_up_to_the_batch_size() {
        let (queue, mut batcher) = Queue::new();
        let _answers = queue_up(&queue, &[1; 200]);
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 200 {
            sizes.push(batcher.next_batch().await.unwrap().len());
        }
        assert_eq!(sizes, [64, 64, 64, 8]);
    }

    /// A batch stops before the event limit; the append that did not fit starts the next.
    #[tokio::test]
    async fn keeps_a_batch_within_the_event_limit() {
        let (queue, mut batcher) = Queue::new();
        let _answers = queue_up(&queue, &[6_000, 3_000, 2_000, 1]);
        let first = batcher.next_batch().await.unwrap();
        let sizes: Vec<usize> = first.iter().map(|a| a.events.len()).collect();
        assert_eq!(sizes, [6_000, 3_000]);
        let second = batcher.next_batch().await.unwrap();
        let sizes: Vec<usize> = second.iter().map(|a| a.events.len()).collect();
        assert_eq!(sizes, [2_000, 1]);
    }

    /// An append whose caller gave up before the writer reached it is not written.
    #[tokio::test]
    async fn leaves_out_appends_nobody_waits_for() {
        let (queue, mut batcher) = Queue::new();
        let mut answers = queue_up(&queue, &[1, 2, 3]);
        drop(answers.remove(0));
        let batch = batcher.next_batch().await.unwrap();
        let sizes: Vec<usize> = batch.iter().map(|a| a.events.len()).collect();
        assert_eq!(sizes, [2, 3]);
        drop(queue);
        drop(batch);
        assert!(batcher.next_batch().await.is_none());
    }
}
