//! Telegram: linking a chat to the account (a deep link with a single-use token), the
//! Bot API's webhook (`/start <token>`, `/stop`, the bot blocked), the link's state and
//! unlinking. The linked chat receives the notices whose Telegram toggle is on (sent by
//! the mailer, see `workers::mail::mailer`).

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiBytes, CurrentSession, RequestContext};
use crate::openapi::Routes;
use crate::routes::payments::WEBHOOK_BODY_LIMIT;
use crate::state::{Core, Telegram};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use commands::CommandError;
use commands::telegram::{TelegramLinks, TelegramSender};
use projections::{Follower, Visibility};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::Actor;
use utoipa::ToSchema;
use utoipa_axum::routes;
use workers::telegram::TelegramBot;

/// The header Telegram sends the webhook's secret in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The routes of this module.
pub fn router() -> Routes {
    Routes::new()
        .routes(routes!(create_link))
        .routes(routes!(status, unlink))
        .routes_with_body_limit(routes!(webhook), WEBHOOK_BODY_LIMIT)
}

fn unavailable() -> ApiError {
    ApiError::Unavailable(
        "telegram_unavailable",
        "no Telegram bot is configured on this service".into(),
    )
}

fn bot(telegram: &Telegram) -> Result<&TelegramBot, ApiError> {
    telegram.bot.as_ref().ok_or_else(unavailable)
}

/// A link to open in Telegram.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TelegramLinkView {
    /// `https://t.me/<bot>?start=<token>`: opening it and pressing Start links the chat.
    pub link_url: String,
    /// The token works once, until then (10 minutes).
    pub expires_at: String,
}

/// The link's state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TelegramStatus {
    /// Whether a chat is linked.
    pub linked: bool,
    /// The start of the Telegram username (`@ad…`), if linked and the user has one.
    pub username_hint: Option<String>,
    /// When it was linked.
    pub linked_at: Option<String>,
}

/// Creates a single-use link (10 minutes) that links the Telegram chat which opens it;
/// a newer link replaces an older one.
#[utoipa::path(post, path = "/me/telegram/link", operation_id = "create_telegram_link", tag = "notifications", security(("session" = [])),
    responses(
        (status = 200, body = TelegramLinkView),
        (status = 503, description = "`telegram_unavailable`: no bot is configured", body = ErrorBody),
    ))]
pub async fn create_link(
    State(core): State<Core>,
    State(telegram): State<Telegram>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<Json<TelegramLinkView>, ApiError> {
    let bot = bot(&telegram)?;
    let issued = telegram
        .links
        .request_link(&ctx.command(session.actor()), session.account_id)
        .await?;
    // The webhook finds the token in the read model.
    core.visible(Visibility::ReadModel(Follower::Telegram), issued.position)
        .await?;
    Ok(Json(TelegramLinkView {
        link_url: bot.deep_link(&issued.token),
        expires_at: issued.expires_at.to_rfc3339(),
    }))
}

/// Whether a Telegram chat is linked.
#[utoipa::path(get, path = "/me/telegram", operation_id = "telegram_status", tag = "notifications", security(("session" = [])),
    responses(
        (status = 200, body = TelegramStatus),
        (status = 503, description = "`telegram_unavailable`: no bot is configured", body = ErrorBody),
    ))]
pub async fn status(
    State(core): State<Core>,
    State(telegram): State<Telegram>,
    session: CurrentSession,
) -> Result<Json<TelegramStatus>, ApiError> {
    bot(&telegram)?;
    let chat = projections::telegram::chat(&core.db, &core.sealer, session.account_id).await?;
    Ok(Json(match chat {
        Some(chat) => TelegramStatus {
            linked: true,
            username_hint: chat.username.map(|u| {
                let start: String = u.chars().take(2).collect();
                format!("@{start}…")
            }),
            linked_at: Some(chat.linked_at.to_rfc3339()),
        },
        None => TelegramStatus {
            linked: false,
            username_hint: None,
            linked_at: None,
        },
    }))
}

