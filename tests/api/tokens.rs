//! Public API tokens, CLI tokens, the `/api/v1` surface and per-token usage logs.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{Session, TestApp, error_code, eventually, json_body, spawn_app, spawn_app_with};

async fn create_api_token(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.post("/me/api-tokens", Some(&session.token), &body)
        .await
}

async fn issue(app: &TestApp, session: &Session, scopes: &[&str]) -> (String, String) {
    let created = create_api_token(
        app,
        session,
        json!({"label": "render farm", "scopes": scopes}),
    )
    .await;
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

async fn api_tokens_are_shown_once_scoped_and_revoked_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;

    let created = create_api_token(
        &app,
        &session,
        json!({"label": "render farm", "scopes": ["credits:read", "generations:write"], "expires_in_days": 30}),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_body(created).await;
    let token = created["token"].as_str().unwrap().to_owned();
    let token_id = created["token_id"].as_str().unwrap().to_owned();
    assert!(
        token.starts_with("vsk_") && token.len() >= 4 + 43,
        "{token}"
    );
    assert!(created["expires_at"].is_string());

    let listed = json_body(app.get("/me/api-tokens", Some(&session.token)).await).await;
    let listed_text = listed.to_string();
    assert!(!listed_text.contains(&token), "the secret is shown once");
    let entry = &listed["tokens"][0];
    assert_eq!(entry["label"], "render farm");
    assert_eq!(
        entry["scopes"],
        json!(["credits:read", "generations:write"])
    );
    let hint = entry["hint"].as_str().unwrap();
    assert!(
        hint.starts_with("vsk_") && hint.ends_with(&token[token.len() - 4..]),
        "{hint}"
    );
    assert!(entry["last_used_at"].is_null());
    assert!(
        app.raw_events().await.iter().all(|e| !e.contains(&token)),
        "only a hash of the secret is stored"
    );

    // Scopes are enforced on every route, naming what is missing.
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &token)
            .await
            .status(),
        StatusCode::OK
    );
    let refused = call(&app, Method::GET, "/api/v1/me", &token).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = json_body(refused).await;
    assert_eq!(body["error"]["code"], "insufficient_scope");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("account:read")
    );
    assert_eq!(
        call(&app, Method::GET, "/api/v1/usage", &token)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    // Credentials stay in their lanes, and a mistyped token is refused.
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &session.token)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, Method::GET, "/me", &token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut typo = token.clone().into_bytes();
    typo[12] = if typo[12] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let mistyped = call(&app, Method::GET, "/api/v1/credits", &typo).await;
    assert_eq!(mistyped.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(mistyped).await, "invalid_token");

    // Spending through the token records which key spent what.
    let held = app
        .request(Method::POST, "/api/v1/generations", Some(&token))
        .json(
            &json!({"generation_id": "g-api-1", "estimated_credits": 20, "feature": "generation"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::CREATED);
    let completed = app
        .request(
            Method::POST,
            "/api/v1/generations/g-api-1/complete",
            Some(&token),
        )
        .json(&json!({"credits": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), StatusCode::OK);
    let history = json_body(
        app.get("/me/credits/transactions", Some(&session.token))
            .await,
    )
    .await;
    let spends: Vec<&Value> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["generation_id"] == "g-api-1")
        .collect();
    assert!(!spends.is_empty());
    assert!(
        spends
            .iter()
            .all(|t| t["api_token_id"] == token_id.as_str()),
        "{spends:?}"
    );
    let api_history =
        json_body(call(&app, Method::GET, "/api/v1/credits/transactions", &token).await).await;
    assert_eq!(api_history["transactions"], history["transactions"]);

    // Bad requests change nothing.
    for body in [
        json!({"label": "x", "scopes": []}),
        json!({"label": "x", "scopes": ["credits:write"]}),
        json!({"label": "", "scopes": ["credits:read"]}),
        json!({"label": "x", "scopes": ["credits:read"], "expires_in_days": 0}),
    ] {
        let refused = create_api_token(&app, &session, body.clone()).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let listed = json_body(app.get("/me/api-tokens", Some(&session.token)).await).await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1);

    // Another account cannot see or revoke it.
    let (_, stranger) = app.signed_up().await;
    assert_eq!(
        app.delete(&format!("/me/api-tokens/{token_id}"), Some(&stranger.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // The token is in this node's cache of verified tokens (on by default), and its
    // revocation still refuses it on the very next request.
    for _ in 0..3 {
        assert_eq!(
            call(&app, Method::GET, "/api/v1/credits", &token)
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert!(!app.state.tokens.cache.is_empty(), "the token is cached");
    let revoked = app
        .delete(&format!("/me/api-tokens/{token_id}"), Some(&session.token))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &token)
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "refused by the very next request"
    );
    let listed = json_body(app.get("/me/api-tokens", Some(&session.token)).await).await;
    assert_eq!(listed["tokens"], json!([]));
}

async fn a_rotated_token_keeps_its_old_secret_for_the_grace_period_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let (token_id, old) = issue(&app, &session, &["credits:read"]).await;
    let rotate = |body: Option<Value>| {
        let request = app.request(
            Method::POST,
            &format!("/me/api-tokens/{token_id}/rotate"),
            Some(&session.token),
        );
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
        .send()
    };
    let too_long = rotate(Some(json!({"grace_seconds": 86_401})))
        .await
        .unwrap();
    assert_eq!(too_long.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let rotated = rotate(Some(json!({"grace_seconds": 600}))).await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let new = json_body(rotated).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    for token in [&old, &new] {
        assert_eq!(
            call(&app, Method::GET, "/api/v1/credits", token)
                .await
                .status(),
            StatusCode::OK
        );
    }
    app.clock.advance(Duration::from_secs(601));
    let expired = call(&app, Method::GET, "/api/v1/credits", &old).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(expired).await, "token_expired");
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &new)
            .await
            .status(),
        StatusCode::OK
    );

    // Without a grace period the old secret dies at once. (The sign-in is no longer a
    // recent proof: `reauth.rs`.)
    app.reauthenticate(&session).await;
    let rotated = rotate(None).await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let newest = json_body(rotated).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &new)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &newest)
            .await
            .status(),
        StatusCode::OK
    );
}

