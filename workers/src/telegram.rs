//! The Telegram Bot API client: `sendMessage` at a configurable base URL
//! (`<api url>/bot<token>/sendMessage`). The token is part of every URL, so neither the
//! URL nor a reqwest error (which may name it) is ever logged or returned.

use serde_json::json;
use std::time::Duration;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// Try again later (network, 429, 5xx).
    #[error("Telegram unavailable: {0}")]
    Transient(String),
    /// The user blocked the bot or the chat is gone (403): nothing to do.
    #[error("the chat does not accept messages from the bot")]
    Blocked,
    /// Any other refusal.
    #[error("Telegram refused the message: {0}")]
    Permanent(String),
}

/// A bot: its token, and where the Bot API is.
#[derive(Clone)]
pub struct TelegramBot {
    http: reqwest::Client,
    api_url: String,
    token: String,
    username: String,
}

impl std::fmt::Debug for TelegramBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramBot")
            .field("api_url", &self.api_url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl TelegramBot {
    /// The bot `username` with `token`, talking to the Bot API at `api_url`.
    pub fn new(api_url: &str, token: &str, username: &str) -> Result<Self, BotError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|_| BotError::Permanent("building the HTTP client".into()))?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            username: username.trim_start_matches('@').to_owned(),
        })
    }

    /// The bot's username (without `@`).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The deep link that starts the bot with `start`.
    pub fn deep_link(&self, start: &str) -> String {
        format!("https://t.me/{}?start={start}", self.username)
    }

    /// Sends `text` to `chat_id`.
    pub async fn send_message(&self, chat_id: i64, text: &str) -> Result<(), BotError> {
        let url = format!("{}/bot{}/sendMessage", self.api_url, self.token);
        let response = self
            .http
            .post(url)
            .json(&json!({ "chat_id": chat_id, "text": text }))
            .send()
            .await
            // Without the URL: it holds the token.
            .map_err(|e| BotError::Transient(error_kind(&e).into()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let description = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|b| {
                b.get("description")
                    .and_then(|d| d.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let why = format!("{} {description}", status.as_u16());
        match status.as_u16() {
            403 => Err(BotError::Blocked),
            429 | 500..=599 => Err(BotError::Transient(why)),
            _ => Err(BotError::Permanent(why)),
        }
    }
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    }
}
