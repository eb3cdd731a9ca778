//! A fake Telegram Bot API for the tests: an axum server on `127.0.0.1` (a free port) that
//! answers `POST /bot<token>/sendMessage` as Telegram does and records each call, so a
//! test can see what the bot said to which chat. Other methods answer 404.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The bot token the tests configure.
pub const BOT_TOKEN: &str = "123456:test-bot-token";
/// The bot's username.
pub const BOT_USERNAME: &str = "studio_test_bot";
/// The webhook secret.
pub const WEBHOOK_SECRET: &str = "tg-webhook-secret";

/// One `sendMessage` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The chat.
    pub chat_id: i64,
    /// The text.
    pub text: String,
}

/// A running fake; stopped when dropped.
pub struct FakeBotApi {
    /// Where it listens.
    pub address: SocketAddr,
    sent: Arc<Mutex<Vec<SentMessage>>>,
    server: JoinHandle<()>,
}

async fn send_message(
    State(sent): State<Arc<Mutex<Vec<SentMessage>>>>,
    Path(method): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let Some(token) = method.strip_prefix("bot") else {
        return (StatusCode::NOT_FOUND, Json(json!({"ok": false})));
    };
    if token != BOT_TOKEN {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        );
    }
    let (Some(chat_id), Some(text)) = (body["chat_id"].as_i64(), body["text"].as_str()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error_code": 400, "description": "Bad Request"})),
        );
    };
    sent.lock().unwrap().push(SentMessage {
        chat_id,
        text: text.to_owned(),
    });
    (
        StatusCode::OK,
        Json(
            json!({"ok": true, "result": {"message_id": 1, "chat": {"id": chat_id}, "text": text}}),
        ),
    )
}

impl FakeBotApi {
    /// Starts a fake on a free port.
    pub async fn start() -> Self {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let router = axum::Router::new()
            .route("/{method}/sendMessage", post(send_message))
            .with_state(sent.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            sent,
            server,
        }
    }

    /// The base URL to give `--telegram-api-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every message sent so far.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.sent.lock().unwrap().clone()
    }

    /// The messages sent to `chat_id`.
    pub fn sent_to(&self, chat_id: i64) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|m| m.chat_id == chat_id)
            .map(|m| m.text)
            .collect()
    }

    /// Waits (up to 20 s) until `chat_id` has received `count` messages; returns them.
    pub async fn wait_for(&self, chat_id: i64, count: usize) -> Vec<String> {
        for _ in 0..200 {
            let sent = self.sent_to(chat_id);
            if sent.len() >= count {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "chat {chat_id} got {:?}, expected {count}",
            self.sent_to(chat_id)
        );
    }
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}