/// A rotation answers once committed, before the read model shows it; the requests that
/// present the token's secrets wait for the read model instead. So the new secret works,
/// the old one (no grace period) is refused though this node had it cached, and the list
/// shows the new hint, each on the very next request. Repeated, in turn first, so that
/// each lands before the read model has shown the rotation in some rounds.
/// Rotations that no request follows do not pile up in the node's memory: what the read
/// model shows is let go when the next rotation is recorded.
async fn rotations_the_read_model_shows_are_not_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let (token_id, _) = issue(&app, &session, &["credits:read"]).await;
    for _ in 0..40 {
        app.rotate_api_token(&session.token, &token_id).await;
    }
    let projections = &app.state.core.projections;
    projections
        .wait_for_log(projections::Follower::AccessTokens, Duration::from_secs(10))
        .await
        .unwrap();
    app.rotate_api_token(&session.token, &token_id).await;
    let kept = app.state.tokens.cache.rotations_kept();
    assert!(
        kept <= 2,
        "{kept} rotations kept, of 41 the read model shows all but one"
    );
}

async fn a_rotation_is_seen_by_the_very_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let (token_id, mut secret) = issue(&app, &session, &["credits:read"]).await;
    for round in 0..30 {
        let ok = call(&app, Method::GET, "/api/v1/credits", &secret).await;
        assert_eq!(ok.status(), StatusCode::OK, "round {round}: before");
        let rotated = app.rotate_api_token(&session.token, &token_id).await;
        let new = rotated["token"].as_str().unwrap().to_owned();
        for check in 0..3 {
            match (round + check) % 3 {
                0 => {
                    let old = call(&app, Method::GET, "/api/v1/credits", &secret).await;
                    assert_eq!(old.status(), StatusCode::UNAUTHORIZED, "round {round}: old");
                }
                1 => {
                    let new = call(&app, Method::GET, "/api/v1/credits", &new).await;
                    assert_eq!(new.status(), StatusCode::OK, "round {round}: new");
                }
                _ => {
                    let listed =
                        json_body(app.get("/me/api-tokens", Some(&session.token)).await).await;
                    assert_eq!(
                        listed["tokens"][0]["hint"], rotated["hint"],
                        "round {round}: the list"
                    );
                }
            }
        }
        secret = new;
    }
}

