//! Which payment provider runs: the sandbox only on the embedded default or when asked
//! for; without a provider nothing is sold and the sandbox's pages do not exist; the
//! sandbox pays in-process, whatever Host header its page is opened with.

use api::config::PaymentsProvider;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use store::Backend;
use tests::{Session, TestApp, error_code, spawn_app, spawn_app_with};

async fn purchase(app: &TestApp, session: &Session) -> reqwest::Response {
    app.post(
        "/me/credits/purchases",
        Some(&session.token),
        &json!({"pack_id": "credits-500"}),
    )
    .await
}

/// Everything that needs a provider answers 503 `payments_unavailable`, the sandbox's
/// pages are 404 and out of the document, and nothing was appended for it.
async fn assert_nothing_is_sold(app: &TestApp) {
    let (_, session) = app.signed_up().await;
    let events = app.event_count().await;
    let refused = [
        purchase(app, &session).await,
        app.put(
            "/me/subscription",
            Some(&session.token),
            &json!({"plan_id": "starter"}),
        )
        .await,
        app.post(
            "/me/billing/portal-session",
            Some(&session.token),
            &json!({}),
        )
        .await,
    ];
    for response in refused {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(response).await, "payments_unavailable");
    }
    assert_eq!(app.event_count().await, events, "nothing recorded");
    for path in ["/sandbox/checkout/cs_sandbox_0", "/sandbox/portal/x"] {
        let missing = app.get(path, None).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(missing).await, "not_found");
    }
    let document: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.keys().any(|p| p.starts_with("/sandbox")));
    assert!(paths.contains_key("/me/credits/purchases"));
    // Free things still work.
    let claimed = app
        .post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    assert!(claimed.status().is_success(), "{}", claimed.status());
}

async fn the_sandbox_is_on_by_default_only_in_the_embedded_default(backend: Backend) {
    let app = spawn_app_with(backend, |setup| setup.serve.payments_provider = None).await;
    match backend {
        Backend::Sqlite => {
            let (_, session) = app.signed_up().await;
            assert_eq!(purchase(&app, &session).await.status(), StatusCode::CREATED);
        }
        Backend::Postgres => assert_nothing_is_sold(&app).await,
    }
}

async fn with_no_provider_nothing_is_sold(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.payments_provider = Some(PaymentsProvider::None);
    })
    .await;
    assert_nothing_is_sold(&app).await;
}

async fn without_a_webhook_secret_webhooks_are_refused(backend: Backend) {
    let app = spawn_app_with(backend, |setup| setup.serve.payments_webhook_secret = None).await;
    let refused = app
        .request(reqwest::Method::POST, "/webhooks/payments", None)
        .header("content-type", "application/json")
        .header("payments-signature", format!("t=1,v1={}", "0".repeat(64)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(refused).await, "payments_unavailable");
}

/// A listener that counts the connections made to it.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (address, connections)
}

async fn the_sandbox_pays_in_process_whatever_the_host_header(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let started: Value = purchase(&app, &session).await.json().await.unwrap();
    let checkout_url = started["checkout_url"].as_str().unwrap();
    assert!(checkout_url.starts_with(&app.address), "{checkout_url}");
    let (elsewhere, connections) = counting_listener().await;
    let page = app
        .client
        .get(checkout_url)
        .header("host", &elsewhere)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Payment received"));
    let balance: Value = app
        .get("/me/credits", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], 500);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no request went to the host the caller named"
    );
    // A Host header shapes only the links shown to its own caller.
    let shown: Value = app
        .request(
            reqwest::Method::POST,
            "/me/credits/purchases",
            Some(&session.token),
        )
        .header("host", "attacker.example")
        .json(&json!({"pack_id": "credits-500"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown["checkout_url"]
            .as_str()
            .unwrap()
            .starts_with("http://attacker.example/sandbox/checkout/")
    );
}

async fn a_public_url_makes_links_ignore_the_host_header(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.public_url = Some("https://studio.example/".into());
    })
    .await;
    let (_, session) = app.signed_up().await;
    let shown: Value = app
        .request(
            reqwest::Method::POST,
            "/me/credits/purchases",
            Some(&session.token),
        )
        .header("host", "attacker.example")
        .json(&json!({"pack_id": "credits-500"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown["checkout_url"]
            .as_str()
            .unwrap()
            .starts_with("https://studio.example/sandbox/checkout/cs_sandbox_")
    );
}

on_both_backends!(
    the_sandbox_is_on_by_default_only_in_the_embedded_default,
    with_no_provider_nothing_is_sold,
    without_a_webhook_secret_webhooks_are_refused,
    the_sandbox_pays_in_process_whatever_the_host_header,
    a_public_url_makes_links_ignore_the_host_header,
);
