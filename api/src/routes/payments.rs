//! The payment provider's side: the webhook it calls, and the sandbox provider's pages
//! (checkout and portal) served by this service for the embedded default.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, ApiPath, RequestContext};
use crate::openapi::Routes;
use crate::state::{Core, Payments};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use commands::CommandError;
use commands::error::Rejection;
use commands::payments::{
    CHECKOUT_COMPLETED, CheckoutSession, SIGNATURE_HEADER, WebhookData, WebhookEvent,
    sandbox_purchase_id,
};
use projections::Visibility;
use serde::{Deserialize, Serialize};
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;
use uuid::Uuid;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(webhook))
        .routes(routes!(sandbox_checkout))
        .routes(routes!(sandbox_portal))
}

/// A payment provider's event, read into `commands::payments::WebhookEvent` (other
/// fields are ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = WebhookEvent)]
pub struct WebhookEventBody {
    /// The provider's event id: each is processed once.
    pub id: String,
    /// e.g. `checkout.session.completed`; other types are acknowledged and ignored.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was created, Unix seconds.
    #[serde(deserialize_with = "crate::integers::i64")]
    pub created: i64,
    /// What it is about.
    pub data: WebhookDataBody,
}

/// The object of a payment provider's event.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = WebhookData)]
pub struct WebhookDataBody {
    /// A checkout session.
    pub object: CheckoutSessionBody,
}

/// A checkout session as the provider reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CheckoutSession)]
pub struct CheckoutSessionBody {
    /// The provider's session id.
    pub id: String,
    /// The purchase id this service gave the checkout.
    pub client_reference_id: String,
    /// Amount paid, minor units.
    #[serde(deserialize_with = "crate::integers::i64")]
    pub amount_total: i64,
    /// Lower-case ISO 4217.
    pub currency: String,
}

impl From<WebhookEventBody> for WebhookEvent {
    fn from(body: WebhookEventBody) -> Self {
        let session = body.data.object;
        Self {
            id: body.id,
            kind: body.kind,
            created: body.created,
            data: WebhookData {
                object: CheckoutSession {
                    id: session.id,
                    client_reference_id: session.client_reference_id,
                    amount_total: session.amount_total,
                    currency: session.currency,
                },
            },
        }
    }
}

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// Always true: the event was authentic and read.
    pub received: bool,
    /// Whether it changed anything here (false for types not handled, or repeats).
    pub handled: bool,
}

/// Payment notifications, signed by the provider: `Payments-Signature: t=<unix>,v1=<hex
/// HMAC-SHA256(secret, "<t>.<body>")>`, at most 5 minutes old.
#[utoipa::path(post, path = "/webhooks/payments", tag = "billing",
    params(("Payments-Signature" = String, Header, pattern = "^t=[0-9]{1,12},v1=[0-9a-f]{64}$",
        description = "`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`, made by the provider")),
    request_body(content = WebhookEventBody, description = "The provider's event, signed as sent"),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 400, description = "`invalid_signature` (missing, wrong or more than 5 minutes off), `invalid_payload`, \
            or the event does not fit the purchase (`payment_mismatch`); nothing changed", body = ErrorBody),
        (status = 409, description = "`concurrent_modification`: the purchase is being changed meanwhile; the provider retries", body = ErrorBody),
    ))]
pub async fn webhook(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<WebhookReceipt>, ApiError> {
    let invalid = |why: String| ApiError::BadRequest("invalid_signature", why);
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("the Payments-Signature header is missing".into()))?;
    let now = core.clock.now().datetime().unix_timestamp();
    payments
        .webhooks
        .verify(signature, &body, now)
        .map_err(|e| invalid(e.to_string()))?;
    let event: WebhookEvent = serde_json::from_slice::<WebhookEventBody>(&body)
        .map(Into::into)
        .map_err(|e| {
            ApiError::BadRequest(
                "invalid_payload",
                format!("the event is not understood: {e}"),
            )
        })?;
    if event.kind != CHECKOUT_COMPLETED {
        return Ok(Json(WebhookReceipt {
            received: true,
            handled: false,
        }));
    }
    let actor = Actor::System {
        component: "payments-webhook".into(),
    };
    match payments
        .billing
        .confirm_checkout(&ctx.command(actor), &event)
        .await
    {
        Ok(position) => Ok(Json(WebhookReceipt {
            received: true,
            handled: position.is_some(),
        })),
        Err(CommandError::Rejected {
            kind: Rejection::NotFound,
            ..
        }) => {
            // Not ours (or not any more): retrying will not help, so acknowledge it.
            tracing::warn!(event_id = %event.id, "payment webhook for an unknown purchase");
            Ok(Json(WebhookReceipt {
                received: true,
                handled: false,
            }))
        }
        Err(CommandError::Rejected {
            kind: Rejection::Invalid,
            code,
            message,
        }) => {
            tracing::warn!(event_id = %event.id, %message, "payment webhook refused");
            Err(ApiError::BadRequest(code, message))
        }
        Err(other) => Err(other.into()),
    }
}

fn page(title: &str, body: &str) -> Response {
    crate::html::page(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 40em; margin: 4em auto\">\
         <p><small>Sandbox payment provider: no money moves.</small></p><h1>{title}</h1>{body}</body></html>"
    ))
}

/// The sandbox checkout: visiting it pays, by sending this service a signed webhook.
#[utoipa::path(get, path = "/sandbox/checkout/{session_id}", tag = "sandbox",
    params(("session_id" = String, Path, description = "The checkout session, from the `checkout_url` of a purchase")),
    responses(
        (status = 200, description = "An HTML page: the payment was received (or had been)", content_type = "text/html", body = String),
        (status = 404, description = "`checkout_not_found`", body = ErrorBody),
    ))]
pub async fn sandbox_checkout(
    State(core): State<Core>,
    State(payments): State<Payments>,
    headers: HeaderMap,
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
    let now = core.clock.now().datetime().unix_timestamp();
    let event = WebhookEvent {
        id: format!("evt_sandbox_{}", Uuid::new_v4().simple()),
        kind: CHECKOUT_COMPLETED.into(),
        created: now,
        data: WebhookData {
            object: CheckoutSession {
                id: session_id,
                client_reference_id: purchase_id.to_string(),
                amount_total: price.amount,
                currency: price.currency.to_lowercase(),
            },
        },
    };
    let body = serde_json::to_vec(&event).map_err(|e| ApiError::Internal(e.to_string()))?;
    let delivered = payments
        .http_client
        .post(format!(
            "{}/webhooks/payments",
            core.http.base_url(&headers)
        ))
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, payments.webhooks.header(now, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| ApiError::Internal(format!("sandbox webhook: {e}")))?;
    if !delivered.status().is_success() {
        return Err(ApiError::Internal(format!(
            "sandbox webhook answered {}",
            delivered.status()
        )));
    }
    let head = core
        .log
        .committed_head()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    core.visible(Visibility::Billing, Some(head)).await?;
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
