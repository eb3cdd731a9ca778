//! The notifier: a subscriber of the log with its own checkpoint (`notifier` in
//! `projection_checkpoints`). Per batch it decides the e-mails the events cause
//! (`decide`), publishes them, waits for every confirm, and only then advances its
//! checkpoint and saves its view, in one transaction guarded by the old checkpoint. A crash
//! in between republishes the same messages (same ids), which the mailer drops.

pub mod decide;
mod workspace_mail;

use crate::mail::{MailMessage, MailPublisher, QueueError};
use decide::{Balance, View, decide, touches};
use domain::notifications::Toggle;
use projections::Follower;
use projections::batch::{Value, insert_rows, select_keys, text_keys};
use projections::checkpoints::{self, Remembered, advance_checkpoint, stored_checkpoint};
use projections::follow::follow_log_gathering;
use sqlx::{AnyConnection, Row};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use store::{Database, EventDecoder, EventLog, GlobalPosition, StoreError};
use tokio::sync::{OnceCell, watch};
use uuid::Uuid;
use vault::{CryptoError, DataKeys};

/// The checkpoint's name.
pub const CHECKPOINT: Follower = Follower::Notifier;
/// Events up to this position were in the log before the notifier first ran: they update
/// its view but send nothing (no mail about last year's sign-ins after an upgrade).
const SILENT_UNTIL: Follower = Follower::NotifierSilentUntil;
/// Events per batch.
const BATCH_SIZE: usize = 500;

/// Why a step failed; the loop retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An event could not be decoded.
    #[error("decoding an event: {0}")]
    Decode(String),
    /// Publishing failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// An account's data key could not be read.
    #[error("data key: {0}")]
    DataKey(#[from] CryptoError),
}

/// Creates the notifier's checkpoint if missing, marking the events already in the log as
/// silent. Every process that opens the storage calls it, so events appended before a
/// separate `accounts notifier` first starts are not mistaken for old ones.
pub async fn register(db: &Database, log: &Arc<dyn EventLog>) -> Result<(), NotifierError> {
    if checkpoints::stored(db, CHECKPOINT).await?.is_some() {
        return Ok(());
    }
    let head = log.committed_head().await?;
    let mut w = db.begin_write().await?;
    for (name, position) in [(CHECKPOINT, GlobalPosition::START), (SILENT_UNTIL, head)] {
        checkpoints::register_checkpoint(&mut w, name, position, 1).await?;
    }
    w.commit().await?;
    Ok(())
}

/// Decides and publishes e-mails from the log.
pub struct Notifier {
    db: Database,
    log: Arc<dyn EventLog>,
    decoder: Arc<dyn EventDecoder>,
    publisher: Arc<dyn MailPublisher>,
    keys: Arc<DataKeys>,
    threshold: u64,
    /// Read once: it is fixed when the checkpoint is registered.
    silent_until: OnceCell<GlobalPosition>,
    /// The checkpoint this notifier last committed.
    last_stored: Remembered<GlobalPosition>,
}

impl Notifier {
    /// A notifier publishing through `publisher`, sealing personal fields with the
    /// accounts' data keys from `keys`; `credits_low_threshold` is the balance under which
    /// the low-credits alert goes out.
    pub fn new(
        db: Database,
        log: Arc<dyn EventLog>,
        decoder: Arc<dyn EventDecoder>,
        publisher: Arc<dyn MailPublisher>,
        keys: Arc<DataKeys>,
        credits_low_threshold: u64,
    ) -> Self {
        Self {
            db,
            log,
            decoder,
            publisher,
            keys,
            threshold: credits_low_threshold,
            silent_until: OnceCell::new(),
            last_stored: Remembered::default(),
        }
    }

    /// Seals the personal part of each message; drops those of erased accounts.
    async fn seal(&self, mails: Vec<MailMessage>) -> Result<Vec<MailMessage>, NotifierError> {
        let mut sealed = Vec::with_capacity(mails.len());
        for mut mail in mails {
            let has_private = mail
                .data
                .as_object()
                .is_some_and(|d| d.contains_key(crate::mail::message::PRIVATE));
            if has_private {
                let key = self.keys.get(mail.account_id).await?;
                // No key: the account was erased since; nobody to tell.
                let Some(key) = key else { continue };
                mail.seal_private(&key);
            }
            sealed.push(mail);
        }
        Ok(sealed)
    }

    /// The position up to which every e-mail has been published.
    pub async fn checkpoint(&self) -> Result<GlobalPosition, sqlx::Error> {
        stored_checkpoint(&self.db, CHECKPOINT).await
    }

