//! Billing read models: `subscriptions`, `invoices` (with their lines) and `purchases`.

use crate::Follower;
use crate::runner::Projector;
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::invoice::{InvoiceEvent, InvoiceLine, InvoiceSeriesEvent};
use domain::purchase::PurchaseEvent;
use domain::subscription::SubscriptionEvent;
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;

/// Folds subscription, invoice and purchase events into the billing tables.
#[derive(Debug, Clone, Copy)]
pub struct BillingProjector;

const TABLES: &[Table] = &[
    Table {
        name: "subscriptions",
        ddl: &[
            "CREATE TABLE {t} (
                account_id           TEXT PRIMARY KEY,
                status               TEXT NOT NULL,
                plan_id              TEXT,
                price                BIGINT,
                currency             TEXT,
                credits_per_period   BIGINT,
                period_start         BIGINT,
                period_end           BIGINT,
                cancel_at_period_end BIGINT NOT NULL,
                scheduled_plan       TEXT,
                updated_at           BIGINT NOT NULL
            )",
            "CREATE INDEX {t}_by_period_end ON {t} (status, period_end)",
        ],
    },
    Table {
        name: "invoices",
        ddl: &[
            "CREATE TABLE {t} (
                invoice_id         TEXT PRIMARY KEY,
                number             TEXT NOT NULL UNIQUE,
                account_id         TEXT NOT NULL,
                reason             TEXT NOT NULL,
                currency           TEXT NOT NULL,
                lines              TEXT NOT NULL,
                total              BIGINT NOT NULL,
                status             TEXT NOT NULL,
                issued_at          BIGINT NOT NULL,
                paid_at            BIGINT,
                provider_reference TEXT
            )",
            "CREATE INDEX {t}_by_account ON {t} (account_id, issued_at)",
        ],
    },
    Table {
        name: "purchases",
        ddl: &["CREATE TABLE {t} (
            purchase_id         TEXT PRIMARY KEY,
            account_id          TEXT NOT NULL,
            pack_id             TEXT NOT NULL,
            credits             BIGINT NOT NULL,
            price               BIGINT NOT NULL,
            currency            TEXT NOT NULL,
            checkout_session_id TEXT NOT NULL,
            status              TEXT NOT NULL,
            started_at          BIGINT NOT NULL,
            completed_at        BIGINT
        )"],
    },
];

