//! Subscription, invoices (JSON and PDF) and the billing portal.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, CurrentSession, RequestContext};
use crate::openapi::{Binary, Routes};
use crate::pages::{PageQuery, next_cursor};
use crate::routes::credits::MoneyView;
use crate::state::{Auth, Core, Payments};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::money::Money;
use projections::Visibility;
use projections::billing::InvoiceRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(subscription, change_plan, cancel))
        .routes(routes!(resume))
        .routes(routes!(invoices))
        .routes(routes!(invoice))
        .routes(routes!(portal))
}

/// The subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// none, active, canceling (ends at the period end) or ended.
    pub status: String,
    /// The plan.
    pub plan_id: Option<String>,
    /// Price per period.
    pub price: Option<MoneyView>,
    /// Allowance credits per period.
    pub credits_per_period: Option<u64>,
    /// Current period start (RFC 3339).
    pub current_period_start: Option<String>,
    /// Current period end (RFC 3339): renewal, or the end if canceling.
    pub current_period_end: Option<String>,
    /// Ends at the period end.
    pub cancel_at_period_end: bool,
    /// The plan from the next period on (a scheduled downgrade).
    pub scheduled_plan_id: Option<String>,
}

async fn view(core: &Core, session: &CurrentSession) -> Result<SubscriptionView, ApiError> {
    let row = projections::billing::subscription(&core.db, session.account_id).await?;
    Ok(match row {
        None => SubscriptionView {
            status: "none".into(),
            plan_id: None,
            price: None,
            credits_per_period: None,
            current_period_start: None,
            current_period_end: None,
            cancel_at_period_end: false,
            scheduled_plan_id: None,
        },
        Some(row) => {
            let ended = row.status == "ended";
            SubscriptionView {
                status: row.status,
                plan_id: row.plan_id.filter(|_| !ended),
                price: row
                    .price
                    .zip(row.currency)
                    .filter(|_| !ended)
                    .map(|(amount, currency)| Money::new(amount, &currency).into()),
                credits_per_period: row.credits_per_period.filter(|_| !ended),
                current_period_start: row.period_start.filter(|_| !ended).map(|t| t.to_rfc3339()),
                current_period_end: row.period_end.filter(|_| !ended).map(|t| t.to_rfc3339()),
                cancel_at_period_end: row.cancel_at_period_end,
                scheduled_plan_id: row.scheduled_plan,
            }
        }
    })
}

/// The subscription.
#[utoipa::path(get, path = "/me/subscription", tag = "billing", security(("session" = [])),
    responses((status = 200, body = SubscriptionView)))]
pub async fn subscription(
    State(core): State<Core>,
    session: CurrentSession,
) -> Result<Json<SubscriptionView>, ApiError> {
    Ok(Json(view(&core, &session).await?))
}

/// `PUT /me/subscription`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePlanRequest {
    /// A plan of `GET /plans` (the document lists the catalog's).
    pub plan_id: String,
}

/// Subscribes, upgrades (at once, charging and granting the prorated differences) or
/// schedules a downgrade for the end of the period. Needs a recent proof
/// (`POST /auth/reauthenticate`, or the sign-in itself).
#[utoipa::path(put, path = "/me/subscription", tag = "billing", security(("session" = [])),
    request_body = ChangePlanRequest,
    responses((status = 200, body = SubscriptionView),
        (status = 403, description = "`reauthentication_required`: the session has not proved its password recently", body = ErrorBody),
        (status = 409, description = "`subscription_ended`", body = ErrorBody),
        (status = 422, description = "`unknown_plan`: not a plan of the catalog", body = ErrorBody),
        (status = 502, description = "`payment_provider_unavailable`: the payment provider did not answer", body = ErrorBody),
        (status = 503, description = "`payments_unavailable`: the plan has a price and no payment provider is configured", body = ErrorBody)))]
pub async fn change_plan(
    State(core): State<Core>,
    State(auth): State<Auth>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<ChangePlanRequest>,
) -> Result<Json<SubscriptionView>, ApiError> {
    let fresh = auth.accounts.fresh(session.session_id, core.clock.now());
    let position = payments
        .billing
        .change_plan(
            &ctx.command(session.actor()),
            session.account_id,
            &body.plan_id,
            fresh,
        )
        .await?;
    core.visible(Visibility::Billing, position).await?;
    Ok(Json(view(&core, &session).await?))
}

/// Cancels at the end of the paid period (access continues until then).
#[utoipa::path(delete, path = "/me/subscription", tag = "billing", security(("session" = [])),
    responses((status = 200, body = SubscriptionView), (status = 409, description = "`no_subscription` or `subscription_ended`", body = ErrorBody)))]
pub async fn cancel(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Json<SubscriptionView>, ApiError> {
    let position = payments
        .billing
        .cancel(&ctx.command(session.actor()), session.account_id)
        .await?;
    core.visible(Visibility::Billing, position).await?;
    Ok(Json(view(&core, &session).await?))
}

/// Undoes a cancellation before the period ends.
#[utoipa::path(post, path = "/me/subscription/resume", tag = "billing", security(("session" = [])),
    responses((status = 200, body = SubscriptionView), (status = 409, description = "`no_subscription` or `subscription_ended`: nothing to resume", body = ErrorBody)))]
