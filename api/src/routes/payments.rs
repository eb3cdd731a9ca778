//! The payment provider's side: the webhook it calls. What a verified event changes is
//! [`apply_event`], which the sandbox provider ([`crate::routes::sandbox`]) calls
//! in-process with the event it makes.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, RequestContext};
use crate::openapi::Routes;
use crate::state::{Core, Payments};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use commands::CommandError;
use commands::error::Rejection;
use commands::payments::{
    CHECKOUT_COMPLETED, CheckoutSession, SIGNATURE_HEADER, WebhookData, WebhookEvent,
};
use serde::{Deserialize, Serialize};
use store::{Actor, GlobalPosition};
use utoipa::ToSchema;
use utoipa::openapi::Ref;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema};
use utoipa_axum::routes;

/// The largest webhook body read (a provider's event is a few KiB); a larger one is
/// refused with 413 before it is read.
pub const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new().routes_with_body_limit(routes!(webhook), WEBHOOK_BODY_LIMIT)
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
    /// A checkout session for `checkout.session.completed`; other types' objects are not
    /// read (a provider sends a customer, an invoice… under the same envelope).
    #[schema(schema_with = event_object)]
    pub object: serde_json::Map<String, serde_json::Value>,
}

/// `data.object`: a [`CheckoutSessionBody`] for a completed checkout (400
/// `invalid_payload` if it is not one), any object for the types this service ignores.
fn event_object() -> Schema {
    AnyOfBuilder::new()
        .item(Ref::from_schema_name("CheckoutSession"))
        .item(ObjectBuilder::new())
        .description(Some(
            "For `checkout.session.completed`, a checkout session; for other types, \
             whatever the provider sends (not read)",
        ))
        .into()
}

/// A checkout session as the provider reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = CheckoutSession)]
pub struct CheckoutSessionBody {
    /// The provider's session id.
    pub id: String,
    /// The purchase id this service gave the checkout; null for a checkout made
    /// elsewhere (acknowledged, not handled).
    pub client_reference_id: Option<String>,
    /// Amount paid, minor units.
    #[serde(deserialize_with = "crate::integers::i64")]
    pub amount_total: i64,
    /// Lower-case ISO 4217.
    pub currency: String,
}

/// What every event is read as first: its type decides whether its object is read at
/// all, so an event of another type (whatever its object) is acknowledged, not refused
/// (a provider retries a refusal, and at length turns the endpoint off).
#[derive(Debug, Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(deserialize_with = "crate::integers::i64")]
    created: i64,
    data: EnvelopeData,
}

#[derive(Debug, Deserialize)]
struct EnvelopeData {
    object: serde_json::Map<String, serde_json::Value>,
}

/// The completed checkout `body` reports, if it is one that names a purchase here.
fn completed_checkout(body: &[u8]) -> Result<Option<WebhookEvent>, ApiError> {
    let unreadable = |e: serde_json::Error| {
        ApiError::BadRequest(
            "invalid_payload",
            format!("the event is not understood: {e}"),
        )
    };
    let envelope: Envelope = serde_json::from_slice(body).map_err(unreadable)?;
    if envelope.kind != CHECKOUT_COMPLETED {
        return Ok(None);
    }
    let session: CheckoutSessionBody =
        serde_json::from_value(envelope.data.object.into()).map_err(unreadable)?;
    let Some(purchase) = session.client_reference_id else {
        tracing::warn!(event_id = %envelope.id, "completed checkout without a purchase reference");
        return Ok(None);
    };
    Ok(Some(WebhookEvent {
        id: envelope.id,
        kind: envelope.kind,
        created: envelope.created,
        data: WebhookData {
            object: CheckoutSession {
                id: session.id,
                client_reference_id: purchase,
                amount_total: session.amount_total,
                currency: session.currency,
            },
        },
    }))
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
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 503, description = "`payments_unavailable`: no webhook secret is configured", body = ErrorBody),
    ))]
pub async fn webhook(
    State(core): State<Core>,
    State(payments): State<Payments>,
    ctx: RequestContext,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<WebhookReceipt>, ApiError> {
    let Some(webhooks) = &payments.webhooks else {
        return Err(ApiError::Unavailable(
            "payments_unavailable",
            "no payment provider webhook secret is configured on this service".into(),
        ));
    };
    let invalid = |why: String| ApiError::BadRequest("invalid_signature", why);
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("the Payments-Signature header is missing".into()))?;
    let now = core.clock.now().datetime().unix_timestamp();
    webhooks
        .verify(signature, &body, now)
        .map_err(|e| invalid(e.to_string()))?;
    let Some(event) = completed_checkout(&body)? else {
        return Ok(Json(WebhookReceipt {
            received: true,
            handled: false,
        }));
    };
    let (receipt, _) = apply_event(&payments, &ctx, "payments-webhook", &event).await?;
    Ok(Json(receipt))
}

/// Applies an authentic provider event: a completed checkout completes its purchase (once,
/// however often it comes); other types are acknowledged and ignored. Returns the receipt
/// and where the change was committed, if anything changed. `component` names the actor.
pub async fn apply_event(
    payments: &Payments,
    ctx: &RequestContext,
    component: &str,
    event: &WebhookEvent,
) -> Result<(WebhookReceipt, Option<GlobalPosition>), ApiError> {
    let receipt = |handled| WebhookReceipt {
        received: true,
        handled,
    };
    if event.kind != CHECKOUT_COMPLETED {
        return Ok((receipt(false), None));
    }
    let actor = Actor::System {
        component: component.into(),
    };
    match payments
        .billing
        .confirm_checkout(&ctx.command(actor), event)
        .await
    {
        Ok(position) => Ok((receipt(position.is_some()), position)),
        Err(CommandError::Rejected {
            kind: Rejection::NotFound,
            ..
        }) => {
            // Not ours (or not any more): retrying will not help, so acknowledge it.
            tracing::warn!(event_id = %event.id, "payment webhook for an unknown purchase");
            Ok((receipt(false), None))
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
