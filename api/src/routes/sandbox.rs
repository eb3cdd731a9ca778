//! The sandbox payment provider's pages, served by this service only while the sandbox is
//! the provider (`--payments-provider sandbox`, the embedded default's): its checkout page
//! pays by applying a completed-checkout event in-process, through the code the webhook
//! runs ([`apply_event`]). Nothing is signed and no request leaves the service.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, RequestContext};
use crate::html;
use crate::openapi::Routes;
use crate::routes::payments::apply_event;
use crate::state::{Core, Payments};
use axum::extract::State;
use axum::response::Response;
use commands::payments::{
    CHECKOUT_COMPLETED, CheckoutSession, WebhookData, WebhookEvent, sandbox_purchase_id,
};
use projections::Visibility;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module: merged only when the sandbox is the provider.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(sandbox_checkout))
        .routes(routes!(sandbox_portal))
}

fn page(title: &str, body: &str) -> Response {
    html::page(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 4em auto\">\
         <p><small>Sandbox payment provider: no money moves.</small></p><h1>{title}</h1>{body}</body></html>"
    ))
}

/// The sandbox checkout: visiting it pays (the purchase completes as if the provider had
/// confirmed it).
#[utoipa::path(get, path = "/sandbox/checkout/{session_id}", tag = "sandbox",
    params(("session_id" = String, Path, description = "The checkout session, from the `checkout_url` of a purchase")),
    responses(
        (status = 200, description = "An HTML page: the payment was received (or had been)", content_type = "text/html", body = String),
        (status = 404, description = "`checkout_not_found`", body = ErrorBody),
    ))]
pub async fn sandbox_checkout(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    ApiPath(session_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound("checkout_not_found", "no such checkout".into());
    let purchase_id = sandbox_purchase_id(&session_id).ok_or_else(not_found)?;
    let purchase = payments.billing.purchase(purchase_id).await?;
    let (Some(price), Some(pack_id)) = (purchase.price.clone(), purchase.pack_id.clone()) else {
        return Err(not_found());
    };
    if purchase.completed {
        return Ok(page(
            "Already paid",
            "<p>This checkout was paid before; nothing more to do.</p>",
        ));
    }
    let event = WebhookEvent {
        id: format!("evt_sandbox_{}", Uuid::new_v4().simple()),
        kind: CHECKOUT_COMPLETED.into(),
        created: core.clock.now().datetime().unix_timestamp(),
        data: WebhookData {
            object: CheckoutSession {
                id: session_id,
                client_reference_id: purchase_id.to_string(),
                amount_total: price.amount,
                currency: price.currency.to_lowercase(),
            },
        },
    };
    let (_, position) = apply_event(&payments, &ctx, "payments-sandbox", &event).await?;
    core.visible(Visibility::Billing, position).await?;
    Ok(page(
        "Payment received",
        &format!(
            "<p>{} paid for {pack_id}: {} credits were added to your account.</p>",
            price.display(),
            purchase.credits
        ),
    ))
}

/// The sandbox billing portal.
#[utoipa::path(get, path = "/sandbox/portal/{account_id}", tag = "sandbox",
    params(("account_id" = String, Path, description = "The account, as in the `url` of `POST /me/billing/portal-session`")),
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String)))]
pub async fn sandbox_portal(ApiPath(account_id): ApiPath<String>) -> Response {
    let account: String = account_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    page(
        "Billing portal",
        &format!(
            "<p>Account {account}: the sandbox keeps no payment methods. Invoices are under /me/invoices.</p>"
        ),
    )
}