pub async fn resume(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Json<SubscriptionView>, ApiError> {
    let position = payments
        .billing
        .resume(&ctx.command(session.actor()), session.account_id)
        .await?;
    core.visible(Visibility::Billing, position).await?;
    Ok(Json(view(&core, &session).await?))
}

/// One line of an invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceLineView {
    /// What.
    pub description: String,
    /// How many.
    pub quantity: u32,
    /// Price of one, minor units.
    pub unit_amount: i64,
    /// Line total, minor units.
    pub amount: i64,
}

/// An invoice.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceView {
    /// Its id.
    pub id: Uuid,
    /// `2026-000001`: unique, without gaps.
    pub number: String,
    /// purchase, subscription, upgrade or renewal.
    pub reason: String,
    /// open or paid.
    pub status: String,
    /// Currency of every amount.
    pub currency: String,
    /// Lines.
    pub lines: Vec<InvoiceLineView>,
    /// Sum of the lines, minor units.
    pub total: i64,
    /// When issued (RFC 3339).
    pub issued_at: String,
    /// When paid (RFC 3339).
    pub paid_at: Option<String>,
    /// The PDF.
    pub pdf_url: String,
}

impl From<InvoiceRow> for InvoiceView {
    fn from(row: InvoiceRow) -> Self {
        Self {
            id: row.invoice_id,
            pdf_url: format!("/me/invoices/{}.pdf", row.invoice_id),
            number: row.number,
            reason: row.reason,
            status: row.status,
            currency: row.currency,
            lines: row
                .lines
                .into_iter()
                .map(|l| InvoiceLineView {
                    description: l.description,
                    quantity: l.quantity,
                    unit_amount: l.unit_amount,
                    amount: l.amount,
                })
                .collect(),
            total: row.total,
            issued_at: row.issued_at.to_rfc3339(),
            paid_at: row.paid_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// A page of the account's invoices.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceList {
    /// Newest first.
    pub invoices: Vec<InvoiceView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The account's invoices, newest first, a page at a time.
#[utoipa::path(get, path = "/me/invoices", tag = "billing", security(("session" = [])),
    params(PageQuery),
    responses((status = 200, body = InvoiceList),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn invoices(
    State(core): State<Core>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<InvoiceList>, ApiError> {
    let rows = projections::billing::invoices(&core.db, session.account_id, &page.page()?).await?;
    Ok(Json(InvoiceList {
        invoices: rows.items.into_iter().map(Into::into).collect(),
        next_cursor: next_cursor(rows.next),
    }))
}

/// One invoice, as JSON, or as a PDF with `.pdf` after its id.
#[utoipa::path(get, path = "/me/invoices/{id}", tag = "billing", security(("session" = [])),
    params(("id" = String, Path, description = "The invoice id, with `.pdf` after it for the PDF")),
    responses(
        (status = 200, description = "The invoice as JSON, or with `.pdf` as a PDF", content(
            (InvoiceView = "application/json"),
            (Binary = "application/pdf"),
        )),
        (status = 404, description = "`invoice_not_found`", body = ErrorBody),
    ))]
pub async fn invoice(
    State(core): State<Core>,
    session: CurrentSession,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("invoice_not_found", "no such invoice".into());
    let (id, pdf) = match id.strip_suffix(".pdf") {
        Some(id) => (id, true),
        None => (id.as_str(), false),
    };
    let id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let row = projections::billing::invoice_of(&core.db, session.account_id, id)
        .await?
        .ok_or_else(not_found)?;
    if !pdf {
        return Ok(Json(InvoiceView::from(row)).into_response());
    }
    let account = projections::accounts::find(&core.db, &core.sealer, session.account_id).await?;
    let bill_to = account.map_or_else(String::new, |a| format!("{} <{}>", a.display_name, a.email));
    let mut response = workers::pdf::invoice(&row, &bill_to).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(disposition) =
        HeaderValue::from_str(&format!("inline; filename=\"invoice-{}.pdf\"", row.number))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// Where to manage payment methods.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalSession {
    /// The provider's billing portal.
    pub url: String,
}

/// Opens a session of the payment provider's billing portal.
#[utoipa::path(post, path = "/me/billing/portal-session", tag = "billing", security(("session" = [])),
    responses((status = 200, body = PortalSession),
        (status = 502, description = "`payment_provider_unavailable`: the payment provider did not answer", body = ErrorBody),
        (status = 503, description = "`payments_unavailable`: no payment provider is configured", body = ErrorBody)))]
pub async fn portal(
    State(core): State<Core>,
    State(payments): State<Payments>,
    session: CurrentSession,
    headers: HeaderMap,
) -> Result<Json<PortalSession>, ApiError> {
    let url = payments
        .billing
        .portal_url(session.account_id, &core.http.base_url(&headers))
        .await?;
    Ok(Json(PortalSession { url }))
}
