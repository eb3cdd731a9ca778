//! The Notifications tab: the seven toggles (five e-mail, two Telegram), their consent history, and the one-click
//! unsubscribe links of promotional e-mails (RFC 8058), which need no session.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::pages::HistoryPageQuery;
use crate::state::{Core, Notices};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use domain::notifications::{NotificationPreferences, Toggle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(preferences, update))
        .routes(routes!(history))
        .routes(routes!(unsubscribe_page, unsubscribe))
}

/// The toggles. Security notices are always sent and have none.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct NotificationsView {
    /// A generation completed through the public API (default on).
    pub generation_complete: bool,
    /// The balance dropped below the alert threshold (default on).
    pub credits_low: bool,
    /// An invoice was paid, with the PDF (default on).
    pub billing_receipts: bool,
    /// The newsletter (default off).
    pub newsletter: bool,
    /// Marketing e-mails (default off).
    pub marketing: bool,
    /// A generation completed: also a message to the linked Telegram chat (default off).
    pub telegram_generation_complete: bool,
    /// The balance dropped below the threshold: also a Telegram message (default off).
    pub telegram_credits_low: bool,
}

impl From<&NotificationPreferences> for NotificationsView {
    fn from(p: &NotificationPreferences) -> Self {
        Self {
            generation_complete: p.enabled(Toggle::GenerationComplete),
            credits_low: p.enabled(Toggle::CreditsLow),
            billing_receipts: p.enabled(Toggle::BillingReceipts),
            newsletter: p.enabled(Toggle::Newsletter),
            marketing: p.enabled(Toggle::Marketing),
            telegram_generation_complete: p.enabled(Toggle::TelegramGenerationComplete),
            telegram_credits_low: p.enabled(Toggle::TelegramCreditsLow),
        }
    }
}

/// The caller's toggles.
#[utoipa::path(get, path = "/me/notifications", tag = "notifications", security(("session" = [])),
    responses((status = 200, body = NotificationsView)))]
pub async fn preferences(
    State(notices): State<Notices>,
    session: CurrentSession,
) -> Result<Json<NotificationsView>, ApiError> {
    let preferences = notices
        .notifications
        .preferences(session.account_id)
        .await?;
    Ok(Json(NotificationsView::from(&preferences)))
}

/// `PUT /me/notifications`: any subset of the seven toggles. Only its schema is used: the
/// handler reads the body as a map, to name an unknown toggle in its answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationsChange {
    /// A generation completed through the public API.
    #[serde(default)]
    pub generation_complete: bool,
    /// The balance dropped below the alert threshold.
    #[serde(default)]
    pub credits_low: bool,
    /// An invoice was paid, with the PDF.
    #[serde(default)]
    pub billing_receipts: bool,
    /// The newsletter.
    #[serde(default)]
    pub newsletter: bool,
    /// Marketing e-mails.
    #[serde(default)]
    pub marketing: bool,
    /// A generation completed, to the linked Telegram chat.
    #[serde(default)]
    pub telegram_generation_complete: bool,
    /// The balance dropped below the threshold, to the linked Telegram chat.
    #[serde(default)]
    pub telegram_credits_low: bool,
}

/// Changes the toggles sent (any subset of the seven); each change is an event.
#[utoipa::path(put, path = "/me/notifications", operation_id = "update_notifications", tag = "notifications", security(("session" = [])),
    request_body(content = NotificationsChange, description = "e.g. `{\"marketing\": true}`"),
    responses(
        (status = 200, body = NotificationsView),
        (status = 422, description = "`validation_failed`: an unknown toggle or a value that is not a boolean", body = ErrorBody),
    ))]
pub async fn update(
    State(notices): State<Notices>,
    ctx: RequestContext,
    session: CurrentSession,
    ApiJson(body): ApiJson<BTreeMap<String, serde_json::Value>>,
) -> Result<Json<NotificationsView>, ApiError> {
    let mut toggles = BTreeMap::new();
    for (name, value) in body {
        let toggle = Toggle::parse(&name).ok_or_else(|| {
            ApiError::invalid(
                &name,
                "no such toggle (generation_complete, credits_low, billing_receipts, newsletter, marketing, telegram_generation_complete, telegram_credits_low)",
            )
        })?;
        let enabled = value
            .as_bool()
            .ok_or_else(|| ApiError::invalid(&name, "must be true or false"))?;
        toggles.insert(toggle, enabled);
    }
    notices
        .notifications
        .set(
            &ctx.command(session.actor()),
            session.account_id,
            toggles,
            "settings",
        )
        .await?;
    let preferences = notices
        .notifications
        .preferences(session.account_id)
        .await?;
    Ok(Json(NotificationsView::from(&preferences)))
}