    /// Handles one batch; returns how many events it read (0: caught up).
    #[tracing::instrument(skip_all)]
    pub async fn step(&self) -> Result<usize, NotifierError> {
        let checkpoint = self.last_stored.take_or(|| self.checkpoint()).await?;
        let silent_until = *self
            .silent_until
            .get_or_try_init(|| stored_checkpoint(&self.db, SILENT_UNTIL))
            .await?;
        let batch = self
            .log
            .read_all_for_follower(checkpoint, BATCH_SIZE)
            .await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            self.last_stored.keep(checkpoint);
            return Ok(0);
        };
        let count = batch.len();
        let mut events = Vec::with_capacity(count);
        for recorded in batch {
            events.push(
                self.decoder
                    .decode_event(recorded)
                    .await
                    .map_err(|e| NotifierError::Decode(e.to_string()))?,
            );
        }
        let mut view = View::default();
        self.load(&mut view, &events).await?;
        let mut mails: Vec<MailMessage> = Vec::new();
        for event in &events {
            let Some(domain_event) = event.event() else {
                continue;
            };
            let caused = decide(
                &mut view,
                &event.envelope.stream,
                event.envelope.event_id,
                domain_event,
                self.threshold,
            );
            if event.envelope.position > silent_until {
                mails.extend(caused);
            }
        }
        let mails = self.seal(mails).await?;
        self.publisher.publish(&mails).await?;
        let mut w = self.db.begin_background_write().await?;
        if !advance_checkpoint(&mut w, CHECKPOINT, checkpoint, last).await? {
            // Another notifier handled this batch first; what we published is deduplicated.
            return Ok(count);
        }
        save(&mut w, &view).await?;
        w.commit().await?;
        self.last_stored.keep(last);
        if !mails.is_empty() {
            tracing::info!(mails = mails.len(), position = %last, "published e-mails");
        }
        Ok(count)
    }

    /// Loads the rows of the accounts and invoices `events` touch.
    async fn load(
        &self,
        view: &mut View,
        events: &[store::DecodedEvent],
    ) -> Result<(), sqlx::Error> {
        let mut accounts = HashSet::new();
        let mut invoices = HashSet::new();
        for event in events {
            if let Some(domain_event) = event.event() {
                let (account, invoice) = touches(&event.envelope.stream, domain_event);
                accounts.extend(account);
                invoices.extend(invoice);
            }
        }
        for invoice in invoices {
            let row: Option<(String, String)> = sqlx::query_as(
                "SELECT account_id, number FROM notifier_invoices WHERE invoice_id = $1",
            )
            .bind(invoice.to_string())
            .fetch_optional(self.db.pool())
            .await?;
            if let Some((account, number)) = row
                && let Ok(account) = Uuid::parse_str(&account)
            {
                // A payment names only the invoice: its account's toggles are needed too.
                accounts.insert(account);
                view.invoices.insert(invoice, (account, number));
            }
        }
        // Every account's toggles and balance with one statement each (per 512 accounts),
        // not two round trips per account.
        let keys = text_keys(&accounts);
        if keys.is_empty() {
            return Ok(());
        }
        let mut conn = self.db.pool().acquire().await?;
        let preferences = select_keys(
            &mut conn,
            "SELECT account_id, toggle, enabled FROM notifier_preferences WHERE",
            &["account_id"],
            &keys,
        )
        .await?;
        for row in preferences {
            let (account, toggle, enabled): (String, String, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if let (Ok(account), Some(toggle)) = (Uuid::parse_str(&account), Toggle::parse(&toggle))
            {
                view.preferences.insert((account, toggle), enabled != 0);
            }
        }
        let balances = select_keys(
            &mut conn,
            "SELECT account_id, balance, low FROM notifier_balances WHERE",
            &["account_id"],
            &keys,
        )
        .await?;
        for row in balances {
            let (account, balance, low): (String, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if let Ok(account) = Uuid::parse_str(&account) {
                view.balances.insert(
                    account,
                    Balance {
                        balance,
                        low: low != 0,
                    },
                );
            }
        }
        Ok(())
    }

    /// Runs until `shutdown` turns true. Once caught up it lets new events gather before
    /// handling them ([`follow_log_gathering`]): an e-mail leaves a tenth of a second later,
    /// and a busy log costs a few batches a second (each a decode of every event, the
    /// view's reads and a transaction) rather than one per append.
    #[tracing::instrument(skip_all)]
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        follow_log_gathering(
            &self.log,
            shutdown,
            Duration::from_secs(10),
            BATCH_SIZE,
            || self.step(),
        )
        .await;
    }
}

async fn save(conn: &mut AnyConnection, view: &View) -> Result<(), sqlx::Error> {
    // One statement per table for the batch (each key once: the changes are sets).
    let preferences: Vec<Vec<Value>> = view
        .changed_preferences
        .iter()
        .filter(|(account, _)| !view.forgotten.contains(account))
        .map(|(account, toggle)| {
            vec![
                Value::Text(account.to_string()),
                Value::Text(toggle.as_str().to_owned()),
                Value::Int(i64::from(view.preferences[&(*account, *toggle)])),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO notifier_preferences (account_id, toggle, enabled)",
        "ON CONFLICT (account_id, toggle) DO UPDATE SET enabled = excluded.enabled",
        3,
        &preferences,
    )
    .await?;
    let balances: Vec<Vec<Value>> = view
        .changed_balances
        .iter()
        .filter(|account| !view.forgotten.contains(account))
        .map(|account| {
            let balance = view.balances[account];
            vec![
                Value::Text(account.to_string()),
                Value::Int(balance.balance),
                Value::Int(i64::from(balance.low)),
            ]
        })
        .collect();
    insert_rows(
        conn,
        "INSERT INTO notifier_balances (account_id, balance, low)",
        "ON CONFLICT (account_id) DO UPDATE SET balance = excluded.balance, low = excluded.low",
        3,
        &balances,
    )
    .await?;
    for invoice in &view.new_invoices {
        let (account, number) = &view.invoices[invoice];
        sqlx::query(
            "INSERT INTO notifier_invoices (invoice_id, account_id, number) VALUES ($1, $2, $3) \
             ON CONFLICT (invoice_id) DO NOTHING",
        )
        .bind(invoice.to_string())
        .bind(account.to_string())
        .bind(number)
        .execute(&mut *conn)
        .await?;
    }
    for account in &view.forgotten {
        for table in [
            "notifier_preferences",
            "notifier_balances",
            "notifier_invoices",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                .bind(account.to_string())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}
