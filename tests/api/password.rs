//! Changing the password.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::{PASSWORD, error_code, spawn_app};

const NEW_PASSWORD: &str = "another-7-long-Passphrase";

async fn change(app: &tests::TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request(Method::PUT, "/me/password", Some(token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn a_password_change_with_sign_out_ends_every_other_session_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, current) = app.signed_up().await;
    let other = app.login(&email, PASSWORD).await;
    let response = change(
        &app,
        &current.token,
        json!({
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "sign_out_other_sessions": true
        }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sessions_revoked"], 1);
    assert_eq!(
        app.get("/me", Some(&other.token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/me", Some(&current.token)).await.status(),
        StatusCode::OK
    );

    let old = app
        .post(
            "/auth/login",
            None,
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    app.login(&email, NEW_PASSWORD).await;
}

async fn a_password_change_without_sign_out_keeps_the_other_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, current) = app.signed_up().await;
    let other = app.login(&email, PASSWORD).await;
    let response = change(
        &app,
        &current.token,
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get("/me", Some(&other.token)).await.status(),
        StatusCode::OK
    );
}

async fn a_password_change_needs_the_current_password_and_a_strong_new_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    let before = app.event_count().await;
    let wrong = change(
        &app,
        &session.token,
        json!({"current_password": "wrong-horse-7-battery", "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invalid_current_password");
    let weak = change(
        &app,
        &session.token,
        json!({"current_password": PASSWORD, "new_password": "password123"}),
    )
    .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(weak).await, "weak_password");
    let same = change(
        &app,
        &session.token,
        json!({"current_password": PASSWORD, "new_password": PASSWORD}),
    )
    .await;
    assert_eq!(same.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let missing = change(&app, &session.token, json!({"new_password": NEW_PASSWORD})).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.event_count().await,
        before,
        "refused changes append nothing"
    );
    app.login(&email, PASSWORD).await;
}

async fn guessing_the_current_password_is_throttled(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = change(
            &app,
            &session.token,
            json!({"current_password": "wrong-horse-7-battery", "new_password": NEW_PASSWORD}),
        )
        .await;
        statuses.push(response.status());
    }
    assert_eq!(statuses[0], StatusCode::FORBIDDEN);
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
}

on_both_backends!(
    a_password_change_with_sign_out_ends_every_other_session_at_once,
    a_password_change_without_sign_out_keeps_the_other_sessions,
    a_password_change_needs_the_current_password_and_a_strong_new_one,
    guessing_the_current_password_is_throttled,
);
