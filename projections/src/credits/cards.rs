//! The balance card, the hot read of the authenticated API, read for many accounts at once.
//!
//! Each card read used to run its statement on a connection of its own: on SQLite a hop to
//! that connection's worker thread and back, on PostgreSQL a round trip, per request; under
//! load the threads' wake-ups cost more than the query. [`CardReader`] gathers the reads
//! that arrive while a statement runs and answers them with the next one (up to
//! [`MAX_BATCH`] accounts, an account asked for twice read once), the way group commit
//! gathers appends: one statement in flight per process; a lone read runs at once; under
//! load a read waits at most for the statement in flight (and one yield to the runtime).
//! One in flight beat two or four in the `http` bench (PostgreSQL 0.51-0.53x of the ceiling
//! against 0.47-0.49x with two; SQLite the same within noise): fewer, larger statements.
//! Every statement starts after the reads it answers were asked for, so each shows at
//! least what was committed before it was asked: read-your-writes holds as it did.

use super::queries::{BalanceCard, lot, uuid_of};
use crate::batch::placeholders;
use domain::{AccountId, StreamCategory, Timestamp};
use sqlx::Row;
use std::collections::HashMap;
use store::{Database, GlobalPosition};
use tokio::sync::{mpsc, oneshot};

/// Accounts one statement reads at most.
pub const MAX_BATCH: usize = 64;

/// Histogram: card reads answered by one statement (the `metrics` facade; the service
/// renders it for Prometheus).
pub const CARD_BATCH_SIZE: &str = "accounts_balance_card_batch_size";

/// Why a card could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading balance cards: {0}")]
pub struct CardError(String);

/// The balance cards of `accounts` at `now`, each account once; with `ledger_end`, each
/// also says where the account's credits stream ends (for an event log stored in this
/// database), read in the same statement, from the same snapshot.
pub async fn balance_cards(
    db: &Database,
    accounts: &[AccountId],
    now: Timestamp,
    ledger_end: bool,
) -> Result<HashMap<AccountId, BalanceCard>, sqlx::Error> {
    let mut cards: HashMap<AccountId, BalanceCard> = accounts
        .iter()
        .map(|a| (*a, BalanceCard::default()))
        .collect();
    let asked: Vec<AccountId> = cards.keys().copied().collect();
    if asked.is_empty() {
        return Ok(cards);
    }
    let sql = card_sql(asked.len(), ledger_end);
    let mut query = sqlx::query(&sql);
    for account in &asked {
        query = query
            .bind(account.to_string())
            .bind(StreamCategory::Credits.stream(*account));
    }
    let query = query.bind(now.unix_micros());
    // The hot read of the authenticated path: a reader, not the pool (`store::Reader`).
    let mut reader = db.reader().await?;
    let rows = query.fetch_all(reader.conn()).await?;
    reader.release();
    for row in &rows {
        let account = AccountId(uuid_of(&row.try_get::<String, _>("card_account")?)?);
        let Some(card) = cards.get_mut(&account) else {
            continue;
        };
        card.held = row.try_get::<Option<i64>, _>("held")?.unwrap_or(0) as u64;
        if ledger_end {
            card.ledger_end = row
                .try_get::<Option<i64>, _>("ledger_end")?
                .map(|p| GlobalPosition(p as u64));
        }
        if row.try_get::<Option<String>, _>("lot_id")?.is_some() {
            card.lots.push(lot(row)?);
        }
    }
    Ok(cards)
}

