//! `GET /me/security-log`: the holder's own security events, newest first, with device
//! and place.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, TestApp, json_body, spawn_app};
use uuid::Uuid;

const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 \
                     (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
const NEW_PASSWORD: &str = "another-horse-8-battery-staple";

async fn sign_in(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.request(Method::POST, "/auth/login", None)
        .header("user-agent", PHONE)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn log(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app
        .get(&format!("/me/security-log{query}"), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await
}

async fn the_security_log_shows_failures_changes_and_revocations(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = format!("seclog-{}@example.com", Uuid::new_v4().simple());
    app.register(&email).await;
    let token = app.login(&email, PASSWORD).await.token;
    let refused = sign_in(&app, &email, "not-the-password-at-all").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let phone = json_body(sign_in(&app, &email, PASSWORD).await).await;
    let phone_session = phone["session_id"].as_str().unwrap().to_owned();
    let revoked = app
        .delete(&format!("/me/sessions/{phone_session}"), Some(&token))
        .await;
    assert!(revoked.status().is_success());
    let token_id = app
        .create_api_token(&token, "render farm", &["credits:read"])
        .await;
    app.rotate_api_token(&token, &token_id).await;
    let changed = app
        .request(Method::PUT, "/me/password", Some(&token))
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(changed.status().is_success(), "{}", changed.status());

    // The refused sign-in is recorded in the background.
    let mut entries = Vec::new();
    for _ in 0..100 {
        entries = log(&app, &token, "").await["entries"]
            .as_array()
            .unwrap()
            .clone();
        if entries.iter().any(|e| e["kind"] == "sign_in_failed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "password_changed", "newest first: {kinds:?}");
    let find = |kind: &str| {
        entries
            .iter()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("{kind} in {kinds:?}"))
            .clone()
    };
    let failed = find("sign_in_failed");
    assert_eq!(failed["detail"], "password");
    assert!(
        failed["device"].as_str().unwrap().contains("Safari"),
        "{failed}"
    );
    let revocation = find("session_revoked");
    assert_eq!(revocation["session_id"], phone_session.as_str());
    assert!(
        revocation["device"].as_str().unwrap().contains("Safari"),
        "{revocation}"
    );
    assert_eq!(revocation["detail"], "revoked");
    assert!(
        find("token_created")["detail"]
            .as_str()
            .unwrap()
            .contains(&token_id)
    );
    assert!(
        find("token_rotated")["detail"]
            .as_str()
            .unwrap()
            .contains(&token_id)
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "sign_in").count(),
        2,
        "{kinds:?}"
    );

    // Pages of two, by cursor, are the whole log.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = log(&app, &token, &query).await;
        paged.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(paged, entries);

    // Only the holder reads it.
    assert_eq!(
        app.get("/me/security-log", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (_, operator) = app.operator_token("auditor").await;
    assert_eq!(
        app.get("/me/security-log", Some(&operator)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let bad = app.get("/me/security-log?limit=101", Some(&token)).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

on_both_backends!(the_security_log_shows_failures_changes_and_revocations);