/// Unlinks the Telegram chat (nothing to do if none is linked).
#[utoipa::path(delete, path = "/me/telegram", operation_id = "unlink_telegram", tag = "notifications", security(("session" = [])),
    responses(
        (status = 204, description = "Not linked (any more)"),
        (status = 503, description = "`telegram_unavailable`: no bot is configured", body = ErrorBody),
    ))]
pub async fn unlink(
    State(core): State<Core>,
    State(telegram): State<Telegram>,
    ctx: RequestContext,
    session: CurrentSession,
) -> Result<StatusCode, ApiError> {
    bot(&telegram)?;
    let position = telegram
        .links
        .unlink_account(&ctx.command(session.actor()), session.account_id, "user")
        .await?;
    core.visible(Visibility::ReadModel(Follower::Telegram), position)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An update from the Bot API (the fields this service reads; others are ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TelegramUpdate {
    /// The update's id.
    #[serde(deserialize_with = "crate::integers::i64")]
    pub update_id: i64,
    /// A message to the bot.
    pub message: Option<TelegramMessage>,
    /// The bot's membership in a chat changed (blocked: `kicked`).
    pub my_chat_member: Option<TelegramChatMemberUpdated>,
}

/// A message.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TelegramMessage {
    /// The chat.
    pub chat: TelegramChat,
    /// The sender.
    pub from: Option<TelegramUser>,
    /// The text.
    pub text: Option<String>,
}

/// A chat.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TelegramChat {
    /// Its id.
    #[serde(deserialize_with = "crate::integers::i64")]
    pub id: i64,
    /// `private`, `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A Telegram user.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TelegramUser {
    /// Its id.
    #[serde(deserialize_with = "crate::integers::i64")]
    pub id: i64,
    /// Its `@username`.
    pub username: Option<String>,
}

/// A change of the bot's membership in a chat.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TelegramChatMemberUpdated {
    /// The chat.
    pub chat: TelegramChat,
    /// Who changed it.
    pub from: TelegramUser,
    /// The bot's new membership.
    pub new_chat_member: TelegramChatMember,
}

/// A membership.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TelegramChatMember {
    /// `member`, `kicked` (the user blocked the bot)…
    pub status: String,
}

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelegramReceipt {
    /// Always true: the update was authentic and read.
    pub ok: bool,
}

/// Whether `given` is the secret, compared in constant time (over SHA-256 digests, so
/// the length does not show either).
fn secret_matches(given: &[u8], secret: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(secret));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The Bot API's updates, accepted only with the configured secret in
/// `X-Telegram-Bot-Api-Secret-Token`. `/start <token>` in a private chat links it; `/stop`
/// or blocking the bot unlinks. The bot answers in the chat.
#[utoipa::path(post, path = "/webhooks/telegram", operation_id = "telegram_webhook", tag = "notifications",
    params(("X-Telegram-Bot-Api-Secret-Token" = String, Header, min_length = 1, max_length = 256,
        description = "The secret given to `setWebhook` (`--telegram-webhook-secret`)")),
    request_body(content = TelegramUpdate, description = "A Bot API `Update`"),
    responses(
        (status = 200, body = TelegramReceipt),
        (status = 400, description = "`invalid_payload`: not an update", body = ErrorBody),
        (status = 401, description = "`missing_secret_token`: the header is missing", body = ErrorBody),
        (status = 403, description = "`invalid_secret_token`: the header is wrong", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB", body = ErrorBody),
        (status = 503, description = "`telegram_unavailable`: no bot or webhook secret is configured", body = ErrorBody),
    ))]