/// The card statement for `count` accounts: each account's id and its credits stream,
/// then now. One row per counting lot of each account, or one row of NULL lot
/// columns for an account none counts for; the balance row joined to each (absent for an
/// account that never had credits). The balance by its key and the lots by their account
/// index, in spending order within each account.
fn card_sql(count: usize, ledger_end: bool) -> String {
    let now = format!("${}", 2 * count + 1);
    let end = if ledger_end {
        format!(
            ", {} AS ledger_end",
            store::stream_end_subquery("a.column2")
        )
    } else {
        String::new()
    };
    format!(
        "SELECT a.column1 AS card_account, b.held, l.lot_id, l.account_id, l.grant_key, \
         l.source, l.priority, l.amount, l.remaining, l.expires_at, l.granted_at, \
         l.expired{end} \
         FROM (VALUES {}) a \
         LEFT JOIN credit_balances b ON b.account_id = a.column1 \
         LEFT JOIN credit_lots l ON l.account_id = a.column1 AND l.expired = 0 \
           AND l.remaining > 0 AND (l.expires_at IS NULL OR l.expires_at > {now}) \
         ORDER BY l.priority, CASE WHEN l.expires_at IS NULL THEN 1 ELSE 0 END, \
           l.expires_at, l.granted_at",
        placeholders(count, 2)
    )
}

/// A card asked for, and where its answer goes.
struct Ask {
    account: AccountId,
    now: Timestamp,
    reply: oneshot::Sender<Result<BalanceCard, CardError>>,
}

/// Reads balance cards, gathering concurrent reads into one statement (the module's
/// header). Its worker stops once it is dropped; were the worker to stop first (a panic),
/// reads fail instead of waiting.
#[derive(Debug, Clone)]
pub struct CardReader {
    asks: mpsc::UnboundedSender<Ask>,
}

impl CardReader {
    /// A reader of the cards in `db`; with `ledger_end`, each card also says where its
    /// ledger ends ([`balance_cards`]). Starts its worker on the current runtime.
    pub fn new(db: Database, ledger_end: bool) -> Self {
        let (asks, queue) = mpsc::unbounded_channel();
        tokio::spawn(work(db, queue, ledger_end));
        Self { asks }
    }

    /// The balance card of `account` at `now` (or a moment later, when read together
    /// with a later read).
    pub async fn card(&self, account: AccountId, now: Timestamp) -> Result<BalanceCard, CardError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || CardError("the card reader stopped".into());
        self.asks
            .send(Ask {
                account,
                now,
                reply,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The worker: takes the first read waiting and every other one queued behind it, reads
/// their cards with one statement, answers each.
async fn work(db: Database, mut queue: mpsc::UnboundedReceiver<Ask>, ledger_end: bool) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        // Not a wait: the requests already running on this thread go first, and those
        // about to ask join this statement instead of the next (SQLite, whose statement is
        // short, went from 0.47x to 0.52-0.54x of the ceiling in the `http` bench).
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(ask) => batch.push(ask),
                Err(_) => break,
            }
        }
        // Asks whose requester gave up (a closed connection) are not read.
        batch.retain(|ask: &Ask| !ask.reply.is_closed());
        let Some(now) = batch.iter().map(|ask| ask.now).max() else {
            continue;
        };
        metrics::histogram!(CARD_BATCH_SIZE).record(batch.len() as f64);
        let accounts: Vec<AccountId> = batch.iter().map(|ask| ask.account).collect();
        let read = balance_cards(&db, &accounts, now, ledger_end)
            .await
            .map_err(|e| CardError(e.to_string()));
        for ask in batch.drain(..) {
            let answer = match &read {
                Ok(cards) => Ok(cards.get(&ask.account).cloned().unwrap_or_default()),
                Err(error) => Err(error.clone()),
            };
            let _ = ask.reply.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::card_sql;

    #[test]
    fn the_card_statement_numbers_the_accounts_then_now() {
        let sql = card_sql(2, true);
        assert!(sql.contains("FROM (VALUES ($1, $2), ($3, $4)) a"), "{sql}");
        assert!(sql.contains("l.expires_at > $5)"), "{sql}");
        assert!(sql.contains("stream_id = a.column2"), "{sql}");
        assert!(!card_sql(1, false).contains("ledger_end"));
    }
}