#[async_trait]
impl Projector for BillingProjector {
    fn name(&self) -> Follower {
        Follower::Billing
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), sqlx::Error> {
        let stream = &decoded.envelope.stream;
        match decoded.event() {
            Some(DomainEvent::Subscription(event)) => {
                let Some(account) = StreamCategory::Subscription.id_in(stream) else {
                    return Ok(());
                };
                apply_subscription(conn, tables.get("subscriptions"), account, event).await
            }
            Some(DomainEvent::InvoiceSeries(InvoiceSeriesEvent::InvoiceIssued {
                invoice_id,
                number,
                account_id,
                reason,
                currency,
                lines,
                total,
                issued_at,
                ..
            })) => {
                let t = tables.get("invoices");
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                sqlx::query(&format!(
                    "INSERT INTO {t} (invoice_id, number, account_id, reason, currency, lines, total, status, issued_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8) ON CONFLICT (invoice_id) DO NOTHING"
                ))
                .bind(invoice_id.to_string())
                .bind(number.as_str())
                .bind(account_id.to_string())
                .bind(reason)
                .bind(currency.as_str())
                .bind(serde_json::to_string(lines).unwrap_or_default())
                .bind(*total)
                .bind(issued_at.unix_micros())
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
            Some(DomainEvent::Invoice(InvoiceEvent::InvoicePaid {
                provider_reference,
                paid_at,
                ..
            })) => {
                let Some(invoice_id) = StreamCategory::Invoice.id_in(stream) else {
                    return Ok(());
                };
                let t = tables.get("invoices");
                sqlx::query(&format!(
                    "UPDATE {t} SET status = 'paid', paid_at = $2, provider_reference = $3 WHERE invoice_id = $1"
                ))
                .bind(invoice_id)
                .bind(paid_at.unix_micros())
                .bind(provider_reference.as_str())
                .execute(&mut *conn)
                .await?;
                Ok(())
            }
            Some(DomainEvent::Purchase(event)) => {
                let Some(purchase_id) = StreamCategory::Purchase.id_in(stream) else {
                    return Ok(());
                };
                let t = tables.get("purchases");
                match event {
                    PurchaseEvent::PurchaseStarted {
                        account_id,
                        pack_id,
                        credits,
                        price,
                        checkout_session_id,
                        at,
                    } => {
                        sqlx::query(&format!(
                            "INSERT INTO {t} (purchase_id, account_id, pack_id, credits, price, currency, \
                             checkout_session_id, status, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8) \
                             ON CONFLICT (purchase_id) DO NOTHING"
                        ))
                        .bind(purchase_id)
                        .bind(account_id.to_string())
                        .bind(pack_id.as_str())
                        .bind(*credits as i64)
                        .bind(price.amount)
                        .bind(price.currency.as_str())
                        .bind(checkout_session_id.as_str())
                        .bind(at.unix_micros())
                        .execute(&mut *conn)
                        .await?;
                    }
                    PurchaseEvent::PurchaseCompleted { at, .. } => {
                        sqlx::query(&format!("UPDATE {t} SET status = 'completed', completed_at = $2 WHERE purchase_id = $1"))
                            .bind(purchase_id)
                            .bind(at.unix_micros())
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

async fn apply_subscription(
    conn: &mut AnyConnection,
    t: &str,
    account: &str,
    event: &SubscriptionEvent,
) -> Result<(), sqlx::Error> {
    use SubscriptionEvent as E;
    let (sql, binds): (String, Vec<Option<i64>>) = match event {
        E::SubscriptionStarted {
            terms,
            period_start,
            period_end,
        }
        | E::SubscriptionRenewed {
            terms,
            period_start,
            period_end,
        } => {
            sqlx::query(&format!(
                "INSERT INTO {t} (account_id, status, plan_id, price, currency, credits_per_period, period_start, \
                 period_end, cancel_at_period_end, scheduled_plan, updated_at) \
                 VALUES ($1, 'active', $2, $3, $4, $5, $6, $7, 0, NULL, $6) \
                 ON CONFLICT (account_id) DO UPDATE SET status = 'active', plan_id = excluded.plan_id, \
                 price = excluded.price, currency = excluded.currency, credits_per_period = excluded.credits_per_period, \
                 period_start = excluded.period_start, period_end = excluded.period_end, \
                 cancel_at_period_end = 0, scheduled_plan = NULL, updated_at = excluded.updated_at"
            ))
            .bind(account)
            .bind(terms.plan_id.as_str())
            .bind(terms.price.amount)
            .bind(terms.price.currency.as_str())
            .bind(terms.credits as i64)
            .bind(period_start.unix_micros())
            .bind(period_end.unix_micros())
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        E::PlanUpgraded { terms, at, .. } => {
            sqlx::query(&format!(
                "UPDATE {t} SET plan_id = $2, price = $3, credits_per_period = $4, cancel_at_period_end = 0, \
                 scheduled_plan = NULL, status = 'active', updated_at = $5 WHERE account_id = $1"
            ))
            .bind(account)
            .bind(terms.plan_id.as_str())
            .bind(terms.price.amount)
            .bind(terms.credits as i64)
            .bind(at.unix_micros())
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        E::PlanChangeScheduled {
            plan_id,
            effective_at,
        } => {
            sqlx::query(&format!(
                "UPDATE {t} SET scheduled_plan = $2, updated_at = $3 WHERE account_id = $1"
            ))
            .bind(account)
            .bind(plan_id.as_str())
            .bind(effective_at.unix_micros())
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        E::PlanChangeCancelled { at } => (
            format!("UPDATE {t} SET scheduled_plan = NULL, updated_at = $2 WHERE account_id = $1"),
            vec![Some(at.unix_micros())],
        ),
        E::CancellationScheduled { at, .. } => (
            format!(
                "UPDATE {t} SET cancel_at_period_end = 1, status = 'canceling', updated_at = $2 WHERE account_id = $1"
            ),
            vec![Some(at.unix_micros())],
        ),
        E::SubscriptionResumed { at } => (
            format!(
                "UPDATE {t} SET cancel_at_period_end = 0, status = 'active', updated_at = $2 WHERE account_id = $1"
            ),
            vec![Some(at.unix_micros())],
        ),
        E::SubscriptionEnded { at } => (
            format!(
                "UPDATE {t} SET status = 'ended', cancel_at_period_end = 0, scheduled_plan = NULL, updated_at = $2 \
                 WHERE account_id = $1"
            ),
            vec![Some(at.unix_micros())],
        ),
    };
    let mut query = sqlx::query(&sql).bind(account);
    for bind in binds {
        query = query.bind(bind);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// A subscription as `GET /me/subscription` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRow {
    /// active, canceling or ended.
    pub status: String,
    /// The plan.
    pub plan_id: Option<String>,
    /// Price per period.
    pub price: Option<i64>,
    /// Its currency.
    pub currency: Option<String>,
    /// Allowance per period.
    pub credits_per_period: Option<u64>,
    /// Current period start.
    pub period_start: Option<Timestamp>,
    /// Current period end.
    pub period_end: Option<Timestamp>,
    /// Ends at the period end.
    pub cancel_at_period_end: bool,
    /// The plan from the next period on.
    pub scheduled_plan: Option<String>,
}

fn timestamp(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, sqlx::Error> {
    Ok(row
        .try_get::<Option<i64>, _>(column)?
        .map(Timestamp::from_unix_micros))
}

/// The account's subscription, if it ever had one.
pub async fn subscription(
    db: &Database,
    account_id: AccountId,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT status, plan_id, price, currency, credits_per_period, period_start, period_end, \
         cancel_at_period_end, scheduled_plan FROM subscriptions WHERE account_id = $1",
    )
    .bind(account_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        Ok(SubscriptionRow {
            status: row.try_get("status")?,
            plan_id: row.try_get("plan_id")?,
            price: row.try_get("price")?,
            currency: row.try_get("currency")?,
            credits_per_period: row
                .try_get::<Option<i64>, _>("credits_per_period")?
                .map(|c| c as u64),
            period_start: timestamp(&row, "period_start")?,
            period_end: timestamp(&row, "period_end")?,
            cancel_at_period_end: row.try_get::<i64, _>("cancel_at_period_end")? != 0,
            scheduled_plan: row.try_get("scheduled_plan")?,
        })
    })
    .transpose()
}

/// Accounts whose subscription period has ended by `now`: the scheduler renews or ends them.
pub async fn subscriptions_due(
    db: &Database,
    now: Timestamp,
    limit: i64,
) -> Result<Vec<AccountId>, sqlx::Error> {
    sqlx::query_scalar::<_, String>(
        "SELECT account_id FROM subscriptions WHERE status IN ('active', 'canceling') AND period_end <= $1 \
         ORDER BY period_end LIMIT $2",
    )
    .bind(now.unix_micros())
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(|id| Uuid::parse_str(id).map(AccountId).map_err(|e| sqlx::Error::Decode(e.into())))
    .collect()
}

/// An invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    /// Its id.
    pub invoice_id: Uuid,
    /// `2026-000001`.
    pub number: String,
    /// Billed account.
    pub account_id: AccountId,
    /// purchase, subscription, upgrade or renewal.
    pub reason: String,
    /// Currency.
    pub currency: String,
    /// Lines.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the lines.
    pub total: i64,
    /// open or paid.
    pub status: String,
    /// When issued.
    pub issued_at: Timestamp,
    /// When paid.
    pub paid_at: Option<Timestamp>,
}

fn invoice(row: &AnyRow) -> Result<InvoiceRow, sqlx::Error> {
    let lines: String = row.try_get("lines")?;
    Ok(InvoiceRow {
        invoice_id: Uuid::parse_str(&row.try_get::<String, _>("invoice_id")?)
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        number: row.try_get("number")?,
        account_id: AccountId(
            Uuid::parse_str(&row.try_get::<String, _>("account_id")?)
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
        ),
        reason: row.try_get("reason")?,
        currency: row.try_get("currency")?,
        lines: serde_json::from_str(&lines).map_err(|e| sqlx::Error::Decode(e.into()))?,
        total: row.try_get("total")?,
        status: row.try_get("status")?,
        issued_at: Timestamp::from_unix_micros(row.try_get("issued_at")?),
        paid_at: timestamp(row, "paid_at")?,
    })
}

const INVOICE_COLUMNS: &str =
    "invoice_id, number, account_id, reason, currency, lines, total, status, issued_at, paid_at";

/// The account's invoices, newest first.
pub async fn invoices(
    db: &Database,
    account_id: AccountId,
) -> Result<Vec<InvoiceRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE account_id = $1 ORDER BY issued_at DESC, number DESC"
    ))
    .bind(account_id.to_string())
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(invoice)
    .collect()
}

/// One of the account's invoices.
pub async fn invoice_of(
    db: &Database,
    account_id: AccountId,
    invoice_id: Uuid,
) -> Result<Option<InvoiceRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE account_id = $1 AND invoice_id = $2"
    ))
    .bind(account_id.to_string())
    .bind(invoice_id.to_string())
    .fetch_optional(db.pool())
    .await?
    .as_ref()
    .map(invoice)
    .transpose()
}

/// Every invoice (for reconciliation), by number.
pub async fn all_invoices(db: &Database) -> Result<Vec<InvoiceRow>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices ORDER BY number"
    ))
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(invoice)
    .collect()
}
