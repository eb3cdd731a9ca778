//! Reconciliation for billing jobs: recomputes every balance, held amount, lot and invoice
//! total from the log with the domain's own rules, and compares them with the read models.
//!
//! The read models are read in one snapshot together with their checkpoints, and the log
//! is folded exactly up to those checkpoints, so a service applying new events meanwhile
//! causes no false drift.

use domain::credits::CreditLedger;
use domain::invoice::{InvoiceEvent, InvoiceSeriesEvent};
use domain::{Aggregate, DomainEvent, StreamCategory};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use store::{Backend, Database, EventDecoder, EventLog, GlobalPosition};

/// One difference between the log and a read model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// balance, lot or invoice.
    pub kind: &'static str,
    /// The account, lot or invoice.
    pub id: String,
    /// Which figure.
    pub field: &'static str,
    /// What the log says.
    pub expected: Value,
    /// What the read model says.
    pub actual: Value,
}

/// What reconciliation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// No drift.
    pub ok: bool,
    /// Accounts with a ledger checked.
    pub accounts: usize,
    /// Lots checked.
    pub lots: usize,
    /// Invoices checked.
    pub invoices: usize,
    /// Log positions the credit and billing read models had reached.
    pub checkpoints: BTreeMap<&'static str, u64>,
    /// Every difference.
    pub drift: Vec<Drift>,
}

/// Why reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The log failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// An event could not be decoded.
    #[error("decoding: {0}")]
    Decode(String),
}

#[derive(Default)]
struct ReadModels {
    credits_checkpoint: u64,
    billing_checkpoint: u64,
    balances: HashMap<String, (i64, i64)>,
    lots: HashMap<String, (String, i64, bool)>,
    invoices: HashMap<String, (String, String, i64, i64, String)>,
}

async fn read_models(db: &Database) -> Result<ReadModels, sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    let mut models = ReadModels::default();
    for row in sqlx::query("SELECT name, position FROM projection_checkpoints")
        .fetch_all(&mut *tx)
        .await?
    {
        let name: String = row.try_get("name")?;
        let position = row.try_get::<i64, _>("position")? as u64;
        match name.as_str() {
            "credits" => models.credits_checkpoint = position,
            "billing" => models.billing_checkpoint = position,
            _ => {}
        }
    }
    for row in sqlx::query("SELECT account_id, balance, held FROM credit_balances")
        .fetch_all(&mut *tx)
        .await?
    {
        models.balances.insert(
            row.try_get("account_id")?,
            (row.try_get("balance")?, row.try_get("held")?),
        );
    }
    for row in sqlx::query("SELECT lot_id, account_id, remaining, expired FROM credit_lots")
        .fetch_all(&mut *tx)
        .await?
    {
        models.lots.insert(
            row.try_get("lot_id")?,
            (
                row.try_get("account_id")?,
                row.try_get("remaining")?,
                row.try_get::<i64, _>("expired")? != 0,
            ),
        );
    }
    for row in
        sqlx::query("SELECT invoice_id, number, account_id, total, lines, status FROM invoices")
            .fetch_all(&mut *tx)
            .await?
    {
        let lines: String = row.try_get("lines")?;
        let lines_total = serde_json::from_str::<Vec<domain::invoice::InvoiceLine>>(&lines)
            .map_or(i64::MIN, |lines| lines.iter().map(|l| l.amount).sum());
        models.invoices.insert(
            row.try_get("invoice_id")?,
            (
                row.try_get("number")?,
                row.try_get("account_id")?,
                row.try_get("total")?,
                lines_total,
                row.try_get("status")?,
            ),
        );
    }
    tx.commit().await?;
    Ok(models)
}

struct ExpectedInvoice {
    number: String,
    account: String,
    total: i64,
    paid: bool,
}

