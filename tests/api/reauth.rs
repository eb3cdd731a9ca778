//! The changes a stolen session could use to outlive a password change need a recent proof
//! of the password (the sign-in, or `POST /auth/reauthenticate` within the window): turning
//! 2FA on, creating API and CLI tokens, rotating an API token, changing the plan. API tokens
//! always expire, and a password change can revoke every token at once.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, Session, TestApp, error_code, json_body, spawn_app, spawn_app_with};

/// Just past the default re-authentication window (10 minutes).
const STALE: Duration = Duration::from_secs(11 * 60);
const DAY: u64 = 86_400;

async fn tokens_of(app: &TestApp, session: &Session, path: &str) -> Vec<Value> {
    json_body(app.get(path, Some(&session.token)).await).await["tokens"]
        .as_array()
        .expect("tokens")
        .clone()
}

async fn api_token(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.post("/me/api-tokens", Some(&session.token), &body)
        .await
}

async fn cli_token(app: &TestApp, session: &Session) -> reqwest::Response {
    app.post(
        "/me/cli-tokens",
        Some(&session.token),
        &json!({"label": "laptop", "kind": "device"}),
    )
    .await
}

async fn change_plan(app: &TestApp, session: &Session, plan: &str) -> reqwest::Response {
    app.request(Method::PUT, "/me/subscription", Some(&session.token))
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap()
}

async fn refused_without_a_recent_proof(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
    assert_eq!(
        error_code(response).await,
        "reauthentication_required",
        "{what}"
    );
}

