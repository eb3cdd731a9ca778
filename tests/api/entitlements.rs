//! Plan entitlements: member seats, API access and the scopes offered, as
//! `GET /me/entitlements` shows them and as API tokens are created and used under them,
//! with the shipped catalog, a catalog that narrows them, and the deployment's flags.

use api::config::Switch;
use domain::access_token::Scope;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{Session, TestApp, error_code, json_body, spawn_app, spawn_app_with};

const DAY: Duration = Duration::from_secs(86_400);

const EVERY_SCOPE: [&str; 4] = [
    "account:read",
    "credits:read",
    "generations:write",
    "usage:read",
];

/// Free accounts and `basic` without API access; `pro` with two scopes.
const NARROW_CATALOG: &str = r#"
currency = "EUR"

[free]
seats = 1
api_access = false

[[plans]]
id = "basic"
name = "Basic"
price = 500
credits_per_period = 100
period_days = 30
rank = 1
seats = 2
api_access = false

[[plans]]
id = "pro"
name = "Pro"
price = 2000
credits_per_period = 1000
period_days = 30
rank = 2
seats = 8
scopes = ["account:read", "credits:read"]
"#;

/// A service on `catalog`, with sessions that outlive months of the test clock.
async fn spawn_with_catalog(backend: Backend, catalog: &str) -> TestApp {
    let path = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&path, catalog).unwrap();
    let app = spawn_app_with(backend, |setup| {
        setup.serve.catalog = Some(path.clone());
        setup.serve.session_ttl = 365 * DAY;
        setup.serve.session_idle_timeout = 365 * DAY;
    })
    .await;
    std::fs::remove_file(path).unwrap();
    app
}

