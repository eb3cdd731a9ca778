//! Health, readiness, documentation, and errors for routes that do not exist.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use store::Backend;
use tests::{error_code, spawn_app};

async fn health_readiness_and_documentation_are_served(backend: Backend) {
    let app = spawn_app(backend).await;
    let health: Value = app.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");

    app.signed_up().await;
    // Anyone learns whether it is ready, and nothing more.
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready, serde_json::json!({"status": "ready"}));
    // Operators see each read model's checkpoint.
    let (_, auditor) = app.operator_token("auditor").await;
    let ready: Value = app
        .get("/readyz", Some(&auditor))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(ready["log_head"].as_u64().unwrap() > 0);
    let names: Vec<&str> = ready["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "accounts",
            "sessions",
            "credits",
            "billing",
            "admin_tokens",
            "access_tokens",
            "token_usage",
            "workspaces",
            "editor_preferences",
            "provider_keys",
            "telegram",
        ]
    );

    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/logout",
        "/me",
        "/me/password",
        "/me/sessions",
        "/me/sessions/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    assert!(spec["components"]["securitySchemes"]["session"].is_object());
    let docs = app.get("/docs", None).await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap().contains("openapi"),
        "the docs page embeds the spec"
    );
}

async fn unknown_routes_and_methods_answer_in_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.get("/nope", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "not_found");
    let wrong_method = app
        .request(Method::PATCH, "/auth/login", None)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(wrong_method).await, "method_not_allowed");
}

async fn a_graceful_shutdown_flushes_session_activity(backend: Backend) {
    let mut app = spawn_app_with_slow_flush(backend).await;
    let (_, session) = app.signed_up().await;
    assert_eq!(
        app.get("/me", Some(&session.token)).await.status(),
        StatusCode::OK
    );
    assert!(
        !app.raw_events()
            .await
            .iter()
            .any(|e| e.contains("SessionsActive")),
        "not flushed yet"
    );
    app.shutdown().await;
    let db = store::Database::connect(&app.database_url, 1)
        .await
        .unwrap();
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'SessionsActive'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(count, 1, "flushed on shutdown");
    db.close().await;
}

async fn spawn_app_with_slow_flush(backend: Backend) -> tests::TestApp {
    tests::spawn_app_with(backend, |setup| {
        setup.serve.activity_flush_interval = std::time::Duration::from_secs(3600);
    })
    .await
}

/// `/docs` works with no network: its script comes from this service, and its content
/// security policy allows nothing else.
async fn the_reference_page_needs_nothing_but_this_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let page = app.get("/docs", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("http"), "no other origin: {policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="docs/scalar.js">"#), "{html}");
    assert!(!html.contains("cdn."), "{html}");
    let script = app.get("/docs/scalar.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let bundle = script.bytes().await.unwrap();
    assert!(bundle.len() > 1_000_000, "the whole bundle");
    assert!(String::from_utf8_lossy(&bundle[..1_000]).contains("@scalar/api-reference 1.46.4"));
}

on_both_backends!(
    the_reference_page_needs_nothing_but_this_origin,
    health_readiness_and_documentation_are_served,
    unknown_routes_and_methods_answer_in_json,
    a_graceful_shutdown_flushes_session_activity,
);
