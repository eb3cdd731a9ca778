//! Local fakes of the AI providers' key-checking endpoints, for the provider-key tests
//! (no provider can be reached from here): one axum server on `127.0.0.1`, each provider
//! under its own prefix (`/openai`, `/anthropic`, `/google`, `/elevenlabs`), answering as
//! the real API does for a key it knows, a key it does not, and (ElevenLabs) a key without
//! the `user_read` permission.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Keys {
    valid: HashSet<String>,
    limited: HashSet<String>,
    calls: usize,
}

type Shared = Arc<Mutex<Keys>>;

/// The running fakes.
pub struct FakeProviders {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    keys: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeProviders {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(keys: &Shared) -> std::sync::MutexGuard<'_, Keys> {
    keys.lock().unwrap_or_else(|e| e.into_inner())
}

fn check(keys: &Shared, key: Option<&str>) -> Option<bool> {
    let mut keys = lock(keys);
    keys.calls += 1;
    let key = key?;
    if keys.valid.contains(key) {
        Some(true)
    } else if keys.limited.contains(key) {
        Some(false)
    } else {
        None
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn models() -> Response {
    Json(json!({"data": [{"id": "model-1"}]})).into_response()
}

use axum::Json;

async fn openai(State(keys): State<Shared>, headers: HeaderMap) -> Response {
    let key = header(&headers, "authorization").and_then(|v| v.strip_prefix("Bearer "));
    match check(&keys, key) {
        Some(_) => models(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}})),
        )
            .into_response(),
    }
}

async fn anthropic(State(keys): State<Shared>, headers: HeaderMap) -> Response {
    if header(&headers, "anthropic-version").is_none() {
        return (StatusCode::BAD_REQUEST, Json(json!({"type": "error", "error": {"type": "invalid_request_error", "message": "anthropic-version header is required"}}))).into_response();
    }
    match check(&keys, header(&headers, "x-api-key")) {
        Some(_) => models(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})),
        )
            .into_response(),
    }
}

async fn google(
    State(keys): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match check(&keys, query.get("key").map(String::as_str)) {
        Some(_) => Json(json!({"models": [{"name": "models/gemini"}]})).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}})),
        )
            .into_response(),
    }
}

async fn elevenlabs(State(keys): State<Shared>, headers: HeaderMap) -> Response {
    match check(&keys, header(&headers, "xi-api-key")) {
        Some(true) => Json(json!({"subscription": {"tier": "free"}})).into_response(),
        Some(false) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": {"status": "missing_permissions", "message": "The API key you used is missing the permission user_read to execute this operation."}})),
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})),
        )
            .into_response(),
    }
}

impl FakeProviders {
    /// Starts the fakes, knowing no key yet.
    pub async fn start() -> Self {
        let keys: Shared = Arc::default();
        let app = Router::new()
            .route("/openai/v1/models", get(openai))
            .route("/anthropic/v1/models", get(anthropic))
            .route("/google/v1beta/models", get(google))
            .route("/elevenlabs/v1/user", get(elevenlabs))
            .with_state(keys.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let address = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            address,
            keys,
            server,
        }
    }

    /// The `--provider-base-url` values pointing every provider here.
    pub fn base_urls(&self) -> Vec<String> {
        ["openai", "anthropic", "google", "elevenlabs"]
            .map(|p| format!("{p}={}/{p}", self.address))
            .to_vec()
    }

    /// Makes `key` valid (with every provider).
    pub fn accept(&self, key: &str) {
        lock(&self.keys).valid.insert(key.to_owned());
    }

    /// Makes `key` valid but without the permission to read the user (ElevenLabs).
    pub fn accept_limited(&self, key: &str) {
        lock(&self.keys).limited.insert(key.to_owned());
    }

    /// Revokes `key`: refused from now on.
    pub fn revoke(&self, key: &str) {
        let mut keys = lock(&self.keys);
        keys.valid.remove(key);
        keys.limited.remove(key);
    }

    /// How many checks the fakes answered.
    pub fn calls(&self) -> usize {
        lock(&self.keys).calls
    }
}