/// One change in the consent history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PreferenceChangeView {
    /// The toggle.
    pub toggle: String,
    /// Its new value.
    pub enabled: bool,
    /// `settings` or `unsubscribe_link`.
    pub via: String,
    /// When (RFC 3339).
    pub at: String,
}

/// The header with the cursor of the history's next page.
pub const NEXT_CURSOR: &str = "next-cursor";

/// Every change of the caller's toggles, oldest first (who opted in to what, and when), a
/// page at a time. The body stays the list it always was; the cursor of the next page is
/// the `Next-Cursor` header, absent on the last page.
#[utoipa::path(get, path = "/me/notifications/history", tag = "notifications", security(("session" = [])),
    params(HistoryPageQuery),
    responses((status = 200, body = Vec<PreferenceChangeView>, headers(
            ("Next-Cursor" = String, description = "Pass as `cursor` for the next page; absent on the last page"),
        )),
        (status = 422, description = "`validation_failed`: a limit or cursor out of bounds", body = ErrorBody)))]
pub async fn history(
    State(notices): State<Notices>,
    session: CurrentSession,
    ApiQuery(page): ApiQuery<HistoryPageQuery>,
) -> Result<Response, ApiError> {
    let (skip, limit) = page.page()?;
    let (changes, next) = notices
        .notifications
        .history(session.account_id, skip, limit)
        .await?;
    let body: Vec<PreferenceChangeView> = changes
        .into_iter()
        .map(|c| PreferenceChangeView {
            toggle: c.toggle.as_str().to_owned(),
            enabled: c.enabled,
            via: c.via,
            at: c.at.to_string(),
        })
        .collect();
    let mut response = Json(body).into_response();
    if let Some(next) = next {
        response
            .headers_mut()
            .insert(NEXT_CURSOR, HeaderValue::from(next));
    }
    Ok(response)
}

/// The token of an unsubscribe link.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeQuery {
    /// As in the link of the e-mail.
    pub token: String,
}

fn verified(notices: &Notices, token: &str) -> Result<(domain::AccountId, Toggle), ApiError> {
    notices.unsubscribe_links.verify(token).ok_or_else(|| {
        ApiError::NotFound(
            "invalid_unsubscribe_link",
            "this unsubscribe link is not valid".into(),
        )
    })
}

/// The page an unsubscribe link opens: a button that posts the one-click form (a GET
/// changes nothing, so link scanners cannot unsubscribe anyone).
#[utoipa::path(get, path = "/unsubscribe", tag = "notifications", params(UnsubscribeQuery),
    responses((status = 200, description = "An HTML page with the one-click form", content_type = "text/html", body = String),
        (status = 404, description = "`invalid_unsubscribe_link`", body = ErrorBody)))]
pub async fn unsubscribe_page(
    State(notices): State<Notices>,
    ApiQuery(query): ApiQuery<UnsubscribeQuery>,
) -> Result<Response, ApiError> {
    let (_, toggle) = verified(&notices, &query.token)?;
    let token: String = query
        .token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    Ok(crate::html::page(format!(
        "<!doctype html><meta charset=utf-8><title>Unsubscribe</title>\
         <form method=post action=\"/unsubscribe?token={token}\">\
         <input type=hidden name=List-Unsubscribe value=One-Click>\
         <p>Stop receiving the {} e-mails?</p><button>Unsubscribe</button></form>",
        toggle.as_str()
    )))
}

/// What the link turned off.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnsubscribedView {
    /// The toggle now off.
    pub unsubscribed: String,
}

/// RFC 8058 one-click unsubscribe: turns the promotion of the link off. Idempotent.
#[utoipa::path(post, path = "/unsubscribe", tag = "notifications", params(UnsubscribeQuery),
    responses((status = 200, body = UnsubscribedView),
        (status = 404, description = "`invalid_unsubscribe_link`: the link is not valid, or its account is gone", body = ErrorBody)))]
pub async fn unsubscribe(
    State(core): State<Core>,
    State(notices): State<Notices>,
    ctx: RequestContext,
    ApiQuery(query): ApiQuery<UnsubscribeQuery>,
) -> Result<Json<UnsubscribedView>, ApiError> {
    let (account, toggle) = verified(&notices, &query.token)?;
    if projections::accounts::find(&core.db, &core.sealer, account)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(
            "invalid_unsubscribe_link",
            "this unsubscribe link is not valid".into(),
        ));
    }
    let actor = Actor::System {
        component: "unsubscribe-link".into(),
    };
    notices
        .notifications
        .set(
            &ctx.command(actor),
            account,
            BTreeMap::from([(toggle, false)]),
            "unsubscribe_link",
        )
        .await?;
    Ok(Json(UnsubscribedView {
        unsubscribed: toggle.as_str().to_owned(),
    }))
}
