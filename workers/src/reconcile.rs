//! Reconciliation for billing jobs: recomputes every balance, held amount, lot and invoice
//! total from the log with the domain's own rules, and compares them with the read models.
//!
//! The read models are read in one snapshot together with their checkpoints, and the log
//! is folded exactly up to those checkpoints, so a service applying new events meanwhile
//! causes no false drift.

use domain::credits::CreditLedger;
use domain::invoice::{InvoiceEvent, InvoiceSeriesEvent};
use domain::{Aggregate, DomainEvent, StreamCategory};
use projections::Follower;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{Database, EventDecoder, EventLog, GlobalPosition};

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
    let models = projections::reconciliation::ledger_snapshot(db).await?;
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
            if position > until {
                break 'read;
            }
            let decoded = decoder
                .decode_event(recorded)
                .await
                .map_err(|e| ReconcileError::Decode(e.to_string()))?;
            let stream = decoded.envelope.stream.as_str();
            match decoded.event() {
                Some(DomainEvent::Credits(event)) if position <= models.credits_checkpoint => {
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
                })) if position <= models.billing_checkpoint => {
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
                    if position <= models.billing_checkpoint =>
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
            .map_or((Value::Null, Value::Null), |row| {
                (json!(row.balance), json!(row.held))
            });
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
                .map_or((Value::Null, Value::Null), |row| {
                    (json!(row.remaining), json!(row.expired))
                });
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
    for (id, lot) in &models.lots {
        if !ledgers
            .get(&lot.account_id)
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
            Some(row) => {
                differ(
                    "invoice",
                    id,
                    "number",
                    json!(expected.number),
                    json!(row.number),
                );
                differ(
                    "invoice",
                    id,
                    "account_id",
                    json!(expected.account),
                    json!(row.account_id),
                );
                differ(
                    "invoice",
                    id,
                    "total",
                    json!(expected.total),
                    json!(row.total),
                );
                differ(
                    "invoice",
                    id,
                    "lines_total",
                    json!(expected.total),
                    json!(row.lines_total),
                );
                let expected_status = if expected.paid { "paid" } else { "open" };
                differ(
                    "invoice",
                    id,
                    "status",
                    json!(expected_status),
                    json!(row.status),
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
    checkpoints.insert(Follower::Credits.key(), models.credits_checkpoint.0);
    checkpoints.insert(Follower::Billing.key(), models.billing_checkpoint.0);
    Ok(Report {
        ok: drift.is_empty(),
        accounts: ledgers.len(),
        lots: lots_checked,
        invoices: invoices.len(),
        checkpoints,
        drift,
    })
}