async fn cli_tokens_and_api_tokens_are_kept_apart(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let all = [
        "account:read",
        "credits:read",
        "generations:write",
        "usage:read",
    ];
    let (api_id, api) = issue(&app, &session, &all).await;
    let created = app
        .post(
            "/me/cli-tokens",
            Some(&session.token),
            &json!({"label": "studio laptop", "kind": "device"}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created = json_body(created).await;
    let cli = created["token"].as_str().unwrap().to_owned();
    let cli_id = created["token_id"].as_str().unwrap().to_owned();
    assert!(cli.starts_with("vcli_"));

    let whoami = call(&app, Method::GET, "/cli/v1/me", &cli).await;
    assert_eq!(whoami.status(), StatusCode::OK);
    let whoami = json_body(whoami).await;
    assert_eq!(whoami["kind"], "cli_device");
    assert_eq!(whoami["token_id"], cli_id.as_str());

    // Neither is accepted where the other is expected, nor where sessions are.
    for (path, token) in [
        ("/api/v1/me", &cli),
        ("/api/v1/credits", &cli),
        ("/cli/v1/me", &api),
        ("/me", &cli),
    ] {
        assert_eq!(
            call(&app, Method::GET, path, token).await.status(),
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
    assert_eq!(
        call(&app, Method::GET, "/api/v1/me", &api).await.status(),
        StatusCode::OK
    );

    let cli_list = json_body(app.get("/me/cli-tokens", Some(&session.token)).await).await;
    assert_eq!(cli_list["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(cli_list["tokens"][0]["kind"], "cli_device");
    let api_list = json_body(app.get("/me/api-tokens", Some(&session.token)).await).await;
    assert_eq!(api_list["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.delete(&format!("/me/cli-tokens/{api_id}"), Some(&session.token))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "an API token is not a CLI token"
    );
    let rotated = app
        .post(
            &format!("/me/api-tokens/{cli_id}/rotate"),
            Some(&session.token),
            &json!({}),
        )
        .await;
    assert_eq!(
        rotated.status(),
        StatusCode::NOT_FOUND,
        "a CLI token is not rotated as an API token"
    );
    assert_eq!(error_code(rotated).await, "token_not_found");
    assert_eq!(
        call(&app, Method::GET, "/cli/v1/me", &cli).await.status(),
        StatusCode::OK,
        "and it keeps its secret"
    );
    let bad_kind = app
        .post(
            "/me/cli-tokens",
            Some(&session.token),
            &json!({"label": "x", "kind": "server"}),
        )
        .await;
    assert_eq!(bad_kind.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.delete(&format!("/me/cli-tokens/{cli_id}"), Some(&session.token))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&app, Method::GET, "/cli/v1/me", &cli).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn usage_is_counted_by_day_and_status_class_and_rate_limited(backend: Backend) {
    let app = spawn_app_with(backend, |setup| setup.serve.token_rate_limit = 5).await;
    let (_, session) = app.signed_up().await;
    let (token_id, token) = issue(&app, &session, &["credits:read"]).await;
    let get = |path: &'static str| {
        app.request(Method::GET, path, Some(&token))
            .header("user-agent", "UsageProbe/1.0")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            get("/api/v1/credits").await.unwrap().status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        get("/api/v1/me").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("/api/v1/credits").await.unwrap().status(),
        StatusCode::OK
    );
    let limited = get("/api/v1/credits").await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().contains_key("retry-after"));
    // Another token of the same account has a budget of its own.
    let (_, other) = issue(&app, &session, &["credits:read"]).await;
    assert_eq!(
        call(&app, Method::GET, "/api/v1/credits", &other)
            .await
            .status(),
        StatusCode::OK
    );

    // Counts reach the usage log within a flush interval.
    let path = format!("/me/api-tokens/{token_id}/usage");
    let (app, path, session_token) = (&app, &path, &session.token);
    let usage = eventually(Duration::from_secs(15), || async move {
        let usage = json_body(app.get(path, Some(session_token)).await).await;
        let counted = usage["days"][0]["ok"].as_i64().unwrap_or(0)
            + usage["days"][0]["client_errors"].as_i64().unwrap_or(0);
        if counted >= 6 {
            Ok(usage)
        } else {
            Err(format!("{counted} of 6 requests counted: {usage}"))
        }
    })
    .await;
    let today = &app.clock_now_rfc3339()[..10];
    assert_eq!(
        usage["days"],
        json!([{"day": today, "ok": 4, "client_errors": 2, "server_errors": 0}]),
        "{usage}"
    );
    assert_eq!(usage["last_user_agent"], "UsageProbe/1.0");
    assert_eq!(usage["last_ip"], "127.0.0.1");
    assert!(usage["last_used_at"].is_string());
    let listed = json_body(app.get("/me/api-tokens", Some(&session.token)).await).await;
    let entry = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == token_id.as_str())
        .unwrap()
        .clone();
    assert!(entry["last_used_at"].is_string(), "{entry}");
    // The IP and user agent are personal: sealed in the log like the rest.
    assert!(
        app.raw_events()
            .await
            .iter()
            .all(|e| !e.contains("UsageProbe")),
        "user agents are not in the log in clear"
    );
}

/// Requests counted in memory all reach the log: many in parallel (through the token
/// cache), then a graceful shutdown flushes what the timer has not.
async fn every_request_is_counted_once_flushed(backend: Backend) {
    const REQUESTS: usize = 48;
    let mut app = spawn_app_with(backend, |setup| {
        // Only the shutdown flushes.
        setup.serve.activity_flush_interval = Duration::from_secs(3600);
        setup.serve.token_rate_limit = 1_000;
    })
    .await;
    let (_, session) = app.signed_up().await;
    let (token_id, token) = issue(&app, &session, &["credits:read"]).await;
    let requests = (0..REQUESTS).map(|_| call(&app, Method::GET, "/api/v1/credits", &token));
    for answer in futures_util::future::join_all(requests).await {
        assert_eq!(answer.status(), StatusCode::OK);
    }
    let refused = call(&app, Method::GET, "/api/v1/me", &token).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    app.shutdown().await;

    let db = store::Database::connect(&app.database_url, 1)
        .await
        .unwrap();
    let sql = match backend {
        Backend::Sqlite => "SELECT data FROM events WHERE event_type = 'TokenUsed'",
        Backend::Postgres => "SELECT data::text FROM events WHERE event_type = 'TokenUsed'",
    };
    let flushed: Vec<String> = sqlx::query_scalar(sql).fetch_all(db.pool()).await.unwrap();
    db.close().await;
    let (mut ok, mut client_errors) = (0, 0);
    for data in &flushed {
        let event: Value = serde_json::from_str(data).unwrap();
        assert_eq!(event["token_id"], token_id.as_str(), "{event}");
        for day in event["days"].as_array().unwrap() {
            ok += day["ok"].as_u64().unwrap();
            client_errors += day["client_errors"].as_u64().unwrap();
        }
    }
    assert_eq!((ok, client_errors), (REQUESTS as u64, 1), "{flushed:?}");
}

on_both_backends!(
    every_request_is_counted_once_flushed,
    api_tokens_are_shown_once_scoped_and_revoked_at_once,
    a_rotated_token_keeps_its_old_secret_for_the_grace_period_only,
    a_rotation_is_seen_by_the_very_next_request,
    rotations_the_read_model_shows_are_not_kept,
    cli_tokens_and_api_tokens_are_kept_apart,
    usage_is_counted_by_day_and_status_class_and_rate_limited,
);
