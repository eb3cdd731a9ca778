//! Limits on what one client or account may cost: registrations and password reset
//! requests per client IP (429), avatar
//! decodes at once (503 `busy`), and live tokens, open generation holds and pending
//! purchases per account (409).

use commands::payments::{
    CHECKOUT_COMPLETED, CheckoutSession, WebhookData, WebhookEvent, WebhookSigner,
};
use image::{ImageFormat, RgbImage};
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Cursor;
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, Session, TestApp, WEBHOOK_SECRET, error_code, json_body, spawn_app_with};
use uuid::Uuid;

/// Posts `body` to `path` as the client at `ip` (behind the trusted proxy header).
async fn post_from(app: &TestApp, ip: &str, path: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, path, None)
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn register_from(app: &TestApp, ip: &str) -> reqwest::Response {
    let email = format!("user-{}@example.com", Uuid::new_v4().simple());
    let body = json!({"email": email, "password": PASSWORD, "display_name": "New"});
    post_from(app, ip, "/auth/register", body).await
}

async fn registrations_are_limited_per_client_ip(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.limits.registration_rate_limit = 3;
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    for _ in 0..3 {
        let created = register_from(&app, "203.0.113.7").await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let events_before = app.event_count().await;
    let refused = register_from(&app, "203.0.113.7").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // Three an hour: the next one in 20 minutes.
    assert!((1..=1200).contains(&wait), "Retry-After: {wait}");
    assert_eq!(error_code(refused).await, "too_many_registrations");
    assert_eq!(app.event_count().await, events_before, "nothing registered");
    // Another address has a budget of its own.
    assert_eq!(
        register_from(&app, "198.51.100.4").await.status(),
        StatusCode::CREATED
    );
    // The stored budget is keyed by a hash, never the address.
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM rate_limits")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert!(!keys.is_empty());
    assert!(keys.iter().all(|k| !k.contains("203.0.113.7")), "{keys:?}");
}

async fn reset_from(app: &TestApp, ip: &str, email: &str) -> reqwest::Response {
    post_from(app, ip, "/auth/password-reset", json!({ "email": email })).await
}

async fn password_reset_requests_are_limited_per_client_ip(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.limits.password_reset_rate_limit = 3;
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    // Whatever the addresses, known or not: the budget is the client's.
    let (known, _) = app.signed_up().await;
    for n in 0..3 {
        let email = format!("someone-{n}@example.com");
        let asked = reset_from(&app, "203.0.113.9", &email).await;
        assert_eq!(asked.status(), StatusCode::ACCEPTED);
    }
    let refused = reset_from(&app, "203.0.113.9", &known).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&wait), "Retry-After: {wait}");
    assert_eq!(error_code(refused).await, "too_many_password_resets");
    // Another client has a budget of its own, and its request sends the link.
    let other = reset_from(&app, "198.51.100.9", &known).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    crate::password_reset::reset_tokens(&app, &known, 1).await;
}

async fn create(app: &TestApp, session: &Session, path: &str, body: Value) -> reqwest::Response {
    app.post(path, Some(&session.token), &body).await
}

async fn live_tokens_are_capped_per_account(backend: Backend) {
    let app = spawn_app_with(backend, |setup| setup.serve.limits.max_live_tokens = 2).await;
    let (_, session) = app.signed_up().await;
    let api = json!({"label": "ci", "scopes": ["usage:read"], "expires_in_days": 1});
    let cli = json!({"label": "laptop", "kind": "device"});
    let first = create(&app, &session, "/me/api-tokens", api.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let cli_id =
        json_body(create(&app, &session, "/me/cli-tokens", cli.clone()).await).await["token_id"]
            .as_str()
            .unwrap()
            .to_owned();
    // API and CLI tokens count together.
    for (path, body) in [("/me/api-tokens", &api), ("/me/cli-tokens", &cli)] {
        let refused = create(&app, &session, path, body.clone()).await;
        assert_eq!(refused.status(), StatusCode::CONFLICT, "{path}");
        assert_eq!(error_code(refused).await, "too_many_tokens");
    }
    // A revoked token no longer counts…
    let revoked = app
        .delete(&format!("/me/cli-tokens/{cli_id}"), Some(&session.token))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        create(&app, &session, "/me/cli-tokens", cli.clone())
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        create(&app, &session, "/me/cli-tokens", cli.clone())
            .await
            .status(),
        StatusCode::CONFLICT
    );
    // …nor does an expired one (the API token lived a day).
    app.clock.advance(Duration::from_secs(2 * 86_400));
    app.reauthenticate(&session).await;
    assert_eq!(
        create(&app, &session, "/me/cli-tokens", cli).await.status(),
        StatusCode::CREATED
    );
}

