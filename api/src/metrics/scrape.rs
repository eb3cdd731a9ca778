//! The figures read from this app's storage at each scrape (the mail pipeline's counts,
//! whether the notifier is behind, each follower's lag), set into a recorder made for that
//! scrape.

use super::{PROJECTION_LAG_EVENTS, PROJECTION_LAG_SECONDS};
use crate::error::ApiError;
use crate::state::Core;
use metrics::{Unit, describe_counter, describe_gauge};
use metrics_exporter_prometheus::PrometheusBuilder;
use projections::Follower;
use std::collections::HashMap;
use store::Backlog;
use workers::mail::queue::MailStats;

/// What is read from storage at each scrape.
#[derive(Debug, Clone, Default)]
pub struct ScrapeFigures {
    /// The mail pipeline's counts.
    pub mail: MailStats,
    /// Whether the notifier has events of the log left to handle.
    pub notifier_behind: bool,
    /// Each follower of the log this app runs, with its backlog.
    pub lag: Vec<(Follower, Backlog)>,
    /// Now, in microseconds since the epoch (the lag in seconds is counted to it).
    pub now_micros: i64,
}

impl ScrapeFigures {
    /// Reads them from `core`'s storage.
    pub async fn read(core: &Core) -> Result<Self, ApiError> {
        let mail = workers::mail::queue::stats(&core.db).await?;
        let notifier =
            projections::checkpoints::stored_checkpoint(&core.db, workers::notifier::CHECKPOINT)
                .await?;
        let store = |e: store::StoreError| ApiError::Internal(e.to_string());
        let head = core.log.committed_head().await.map_err(store)?;
        let mut followers = core.projections.names();
        followers.extend(core.projections.reactor_names());
        // Followers at the same checkpoint (all of them, when caught up) share one count.
        let mut backlogs = HashMap::new();
        let mut lag = Vec::with_capacity(followers.len());
        for follower in followers {
            let checkpoint = core
                .projections
                .position(follower)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let backlog = match backlogs.get(&checkpoint) {
                Some(backlog) => *backlog,
                None => {
                    let backlog = core.log.backlog(checkpoint).await.map_err(store)?;
                    backlogs.insert(checkpoint, backlog);
                    backlog
                }
            };
            lag.push((follower, backlog));
        }
        Ok(Self {
            mail,
            notifier_behind: notifier < head,
            lag,
            now_micros: domain::Timestamp::from_datetime(time::OffsetDateTime::now_utc())
                .unix_micros(),
        })
    }

    /// Renders them in Prometheus' text format, through a recorder made for this scrape.
    pub fn render(&self) -> String {
        let recorder = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&recorder, || {
            let mail = &self.mail;
            for (name, help, value) in [
                ("accounts_mail_sent_total", "E-mails sent.", mail.sent),
                (
                    "accounts_mail_skipped_total",
                    "E-mails not sent because the account (or its mail folder) was gone.",
                    mail.skipped,
                ),
            ] {
                describe_counter!(name, help);
                metrics::counter!(name).absolute(value.max(0) as u64);
            }
            for (name, help, value) in [
                (
                    "accounts_mail_sending",
                    "E-mails being sent now.",
                    mail.sending,
                ),
                (
                    "accounts_mail_dead_letters",
                    "E-mails given up on (see accounts mail dead-letters).",
                    mail.dead_letters,
                ),
                (
                    "accounts_mail_outbox",
                    "E-mails waiting in the embedded outbox.",
                    mail.outbox,
                ),
                (
                    "accounts_notifier_behind",
                    "1 while the notifier has events of the log left to handle.",
                    i64::from(self.notifier_behind),
                ),
            ] {
                describe_gauge!(name, help);
                metrics::gauge!(name).set(value as f64);
            }
            describe_gauge!(
                PROJECTION_LAG_EVENTS,
                Unit::Count,
                "Committed events a follower of the log (read model or reactor) has still to handle."
            );
            describe_gauge!(
                PROJECTION_LAG_SECONDS,
                Unit::Seconds,
                "Seconds since the oldest event a follower of the log has still to handle was recorded; 0 when caught up."
            );
            for (follower, backlog) in &self.lag {
                metrics::gauge!(PROJECTION_LAG_EVENTS, "read_model" => follower.key())
                    .set(backlog.events as f64);
                metrics::gauge!(PROJECTION_LAG_SECONDS, "read_model" => follower.key())
                    .set(lag_seconds(backlog, self.now_micros));
            }
        });
        recorder.handle().render()
    }
}

/// Seconds from the oldest unhandled event's recording to `now_micros`; 0 with none (or
/// a clock that went back).
pub fn lag_seconds(backlog: &Backlog, now_micros: i64) -> f64 {
    backlog.oldest.map_or(0.0, |oldest| {
        (now_micros.saturating_sub(oldest.unix_micros())).max(0) as f64 / 1e6
    })
}
