//! What the API and the workers read of the billing read models.

use crate::page::{After, Page, Paged};
use domain::invoice::{InvoiceLine, Seller};
use domain::{AccountId, Timestamp};
use sqlx::Row;
use sqlx::any::AnyRow;
use store::Database;
use uuid::Uuid;

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

/// The plan in force for the account, whose entitlements it has: the plan of an active
/// subscription, or of a cancelled one until its period ends; `None` for a free account.
/// A downgrade or an end takes effect when the scheduler applies the period's end
/// (`SubscriptionRenewed`, `SubscriptionEnded`), as [`domain::subscription::PlanInForce`]
/// says; the token read model keeps the same plan for `/api/v1`
/// ([`crate::access_tokens::PresentedToken::plan`]).
pub async fn plan_in_force(
    db: &Database,
    account_id: AccountId,
) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT plan_id FROM subscriptions WHERE account_id = $1 AND status IN ('active', 'canceling')",
    )
    .bind(account_id.to_string())
    .fetch_optional(db.pool())
    .await?
    .flatten())
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
    /// The payment provider's reference of the payment.
    pub provider_reference: Option<String>,
    /// The seller and tax rate recorded when it was issued.
    pub seller: Option<Seller>,
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
        provider_reference: row.try_get("provider_reference")?,
        seller: row
            .try_get::<Option<String>, _>("seller")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
    })
}

const INVOICE_COLUMNS: &str = "invoice_id, number, account_id, reason, currency, lines, total, \
     status, issued_at, paid_at, provider_reference, seller";

/// A page of the account's invoices, newest first (ties by number, highest first).
pub async fn invoices(
    db: &Database,
    account_id: AccountId,
    page: &Page,
) -> Result<Paged<InvoiceRow>, sqlx::Error> {
    let (at, key, limit) = page.bounds();
    let rows = sqlx::query(&format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices WHERE account_id = $1 \
         AND (issued_at < $2 OR (issued_at = $2 AND number < $3)) \
         ORDER BY issued_at DESC, number DESC LIMIT $4"
    ))
    .bind(account_id.to_string())
    .bind(at)
    .bind(key)
    .bind(limit)
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(invoice)
    .collect::<Result<Vec<_>, _>>()?;
    Ok(Paged::cut(rows, page, |i| After {
        at: i.issued_at.unix_micros(),
        key: i.number.clone(),
    }))
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