async fn turning_2fa_on_tokens_and_plan_changes_need_a_recent_proof(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    // Enrolment started while the sign-in is fresh…
    let enrolment = json_body(app.post("/me/totp", Some(&session.token), &json!({})).await).await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let events_before = app.event_count().await;

    app.clock.advance(STALE);
    // …cannot be confirmed once it is stale, even with a right code; nor can anything
    // else of the list be done.
    refused_without_a_recent_proof(
        app.post(
            "/me/totp/confirm",
            Some(&session.token),
            &json!({"code": app.totp_now(&secret)}),
        )
        .await,
        "confirming 2FA",
    )
    .await;
    refused_without_a_recent_proof(
        app.post("/me/totp", Some(&session.token), &json!({})).await,
        "enrolling in 2FA",
    )
    .await;
    refused_without_a_recent_proof(
        api_token(
            &app,
            &session,
            json!({"label": "stolen", "scopes": ["credits:read"]}),
        )
        .await,
        "an API token",
    )
    .await;
    refused_without_a_recent_proof(cli_token(&app, &session).await, "a CLI token").await;
    refused_without_a_recent_proof(change_plan(&app, &session, "starter").await, "a plan").await;
    assert_eq!(app.event_count().await, events_before, "nothing changed");
    assert!(tokens_of(&app, &session, "/me/api-tokens").await.is_empty());
    assert!(tokens_of(&app, &session, "/me/cli-tokens").await.is_empty());
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["two_factor_enabled"], false);

    // With the password proved again, each goes through.
    app.reauthenticate(&session).await;
    let confirmed = app
        .post(
            "/me/totp/confirm",
            Some(&session.token),
            &json!({"code": app.totp_now(&secret)}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(
        api_token(
            &app,
            &session,
            json!({"label": "ci", "scopes": ["credits:read"]})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        cli_token(&app, &session).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        change_plan(&app, &session, "starter").await.status(),
        StatusCode::OK
    );
}

/// What the API prints for the service's clock plus `days`.
fn days_from_now(app: &TestApp, days: u64) -> String {
    commands::Clock::now(&*app.clock)
        .plus(Duration::from_secs(days * DAY))
        .to_rfc3339()
}

async fn api_tokens_expire_by_default_and_at_most_after_the_configured_days(backend: Backend) {
    let app = spawn_app_with(backend, |setup| setup.serve.limits.api_token_max_days = 30).await;
    let (_, session) = app.signed_up().await;
    // 90 days by default, but never past the configured maximum.
    let created = json_body(
        api_token(
            &app,
            &session,
            json!({"label": "a", "scopes": ["usage:read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(created["expires_at"], days_from_now(&app, 30));
    let created = json_body(
        api_token(
            &app,
            &session,
            json!({"label": "b", "scopes": ["usage:read"], "expires_in_days": 30}),
        )
        .await,
    )
    .await;
    assert_eq!(created["expires_at"], days_from_now(&app, 30));
    let too_long = api_token(
        &app,
        &session,
        json!({"label": "c", "scopes": ["usage:read"], "expires_in_days": 31}),
    )
    .await;
    assert_eq!(too_long.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_body(too_long).await;
    assert_eq!(body["error"]["code"], "validation_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("between 1 and 30"), "{message}");
    // The document states the configured bound.
    let document = json_body(app.get("/openapi.json", None).await).await;
    let days =
        &document["components"]["schemas"]["CreateApiToken"]["properties"]["expires_in_days"];
    assert_eq!(days["maximum"], 30, "{days}");
    assert_eq!(days["minimum"], 1, "{days}");

    // With the default configuration, 90 days.
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let created = json_body(
        api_token(
            &app,
            &session,
            json!({"label": "a", "scopes": ["usage:read"]}),
        )
        .await,
    )
    .await;
    assert_eq!(created["expires_at"], days_from_now(&app, 90));
}

async fn status_with(app: &TestApp, path: &str, token: &str) -> StatusCode {
    app.get(path, Some(token)).await.status()
}

async fn a_password_change_can_revoke_every_token_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let api = json_body(
        api_token(
            &app,
            &session,
            json!({"label": "ci", "scopes": ["account:read"]}),
        )
        .await,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cli = json_body(cli_token(&app, &session).await).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status_with(&app, "/api/v1/me", &api).await, StatusCode::OK);
    assert_eq!(status_with(&app, "/cli/v1/me", &cli).await, StatusCode::OK);

    // Without `revoke_tokens`, tokens live on.
    let kept = app
        .put(
            "/me/password",
            Some(&session.token),
            &json!({"current_password": PASSWORD, "new_password": "an0ther-Long-secret"}),
        )
        .await;
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(json_body(kept).await["tokens_revoked"], 0);
    assert_eq!(status_with(&app, "/api/v1/me", &api).await, StatusCode::OK);

    let revoked = app
        .put(
            "/me/password",
            Some(&session.token),
            &json!({
                "current_password": "an0ther-Long-secret",
                "new_password": "a-Third-secret-42",
                "revoke_tokens": true,
            }),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(json_body(revoked).await["tokens_revoked"], 2);
    // Refused by the very next request, and gone from the lists.
    assert_eq!(
        status_with(&app, "/api/v1/me", &api).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_with(&app, "/cli/v1/me", &cli).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(tokens_of(&app, &session, "/me/api-tokens").await.is_empty());
    assert!(tokens_of(&app, &session, "/me/cli-tokens").await.is_empty());
    // The session that changed it stays signed in, and may create tokens again.
    let again = api_token(
        &app,
        &session,
        json!({"label": "new", "scopes": ["account:read"]}),
    )
    .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let again = json_body(again).await["token"].as_str().unwrap().to_owned();
    assert_eq!(
        status_with(&app, "/api/v1/me", &again).await,
        StatusCode::OK
    );
    assert_eq!(tokens_of(&app, &session, "/me/api-tokens").await.len(), 1);
}

/// A new secret for an existing token would outlive the session that asked for it, as a
/// new token would: a stale session cannot rotate one, and the old secret keeps working.
async fn rotating_an_api_token_needs_a_recent_proof(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let issued = json_body(
        api_token(
            &app,
            &session,
            json!({"label": "ci", "scopes": ["credits:read"]}),
        )
        .await,
    )
    .await;
    let (id, secret) = (
        issued["token_id"].as_str().unwrap().to_owned(),
        issued["token"].as_str().unwrap().to_owned(),
    );
    let path = format!("/me/api-tokens/{id}/rotate");
    let rotate = || {
        app.request(Method::POST, &path, Some(&session.token))
            .json(&json!({}))
            .send()
    };
    let events_before = app.event_count().await;
    app.clock.advance(STALE);
    refused_without_a_recent_proof(rotate().await.unwrap(), "rotating an API token").await;
    assert_eq!(app.event_count().await, events_before, "nothing changed");
    let still = app.get("/api/v1/credits", Some(&secret)).await;
    assert_eq!(still.status(), StatusCode::OK, "the old secret still works");

    app.reauthenticate(&session).await;
    let rotated = rotate().await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    assert_ne!(json_body(rotated).await["token"], json!(secret));
    let old = app.get("/api/v1/credits", Some(&secret)).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "replaced, no grace");
}

on_both_backends!(
    rotating_an_api_token_needs_a_recent_proof,
    turning_2fa_on_tokens_and_plan_changes_need_a_recent_proof,
    api_tokens_expire_by_default_and_at_most_after_the_configured_days,
    a_password_change_can_revoke_every_token_at_once,
);
