//! Billing read models: `subscriptions`, `invoices` (with their lines) and `purchases`.

mod queries;

pub use queries::*;

use crate::Follower;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::invoice::{InvoiceEvent, InvoiceSeriesEvent};
use domain::purchase::PurchaseEvent;
use domain::subscription::SubscriptionEvent;
use domain::{DomainEvent, StreamCategory};
use sqlx::AnyConnection;
use store::DecodedEvent;

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
                provider_reference TEXT,
                seller             TEXT
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
        // 2: invoices record their seller.
        2
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[
            StreamCategory::Invoice,
            StreamCategory::InvoiceSeries,
            StreamCategory::Purchase,
            StreamCategory::Subscription,
        ]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let stream = &decoded.envelope.stream;
        match decoded.event() {
            Some(DomainEvent::Subscription(event)) => {
                let Some(account) = StreamCategory::Subscription.id_in(stream) else {
                    return Ok(());
                };
                Ok(apply_subscription(conn, tables.get("subscriptions"), account, event).await?)
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
                seller,
                ..
            })) => {
                let t = tables.get("invoices");
                let seller = seller
                    .as_ref()
                    .map(|s| serde_json::to_string(s).unwrap_or_default());
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                sqlx::query(&format!(
                    "INSERT INTO {t} (invoice_id, number, account_id, reason, currency, lines, total, status, issued_at, seller) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9) ON CONFLICT (invoice_id) DO NOTHING"
                ))
                .bind(invoice_id.to_string())
                .bind(number.as_str())
                .bind(account_id.to_string())
                .bind(reason)
                .bind(currency.as_str())
                .bind(serde_json::to_string(lines).unwrap_or_default())
                .bind(*total)
                .bind(issued_at.unix_micros())
                .bind(seller)
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
            ..
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