async fn entitlements(app: &TestApp, session: &Session) -> Value {
    let response = app.get("/me/entitlements", Some(&session.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await
}

async fn create_api_token(app: &TestApp, session: &Session, scopes: &[&str]) -> reqwest::Response {
    app.post(
        "/me/api-tokens",
        Some(&session.token),
        &json!({"label": "render farm", "scopes": scopes}),
    )
    .await
}

async fn issue(app: &TestApp, session: &Session, scopes: &[&str]) -> (String, String) {
    let created = create_api_token(app, session, scopes).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_body(created).await;
    (
        created["token_id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    )
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    app.request(method, path, Some(token)).send().await.unwrap()
}

/// The status of `GET /api/v1/me` with `token`, and the error code if refused.
async fn api_me(app: &TestApp, token: &str) -> (StatusCode, Option<String>) {
    let response = call(app, Method::GET, "/api/v1/me", token).await;
    let status = response.status();
    if status.is_success() {
        (status, None)
    } else {
        (status, Some(error_code(response).await))
    }
}

async fn listed_api_tokens(app: &TestApp, session: &Session) -> Vec<String> {
    json_body(app.get("/me/api-tokens", Some(&session.token)).await).await["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn change_plan(app: &TestApp, session: &Session, plan: &str) {
    app.reauthenticate(session).await;
    let response = app
        .put(
            "/me/subscription",
            Some(&session.token),
            &json!({"plan_id": plan}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "changing to {plan}");
}

async fn cli_token_works(app: &TestApp, session: &Session) {
    let created = app
        .post(
            "/me/cli-tokens",
            Some(&session.token),
            &json!({"label": "laptop", "kind": "device"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let token = json_body(created).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(app, Method::GET, "/cli/v1/me", &token).await.status(),
        StatusCode::OK
    );
}

async fn the_shipped_catalog_gives_every_account_api_access_with_every_scope(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    assert_eq!(
        entitlements(&app, &session).await,
        json!({
            "plan": null,
            "seats": {"allowed": 3, "used": 0},
            "api_access": true,
            "scopes": EVERY_SCOPE,
        })
    );
    let (_, token) = issue(&app, &session, &EVERY_SCOPE).await;
    assert_eq!(api_me(&app, &token).await, (StatusCode::OK, None));

    change_plan(&app, &session, "studio").await;
    assert_eq!(
        entitlements(&app, &session).await,
        json!({
            "plan": "studio",
            "seats": {"allowed": 50, "used": 0},
            "api_access": true,
            "scopes": EVERY_SCOPE,
        })
    );
    assert_eq!(api_me(&app, &token).await, (StatusCode::OK, None));
    assert_eq!(
        app.get("/me/entitlements", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn losing_api_access_refuses_tokens_until_it_returns(backend: Backend) {
    let app = spawn_with_catalog(backend, NARROW_CATALOG).await;
    let (_, session) = app.signed_up().await;

    // A free account of this catalog has no API access: no API token, but CLI tokens.
    assert_eq!(
        entitlements(&app, &session).await,
        json!({"plan": null, "seats": {"allowed": 1, "used": 0}, "api_access": false, "scopes": []})
    );
    let refused = create_api_token(&app, &session, &["account:read"]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "api_access_disabled");
    cli_token_works(&app, &session).await;

    // Pro offers API access with two scopes; another is refused by name.
    change_plan(&app, &session, "pro").await;
    assert_eq!(
        entitlements(&app, &session).await,
        json!({
            "plan": "pro",
            "seats": {"allowed": 8, "used": 0},
            "api_access": true,
            "scopes": ["account:read", "credits:read"],
        })
    );
    let not_offered =
        create_api_token(&app, &session, &["account:read", "generations:write"]).await;
    assert_eq!(not_offered.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_body(not_offered).await;
    assert_eq!(body["error"]["code"], "scope_not_offered");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("generations:write"),
        "{body}"
    );
    let (token_id, token) = issue(&app, &session, &["account:read", "credits:read"]).await;
    assert_eq!(api_me(&app, &token).await, (StatusCode::OK, None));

    // A downgrade waits for the end of the period, and so does the loss of access.
    change_plan(&app, &session, "basic").await;
    assert_eq!(api_me(&app, &token).await, (StatusCode::OK, None));
    assert_eq!(entitlements(&app, &session).await["plan"], "pro");
    app.clock.advance(30 * DAY);
    assert_eq!(app.tick().await.subscriptions, 1);
    assert_eq!(
        api_me(&app, &token).await,
        (
            StatusCode::FORBIDDEN,
            Some("api_access_disabled".to_owned())
        )
    );
    assert_eq!(
        listed_api_tokens(&app, &session).await,
        vec![token_id.clone()],
        "still listed"
    );
    assert_eq!(
        entitlements(&app, &session).await,
        json!({"plan": "basic", "seats": {"allowed": 2, "used": 0}, "api_access": false, "scopes": []})
    );
    app.reauthenticate(&session).await;
    let refused = create_api_token(&app, &session, &["account:read"]).await;
    assert_eq!(error_code(refused).await, "api_access_disabled");
    cli_token_works(&app, &session).await;

    // Upgrading restores access at once, with the same token.
    change_plan(&app, &session, "pro").await;
    assert_eq!(api_me(&app, &token).await, (StatusCode::OK, None));

    // A cancelled plan keeps access until its period ends.
    app.reauthenticate(&session).await;
    let cancelled = app.delete("/me/subscription", Some(&session.token)).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(api_me(&app, &token).await, (StatusCode::OK, None));
    app.clock.advance(31 * DAY);
    assert_eq!(app.tick().await.subscriptions, 1);
    assert_eq!(
        api_me(&app, &token).await,
        (
            StatusCode::FORBIDDEN,
            Some("api_access_disabled".to_owned())
        )
    );
    assert_eq!(entitlements(&app, &session).await["plan"], Value::Null);
    assert_eq!(listed_api_tokens(&app, &session).await, vec![token_id]);
}

async fn the_deployment_turns_api_access_off_or_narrows_its_scopes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let (token_id, token) = issue(&app, &session, &["account:read", "generations:write"]).await;

    // A node started with --api-access off refuses the token at once, and lists it.
    let off = app.peer(|setup| setup.serve.api_access = Switch::Off).await;
    assert_eq!(
        api_me(&off, &token).await,
        (
            StatusCode::FORBIDDEN,
            Some("api_access_disabled".to_owned())
        )
    );
    assert_eq!(
        listed_api_tokens(&off, &session).await,
        vec![token_id.clone()]
    );
    let refused = create_api_token(&off, &session, &["account:read"]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(refused).await, "api_access_disabled");
    assert_eq!(
        entitlements(&off, &session).await,
        json!({"plan": null, "seats": {"allowed": 3, "used": 0}, "api_access": false, "scopes": []})
    );
    cli_token_works(&off, &session).await;
    assert_eq!(
        api_me(&app, &token).await,
        (StatusCode::OK, None),
        "the other node's flags are its own"
    );

    // --api-scopes offers only what it lists, to new tokens and existing ones.
    let narrow = app
        .peer(|setup| setup.serve.api_scopes = Some(vec![Scope::CreditsRead, Scope::AccountRead]))
        .await;
    assert_eq!(
        entitlements(&narrow, &session).await["scopes"],
        json!(["account:read", "credits:read"])
    );
    let not_offered = create_api_token(&narrow, &session, &["generations:write"]).await;
    assert_eq!(not_offered.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_body(not_offered).await;
    assert_eq!(body["error"]["code"], "scope_not_offered");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("generations:write")
    );
    assert_eq!(
        create_api_token(&narrow, &session, &["credits:read"])
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(api_me(&narrow, &token).await, (StatusCode::OK, None));
    let hold = narrow
        .request(Method::POST, "/api/v1/generations", Some(&token))
        .json(&json!({"generation_id": "g-1", "estimated_credits": 1, "feature": "generation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hold.status(), StatusCode::FORBIDDEN);
    let body = json_body(hold).await;
    assert_eq!(body["error"]["code"], "insufficient_scope");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("generations:write")
    );
}

on_both_backends!(
    the_shipped_catalog_gives_every_account_api_access_with_every_scope,
    losing_api_access_refuses_tokens_until_it_returns,
    the_deployment_turns_api_access_off_or_narrows_its_scopes,
);
