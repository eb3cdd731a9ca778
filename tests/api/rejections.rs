//! Every rejection is the JSON error: malformed path parameters, query strings and bodies,
//! bodies over the limit, methods a path does not have and paths that do not exist.

use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::{TestApp, json_body, spawn_app};

/// The status and code of an error answered as `{"error": {"code", "message"}}` with
/// `Content-Type: application/json`.
async fn json_error(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/json", "{status}");
    let body: Value = response.json().await.expect("a JSON body");
    assert!(body["error"]["message"].is_string(), "{body}");
    let code = body["error"]["code"].as_str().expect("a code").to_owned();
    (status, code)
}

async fn send(app: &TestApp, method: Method, path: &str, token: Option<&str>) -> Response {
    app.request(method, path, token).send().await.unwrap()
}

async fn path_and_query_rejections_are_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let token = Some(session.token.as_str());

    let bad_limit = send(
        &app,
        Method::GET,
        "/me/credits/transactions?limit=abc",
        token,
    )
    .await;
    assert_eq!(
        json_error(bad_limit).await,
        (StatusCode::BAD_REQUEST, "invalid_query".into())
    );
    let no_token = send(&app, Method::GET, "/unsubscribe", None).await;
    assert_eq!(
        json_error(no_token).await,
        (StatusCode::BAD_REQUEST, "invalid_query".into())
    );
    let not_utf8 = send(&app, Method::GET, "/profiles/%FF%FE", None).await;
    assert_eq!(
        json_error(not_utf8).await,
        (StatusCode::BAD_REQUEST, "invalid_path".into())
    );
    // An id that is not a UUID names nothing.
    for (method, path) in [
        (Method::DELETE, "/me/api-tokens/None"),
        (Method::GET, "/me/api-tokens/None/usage"),
        (Method::POST, "/me/api-tokens/None/rotate"),
        (Method::DELETE, "/me/cli-tokens/nope"),
    ] {
        let response = send(&app, method, path, token).await;
        assert_eq!(
            json_error(response).await,
            (StatusCode::NOT_FOUND, "token_not_found".into()),
            "{path}"
        );
    }
    // An empty cursor is the first page.
    let first = send(&app, Method::GET, "/me/credits/transactions?cursor=", token).await;
    assert_eq!(first.status(), StatusCode::OK);
    let with_plus = send(
        &app,
        Method::GET,
        "/me/credits/transactions?cursor=%2B1-2",
        token,
    )
    .await;
    assert_eq!(
        json_error(with_plus).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed".into())
    );
}

async fn body_rejections_are_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let register = |body: reqwest::Body, content_type: Option<&'static str>| {
        let mut request = app.request(Method::POST, "/auth/register", None).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        request.send()
    };
    let cases = [
        (
            "{",
            Some("application/json"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            r#"{"email": 1}"#,
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "{}",
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        // serde would read the struct from an array of its fields in order.
        (
            r#"["someone@example.com", "correct-horse-7-battery", "Someone"]"#,
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "null",
            Some("application/json"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, content_type, status, code) in cases {
        let response = register(body.into(), content_type).await.unwrap();
        assert_eq!(json_error(response).await, (status, code.into()), "{body}");
    }
    // Bodies over the limit: of JSON (`ApiJson`), and raw (the webhook reads bytes).
    let huge = format!(r#"{{"email": "{}"}}"#, "x".repeat(3 << 20));
    for path in ["/auth/register", "/webhooks/payments"] {
        let (status, content_type, body) =
            tests::post_unread(&app, path, &[], huge.as_bytes()).await;
        assert_eq!(status, 413, "{path}");
        assert_eq!(content_type, "application/json", "{path}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{path}");
    }
}

async fn integers_are_read_as_json_schema_counts_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let created = app
        .post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "ci", "scopes": ["credits:read"], "expires_in_days": 30.0}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = json_body(created).await["token_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fraction = app
        .post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "ci", "scopes": ["credits:read"], "expires_in_days": 30.5}),
        )
        .await;
    assert_eq!(
        json_error(fraction).await,
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body".into())
    );
    // `null` is no body: no grace period.
    let rotated = app
        .post(
            &format!("/me/api-tokens/{id}/rotate"),
            Some(&session.token),
            &Value::Null,
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
}

async fn unknown_paths_and_methods_are_json_whatever_the_headers(backend: Backend) {
    let app = spawn_app(backend).await;
    let patch = app
        .request(Method::PATCH, "/auth/login", None)
        .send()
        .await
        .unwrap();
    assert_eq!(patch.headers()[ALLOW], "POST");
    assert_eq!(
        json_error(patch).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
    let get_me = app.request(Method::PUT, "/me", None).send().await.unwrap();
    let allow = get_me.headers()[ALLOW].to_str().unwrap().to_owned();
    let mut allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
    allowed.sort_unstable();
    assert_eq!(allowed, ["DELETE", "GET", "HEAD"]);
    assert_eq!(json_error(get_me).await.0, StatusCode::METHOD_NOT_ALLOWED);
    // The idempotency check runs only for routes that exist.
    for (method, path, status) in [
        (
            Method::PUT,
            "/auth/register",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::POST, "/nowhere", StatusCode::NOT_FOUND),
    ] {
        let response = app
            .request(method, path, None)
            .header("idempotency-key", "not a valid key")
            .send()
            .await
            .unwrap();
        assert_eq!(json_error(response).await.0, status, "{path}");
    }
}

on_both_backends!(
    path_and_query_rejections_are_json,
    body_rejections_are_json,
    integers_are_read_as_json_schema_counts_them,
    unknown_paths_and_methods_are_json_whatever_the_headers,
);