pub async fn webhook(
    State(core): State<Core>,
    State(telegram): State<Telegram>,
    ctx: RequestContext,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<TelegramReceipt>, ApiError> {
    let bot = bot(&telegram)?;
    let secret = telegram.webhook_secret.as_ref().ok_or_else(unavailable)?;
    let given = headers.get(SECRET_HEADER).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing_secret_token",
            format!("the {SECRET_HEADER} header is missing"),
        )
    })?;
    if !secret_matches(given.as_bytes(), secret.as_bytes()) {
        return Err(ApiError::Forbidden(
            "invalid_secret_token",
            format!("the {SECRET_HEADER} header is wrong"),
        ));
    }
    let update: TelegramUpdate = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(
            "invalid_payload",
            format!("the update is not understood: {e}"),
        )
    })?;
    let command = ctx.command(Actor::System {
        component: "telegram-webhook".into(),
    });
    if let Some(member) = &update.my_chat_member {
        // Blocking the bot is a `kicked` in the user's private chat with it; removing it
        // from a group says nothing about the user's link.
        if member.new_chat_member.status == "kicked" && member.chat.kind == "private" {
            let (_, position) = telegram
                .links
                .unlink_user(&command, member.from.id, "blocked")
                .await?;
            core.visible(Visibility::ReadModel(Follower::Telegram), position)
                .await?;
        }
        return Ok(Json(TelegramReceipt { ok: true }));
    }
    let Some(message) = &update.message else {
        return Ok(Json(TelegramReceipt { ok: true }));
    };
    let (Some(text), Some(from)) = (&message.text, &message.from) else {
        return Ok(Json(TelegramReceipt { ok: true }));
    };
    let mut words = text.split_whitespace();
    // `/start@studio_bot` in groups; only private chats are linked.
    let verb = words.next().unwrap_or("").split('@').next().unwrap_or("");
    let reply = match verb {
        "/start" if message.chat.kind != "private" => {
            Some("Open the link from your account settings in a private chat with me.".into())
        }
        "/start" => Some(match words.next() {
            None => "Open the link from your account settings to connect this chat.".to_owned(),
            Some(token) => {
                let sender = TelegramSender {
                    chat_id: message.chat.id,
                    user_id: from.id,
                    username: from.username.clone(),
                };
                start(&core, &telegram.links, &command, token, &sender).await?
            }
        }),
        "/stop" => {
            let (account, position) = telegram
                .links
                .unlink_user(&command, from.id, "stop")
                .await?;
            core.visible(Visibility::ReadModel(Follower::Telegram), position)
                .await?;
            Some(match account {
                Some(_) => "Disconnected: you will get no more notifications here.".into(),
                None => "This chat is not connected to an account.".into(),
            })
        }
        _ => None,
    };
    if let Some(reply) = reply
        && let Err(error) = bot.send_message(message.chat.id, &reply).await
    {
        // The link is made (or refused) either way; the answer is a courtesy.
        tracing::warn!(%error, "the bot's answer was not sent");
    }
    Ok(Json(TelegramReceipt { ok: true }))
}

/// Links the chat with `token`; the bot's answer.
async fn start(
    core: &Core,
    links: &TelegramLinks,
    command: &commands::CommandContext,
    token: &str,
    sender: &TelegramSender,
) -> Result<String, ApiError> {
    const INVALID: &str =
        "This link is not valid or was already used. Create a new one in your account settings.";
    let hash = TelegramLinks::token_hash(token);
    let Some((account, _)) = projections::telegram::token_owner(&core.db, &hash).await? else {
        return Ok(INVALID.into());
    };
    match links.link(command, account, &hash, sender).await {
        Ok(position) => {
            core.visible(Visibility::ReadModel(Follower::Telegram), position)
                .await?;
            Ok(
                "Connected: notifications you turn on for Telegram will arrive here. \
                Send /stop to disconnect."
                    .into(),
            )
        }
        Err(CommandError::Rejected {
            code: "telegram_link_expired",
            ..
        }) => Ok("This link has expired. Create a new one in your account settings.".into()),
        Err(CommandError::Rejected {
            code: "telegram_link_invalid",
            ..
        }) => Ok(INVALID.into()),
        Err(other) => Err(other.into()),
    }
}