async fn hold(app: &TestApp, session: &Session, id: &str) -> reqwest::Response {
    app.post(
        "/me/generations",
        Some(&session.token),
        &json!({"generation_id": id, "estimated_credits": 5, "feature": "generation"}),
    )
    .await
}

async fn open_holds_are_capped_per_account(backend: Backend) {
    let app = spawn_app_with(backend, |setup| setup.serve.limits.max_open_holds = 2).await;
    let (_, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    for id in ["gen-1", "gen-2"] {
        assert_eq!(hold(&app, &session, id).await.status(), StatusCode::CREATED);
    }
    let refused = hold(&app, &session, "gen-3").await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(refused).await, "too_many_open_holds");
    // A retry of an open hold is not a new one.
    assert_eq!(
        hold(&app, &session, "gen-2").await.status(),
        StatusCode::CREATED
    );
    let done = app
        .post(
            "/me/generations/gen-1/complete",
            Some(&session.token),
            &json!({"credits": 3}),
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(
        hold(&app, &session, "gen-3").await.status(),
        StatusCode::CREATED
    );
}

async fn purchase(app: &TestApp, session: &Session) -> reqwest::Response {
    app.post(
        "/me/credits/purchases",
        Some(&session.token),
        &json!({"pack_id": "credits-500"}),
    )
    .await
}

/// Has the provider confirm `purchase` of the 500-credit pack (paid in full: 5.00 EUR), as
/// its signed webhook would.
async fn pay(app: &TestApp, purchase: &Value) {
    let session_id = purchase["checkout_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let event = WebhookEvent {
        id: format!("evt_{}", Uuid::new_v4().simple()),
        kind: CHECKOUT_COMPLETED.into(),
        created: 0,
        data: WebhookData {
            object: CheckoutSession {
                id: session_id.into(),
                client_reference_id: purchase["purchase_id"].as_str().unwrap().into(),
                amount_total: 500,
                currency: "eur".into(),
            },
        },
    };
    let body = serde_json::to_vec(&event).unwrap();
    let now = commands::Clock::now(&*app.clock)
        .datetime()
        .unix_timestamp();
    let signature = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec()).header(now, &body);
    let delivered = app
        .request(Method::POST, "/webhooks/payments", None)
        .header(CONTENT_TYPE, "application/json")
        .header("payments-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), StatusCode::OK);
    app.settle().await;
}

async fn pending_purchases_are_capped_per_account(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.limits.max_pending_purchases = 2
    })
    .await;
    let (_, session) = app.signed_up().await;
    let first = json_body(purchase(&app, &session).await).await;
    assert_eq!(purchase(&app, &session).await.status(), StatusCode::CREATED);
    let refused = purchase(&app, &session).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(refused).await, "too_many_pending_purchases");
    // A completed purchase no longer waits…
    pay(&app, &first).await;
    assert_eq!(purchase(&app, &session).await.status(), StatusCode::CREATED);
    assert_eq!(
        purchase(&app, &session).await.status(),
        StatusCode::CONFLICT
    );
    // …nor does one abandoned for a day (its checkout would have expired).
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(purchase(&app, &session).await.status(), StatusCode::CREATED);
}

fn picture() -> Vec<u8> {
    let image = RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encode");
    bytes.into_inner()
}

async fn upload(app: &TestApp, session: &Session) -> reqwest::Response {
    app.request(Method::PUT, "/me/avatar", Some(&session.token))
        .header(CONTENT_TYPE, "image/png")
        .body(picture())
        .send()
        .await
        .unwrap()
}

async fn avatar_decodes_wait_for_a_slot_and_are_refused_when_none_frees(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.limits.avatar_decode_concurrency = 1;
    })
    .await;
    let (_, session) = app.signed_up().await;
    // Another upload holds the only slot.
    let slots = app.state.auth.accounts.decode_slots().clone();
    let held = slots.acquire().await.expect("the free slot");
    let refused = upload(&app, &session).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused.headers().contains_key(RETRY_AFTER),
        "{:?}",
        refused.headers()
    );
    assert_eq!(error_code(refused).await, "busy");
    assert_eq!(
        app.get("/me/avatar", Some(&session.token)).await.status(),
        StatusCode::NOT_FOUND
    );
    drop(held);
    assert_eq!(upload(&app, &session).await.status(), StatusCode::OK);
    assert_eq!(slots.available(), 1, "the decode gave its slot back");
}

on_both_backends!(
    registrations_are_limited_per_client_ip,
    password_reset_requests_are_limited_per_client_ip,
    live_tokens_are_capped_per_account,
    open_holds_are_capped_per_account,
    pending_purchases_are_capped_per_account,
    avatar_decodes_wait_for_a_slot_and_are_refused_when_none_frees,
);