/// Recomputes from the log and compares with the read models.
#[tracing::instrument(skip_all)]
pub async fn reconcile(
    db: &Database,
    log: &Arc<dyn EventLog>,
    decoder: &Arc<dyn EventDecoder>,
) -> Result<Report, ReconcileError> {
    let models = read_models(db).await?;
    let mut ledgers: BTreeMap<String, CreditLedger> = BTreeMap::new();
    let mut invoices: BTreeMap<String, ExpectedInvoice> = BTreeMap::new();
    let mut paid: Vec<String> = Vec::new();

    let until = models.credits_checkpoint.max(models.billing_checkpoint);
    let mut position = GlobalPosition::START;
    'read: loop {
        let batch = log.read_all(position, 1_000).await?;
        if batch.is_empty() {
            break;
        }
        for recorded in batch {
            position = recorded.position;
            if position.0 > until {
                break 'read;
            }
            let decoded = decoder
                .decode_event(recorded)
                .await
                .map_err(|e| ReconcileError::Decode(e.to_string()))?;
            let stream = decoded.envelope.stream.as_str();
            match decoded.event() {
                Some(DomainEvent::Credits(event)) if position.0 <= models.credits_checkpoint => {
                    if let Some(account) = StreamCategory::Credits.id_in(stream) {
                        ledgers.entry(account.to_owned()).or_default().evolve(event);
                    }
                }
                Some(DomainEvent::InvoiceSeries(InvoiceSeriesEvent::InvoiceIssued {
                    invoice_id,
                    number,
                    account_id,
                    lines,
                    ..
                })) if position.0 <= models.billing_checkpoint => {
                    invoices.insert(
                        invoice_id.to_string(),
                        ExpectedInvoice {
                            number: number.clone(),
                            account: account_id.to_string(),
                            total: lines.iter().map(|l| l.amount).sum(),
                            paid: false,
                        },
                    );
                }
                Some(DomainEvent::Invoice(InvoiceEvent::InvoicePaid { .. }))
                    if position.0 <= models.billing_checkpoint =>
                {
                    if let Some(id) = StreamCategory::Invoice.id_in(stream) {
                        paid.push(id.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    for id in paid {
        if let Some(invoice) = invoices.get_mut(&id) {
            invoice.paid = true;
        }
    }

    let mut drift = Vec::new();
    let mut differ = |kind, id: &str, field, expected: Value, actual: Value| {
        if expected != actual {
            drift.push(Drift {
                kind,
                id: id.to_owned(),
                field,
                expected,
                actual,
            });
        }
    };
    let mut lots_checked = 0;
    for (account, ledger) in &ledgers {
        let (balance, held) = models
            .balances
            .get(account)
            .map_or((Value::Null, Value::Null), |(b, h)| (json!(b), json!(h)));
        differ(
            "balance",
            account,
            "balance",
            json!(ledger.balance()),
            balance,
        );
        differ("balance", account, "held", json!(ledger.held()), held);
        for lot in ledger.lots.values() {
            lots_checked += 1;
            let id = lot.lot_id.to_string();
            let (remaining, expired) = models
                .lots
                .get(&id)
                .map_or((Value::Null, Value::Null), |(_, r, e)| (json!(r), json!(e)));
            differ("lot", &id, "remaining", json!(lot.remaining), remaining);
            differ("lot", &id, "expired", json!(lot.expired), expired);
        }
    }
    for account in models.balances.keys().filter(|a| !ledgers.contains_key(*a)) {
        differ(
            "balance",
            account,
            "account",
            Value::Null,
            json!("row without a ledger in the log"),
        );
    }
    for (id, (account, ..)) in &models.lots {
        if !ledgers
            .get(account)
            .is_some_and(|l| l.lots.keys().any(|lot| lot.to_string() == *id))
        {
            differ(
                "lot",
                id,
                "lot",
                Value::Null,
                json!("row without a grant in the log"),
            );
        }
    }
    for (id, expected) in &invoices {
        match models.invoices.get(id) {
            None => differ(
                "invoice",
                id,
                "invoice",
                json!(expected.number),
                Value::Null,
            ),
            Some((number, account, total, lines_total, status)) => {
                differ(
                    "invoice",
                    id,
                    "number",
                    json!(expected.number),
                    json!(number),
                );
                differ(
                    "invoice",
                    id,
                    "account_id",
                    json!(expected.account),
                    json!(account),
                );
                differ("invoice", id, "total", json!(expected.total), json!(total));
                differ(
                    "invoice",
                    id,
                    "lines_total",
                    json!(expected.total),
                    json!(lines_total),
                );
                let expected_status = if expected.paid { "paid" } else { "open" };
                differ(
                    "invoice",
                    id,
                    "status",
                    json!(expected_status),
                    json!(status),
                );
            }
        }
    }
    for id in models
        .invoices
        .keys()
        .filter(|id| !invoices.contains_key(*id))
    {
        differ(
            "invoice",
            id,
            "invoice",
            Value::Null,
            json!("row without an invoice in the log"),
        );
    }

    let mut checkpoints = BTreeMap::new();
    checkpoints.insert("credits", models.credits_checkpoint);
    checkpoints.insert("billing", models.billing_checkpoint);
    Ok(Report {
        ok: drift.is_empty(),
        accounts: ledgers.len(),
        lots: lots_checked,
        invoices: invoices.len(),
        checkpoints,
        drift,
    })
}
