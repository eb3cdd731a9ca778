//! Idempotency keys and request ids.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::{PASSWORD, error_code, spawn_app};

async fn a_retry_with_the_same_key_gets_the_same_response_and_appends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let body = json!({"email": "erin@example.com", "password": PASSWORD, "display_name": "Erin"});
    let send = |body: Value| {
        app.request(Method::POST, "/auth/register", None)
            .header("Idempotency-Key", "register-erin-1")
            .json(&body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["idempotent-replayed"], "false");
    let first_body = first.text().await.unwrap();
    let events = app.event_count().await;

    let retry = send(body.clone()).await.unwrap();
    assert_eq!(
        retry.status(),
        StatusCode::CREATED,
        "not 409: the retry is the same request"
    );
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["content-type"], "application/json");
    assert_eq!(retry.text().await.unwrap(), first_body);
    assert_eq!(
        app.event_count().await,
        events,
        "the retry appended nothing"
    );

    let different =
        send(json!({"email": "erin2@example.com", "password": PASSWORD, "display_name": "Erin"}))
            .await
            .unwrap();
    assert_eq!(different.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(different).await, "idempotency_key_reused");
    assert_eq!(app.event_count().await, events);
}

async fn keys_are_scoped_to_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, a) = app.signed_up().await;
    let (_, b) = app.signed_up().await;
    for token in [&a.token, &b.token] {
        let response = app
            .request(Method::DELETE, "/me/sessions", Some(token))
            .header("Idempotency-Key", "same-key")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["idempotent-replayed"],
            "false",
            "another caller's key is not mine"
        );
    }
}

async fn a_replayed_sign_out_does_not_revoke_twice(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let logout = || {
        app.request(Method::POST, "/auth/logout", Some(&session.token))
            .header("Idempotency-Key", "logout-1")
            .send()
    };
    assert_eq!(logout().await.unwrap().status(), StatusCode::NO_CONTENT);
    let events = app.event_count().await;
    let retry = logout().await.unwrap();
    assert_eq!(retry.status(), StatusCode::NO_CONTENT);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(app.event_count().await, events);
}

async fn malformed_keys_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app
        .request(Method::POST, "/auth/login", None)
        .header("Idempotency-Key", "x".repeat(300))
        .json(&json!({"email": "a@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(response).await, "invalid_idempotency_key");
}

async fn the_request_id_is_echoed_and_recorded_as_correlation_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let response = app
        .request(Method::POST, "/auth/register", None)
        .header("X-Request-Id", &request_id)
        .header("Idempotency-Key", "k-123")
        .json(&json!({"email": "frank@example.com", "password": PASSWORD, "display_name": "Frank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], request_id.as_str());
    let events = app.raw_events().await;
    assert!(!events.is_empty());
    for event in &events {
        assert!(
            event.contains(&request_id),
            "correlation id in metadata: {event}"
        );
        assert!(
            event.contains("k-123"),
            "idempotency key in metadata: {event}"
        );
        assert!(
            event.contains("occurred_at")
                && event.contains("causation_id")
                && event.contains("actor")
        );
    }
    let generated = app.get("/healthz", None).await;
    assert!(uuid::Uuid::parse_str(generated.headers()["x-request-id"].to_str().unwrap()).is_ok());
}

/// A response holding a secret shown once is kept sealed, replayed only to a credential
/// that is still valid; a sign-in's session token is never kept at all.
async fn secrets_are_kept_sealed_and_replayed_only_to_live_credentials(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    let create = || {
        app.request(Method::POST, "/me/api-tokens", Some(&session.token))
            .header("Idempotency-Key", "token-1")
            .json(&json!({"label": "ci", "scopes": ["account:read"]}))
            .send()
    };
    let first = create().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let secret = first.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = app.read_model_rows().await.join("\n");
    assert!(
        !stored.contains(&secret),
        "the token secret is stored sealed"
    );
    let replayed = create().await.unwrap();
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(
        replayed.json::<Value>().await.unwrap()["token"],
        secret.as_str()
    );

    // Once the session is revoked, the same retry is refused, not replayed.
    assert_eq!(
        app.post("/auth/logout", Some(&session.token), &json!({}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let revoked = create().await.unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    assert!(!revoked.headers().contains_key("idempotent-replayed"));

    // A retried sign-in signs in again: its session token was never kept.
    let sign_in = || {
        app.request(Method::POST, "/auth/login", None)
            .header("Idempotency-Key", "login-1")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
    };
    let one = sign_in().await.unwrap().json::<Value>().await.unwrap();
    let two = sign_in().await.unwrap().json::<Value>().await.unwrap();
    assert_ne!(one["token"], two["token"]);
    let stored = app.read_model_rows().await.join("\n");
    assert!(!stored.contains(one["token"].as_str().unwrap()));

    // A kept request's fingerprint is keyed: a body holding a password (here a guess at
    // the current one) cannot be tested against it without the master key.
    let body =
        json!({"current_password": "Guess-1-of-many", "new_password": "an0ther-L0ng-secret"});
    let refused = app
        .request(Method::PUT, "/me/password", one["token"].as_str())
        .header("Idempotency-Key", "password-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let fingerprints: Vec<String> = sqlx::query_scalar("SELECT request_hash FROM idempotency_keys")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert!(!fingerprints.is_empty(), "the refusal is kept");
    let unkeyed = {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        for part in [
            &b"PUT"[..],
            b"/me/password",
            &serde_json::to_vec(&body).unwrap(),
        ] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hex::encode(hash.finalize())
    };
    assert!(!fingerprints.contains(&unkeyed), "{fingerprints:?}");
}

on_both_backends!(
    secrets_are_kept_sealed_and_replayed_only_to_live_credentials,
    a_retry_with_the_same_key_gets_the_same_response_and_appends_nothing,
    keys_are_scoped_to_the_caller,
    a_replayed_sign_out_does_not_revoke_twice,
    malformed_keys_are_refused,
    the_request_id_is_echoed_and_recorded_as_correlation_id,
);
