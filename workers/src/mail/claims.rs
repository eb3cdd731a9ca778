//! The deliveries ledger (`mail_deliveries`): a mailer claims a message before sending it
//! (a lease, so that no other mailer sends it meanwhile) and records it done afterwards,
//! so a redelivered copy is recognised. Claims and records are written a batch at a time:
//! on SQLite writes take turns, and a write per message held the write gate for a fifth
//! of the time under a load that mails every settled generation.

use super::{micros, now_micros};
use projections::batch::{chunks, for_connection, numbered, placeholders};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;
use store::Database;
use uuid::Uuid;

/// What claiming a message found.
pub(super) enum Claim {
    /// This mailer holds it now.
    Taken,
    /// Already sent or skipped.
    Done,
    /// Another mailer holds it; look again after this long.
    HeldElsewhere(Duration),
}

/// Claims each of `messages` for `mailer` for `lease`, in one write transaction of a
/// statement per chunk. A message listed twice is claimed once: its later copies find it
/// held (by this very batch).
pub(super) async fn claim_all(
    db: &Database,
    mailer: Uuid,
    lease: Duration,
    messages: &[Uuid],
) -> Result<Vec<Claim>, sqlx::Error> {
    let now = now_micros();
    let distinct: Vec<String> = messages
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(Uuid::to_string)
        .collect();
    let mut taken = HashSet::with_capacity(distinct.len());
    let mut w = db.begin_background_write().await?;
    let (claimer, lease_until) = (mailer.to_string(), now + micros(lease));
    // Every value bound in each row, so that the placeholders number in order and SQLite
    // binds them anonymously (`for_connection`).
    for chunk in chunks(&distinct, 5) {
        let sql = for_connection(
            &w,
            format!(
                "INSERT INTO mail_deliveries \
                 (message_id, status, claimed_by, lease_until, updated_at) \
                 VALUES {} ON CONFLICT (message_id) DO UPDATE SET \
                 claimed_by = excluded.claimed_by, lease_until = excluded.lease_until, \
                 updated_at = excluded.updated_at \
                 WHERE mail_deliveries.status = 'sending' \
                 AND mail_deliveries.lease_until < excluded.updated_at \
                 RETURNING message_id",
                placeholders(chunk.len(), 5)
            ),
        );
        let mut query = sqlx::query_scalar::<_, String>(&sql);
        for id in chunk {
            query = query
                .bind(id.as_str())
                .bind("sending")
                .bind(claimer.as_str())
                .bind(lease_until)
                .bind(now);
        }
        taken.extend(query.fetch_all(&mut **w).await?);
    }
    w.commit().await?;
    let mut claims = Vec::with_capacity(messages.len());
    for message in messages {
        claims.push(if taken.remove(&message.to_string()) {
            Claim::Taken
        } else {
            held(db, *message, now).await?
        });
    }
    Ok(claims)
}

/// Why a message could not be claimed.
async fn held(db: &Database, message: Uuid, now: i64) -> Result<Claim, sqlx::Error> {
    let row: Option<(String, i64)> =
        sqlx::query_as("SELECT status, lease_until FROM mail_deliveries WHERE message_id = $1")
            .bind(message.to_string())
            .fetch_optional(db.pool())
            .await?;
    Ok(match row {
        // Look again soon: a live holder finishes within its SMTP timeout, a dead one's
        // lease runs out.
        Some((status, lease_until)) if status == "sending" => Claim::HeldElsewhere(
            Duration::from_micros((lease_until - now).clamp(500_000, 5_000_000) as u64),
        ),
        Some(_) => Claim::Done,
        // Released in between: let the next attempt take it.
        None => Claim::HeldElsewhere(Duration::from_secs(1)),
    })
}

/// What became of a message `mailer` claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Sent: done with.
    Sent,
    /// Nobody to send it to: done with.
    Skipped,
    /// Not sent: the claim is released for a later attempt to take.
    Released,
}

/// Marks claims of a mailer (`$3`) done, with their status (`$1`) at `$2`; the message ids
/// follow. Only claims still sending: each message is counted done once. Numbered in the
/// order they appear, so that SQLite binds them anonymously (`for_connection`).
const DONE: &str = "UPDATE mail_deliveries SET status = $1, updated_at = $2 \
                    WHERE claimed_by = $3 AND status = 'sending' AND message_id IN";

/// Adds `$2` messages to the count of status `$1` (`mail_delivery_counts`, the metrics'
/// figures).
const COUNTED: &str = "INSERT INTO mail_delivery_counts (status, messages) VALUES ($1, $2) \
                       ON CONFLICT (status) DO UPDATE \
                       SET messages = mail_delivery_counts.messages + excluded.messages";

/// Drops claims of a mailer (`$1`) still sending; the message ids follow.
const RELEASED: &str = "DELETE FROM mail_deliveries WHERE claimed_by = $1 AND status = 'sending' \
                        AND message_id IN";

/// Records what became of each message `mailer` claimed, in one write transaction of a
/// statement per kind and chunk, and counts the messages done with.
pub(super) async fn settle_all(
    db: &Database,
    mailer: Uuid,
    settled: &[(Uuid, Settled)],
) -> Result<(), sqlx::Error> {
    if settled.is_empty() {
        return Ok(());
    }
    let now = now_micros();
    let mut w = db.begin_background_write().await?;
    for kind in [Settled::Sent, Settled::Skipped, Settled::Released] {
        let ids: Vec<String> = settled
            .iter()
            .filter(|(_, s)| *s == kind)
            .map(|(id, _)| id.to_string())
            .collect();
        // Sent and skipped are done with; a released claim is dropped for a later attempt.
        let (sql, first, status) = match kind {
            Settled::Sent => (DONE, 4, Some("sent")),
            Settled::Skipped => (DONE, 4, Some("skipped")),
            Settled::Released => (RELEASED, 2, None),
        };
        let mut changed = 0;
        for chunk in chunks(&ids, 1) {
            let sql = for_connection(&w, format!("{sql} ({})", numbered(first, chunk.len())));
            let mut query = sqlx::query(&sql);
            if let Some(status) = status {
                query = query.bind(status).bind(now);
            }
            query = query.bind(mailer.to_string());
            for id in chunk {
                query = query.bind(id.as_str());
            }
            changed += query.execute(&mut **w).await?.rows_affected();
        }
        if let Some(status) = status.filter(|_| changed > 0) {
            sqlx::query(COUNTED)
                .bind(status)
                .bind(i64::try_from(changed).unwrap_or(i64::MAX))
                .execute(&mut **w)
                .await?;
        }
    }
    w.commit().await
}
