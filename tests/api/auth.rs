//! Registration, sign-in, sign-out and the errors around them.

use reqwest::StatusCode;
use serde_json::json;
use store::Backend;
use tests::{PASSWORD, error_code, spawn_app, spawn_app_with};

async fn a_newcomer_registers_signs_in_reads_their_account_and_signs_out(backend: Backend) {
    let app = spawn_app(backend).await;
    let account_id = app.register("Ada@Example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    assert!(session.token.len() >= 47, "at least 256 bits of token");

    let me: serde_json::Value = app
        .get("/me", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["account_id"], account_id.as_str());
    assert_eq!(me["email"], "Ada@Example.com");
    assert_eq!(me["display_name"], "Test User");
    assert!(me["created_at"].as_str().unwrap().ends_with('Z'));

    let logout = app
        .post("/auth/logout", Some(&session.token), &json!({}))
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    // Refused by the very next request.
    let after = app.get("/me", Some(&session.token)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(after).await, "invalid_session");
}

async fn an_address_registers_once_whatever_its_case(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("bob@example.com").await;
    let before = app.event_count().await;
    let again = app
        .post(
            "/auth/register",
            None,
            &json!({"email": "BOB@example.COM", "password": PASSWORD, "display_name": "Bob"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "email_taken");
    assert_eq!(
        app.event_count().await,
        before,
        "a refused registration appends nothing"
    );
}

async fn bad_registrations_get_a_clear_4xx_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (
            json!({"email": "x@example.com", "password": "short1!", "display_name": "X"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "x@example.com", "password": "password1!", "display_name": "X"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "x@example.com", "password": "nosymbol123", "display_name": "X"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "x@example.com", "password": "no-number-here", "display_name": "X"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "x@example.com", "password": format!("{}1!", "a".repeat(127)), "display_name": "X"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "not-an-address", "password": PASSWORD, "display_name": "X"}),
            422,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "display_name": ""}),
            422,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD, "display_name": "x".repeat(65)}),
            422,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "password": PASSWORD}),
            422,
            "invalid_body",
        ),
        (
            json!({"email": 42, "password": PASSWORD, "display_name": "X"}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let response = app.post("/auth/register", None, &body).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(error_code(response).await, code, "{body}");
    }
    let malformed = app
        .request(reqwest::Method::POST, "/auth/register", None)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(malformed).await, "malformed_json");
    let not_json = app
        .request(reqwest::Method::POST, "/auth/register", None)
        .body("email=x")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(not_json).await, "unsupported_media_type");
    assert_eq!(app.event_count().await, 0, "nothing was written");
}

async fn wrong_credentials_get_the_same_answer_whether_or_not_the_address_exists(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("carol@example.com").await;
    let mut bodies = Vec::new();
    for (email, password) in [
        ("carol@example.com", "wrong-horse-7-battery"),
        ("nobody@example.com", PASSWORD),
        ("not even an address", PASSWORD),
    ] {
        let response = app
            .post(
                "/auth/login",
                None,
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        bodies.push(response.text().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert!(bodies[0].contains("invalid_credentials"));
}

async fn repeated_failures_are_throttled_without_locking_the_owner_out(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    app.register("dave@example.com").await;
    let attempt = |ip: &'static str, password: &'static str| {
        app.request(reqwest::Method::POST, "/auth/login", None)
            .header("X-Forwarded-For", ip)
            .json(&json!({"email": "dave@example.com", "password": password}))
            .send()
    };
    // Five free attempts, then the back-off.
    for _ in 0..5 {
        assert_eq!(
            attempt("203.0.113.9", "wrong-horse-7-battery")
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let throttled = attempt("203.0.113.9", "wrong-horse-7-battery")
        .await
        .unwrap();
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after));
    assert_eq!(error_code(throttled).await, "too_many_attempts");
    // Even the right password is refused from the throttled address for now...
    assert_eq!(
        attempt("203.0.113.9", PASSWORD).await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...but the owner, elsewhere, signs in.
    assert_eq!(
        attempt("198.51.100.7", PASSWORD).await.unwrap().status(),
        StatusCode::CREATED
    );
}

async fn routes_need_a_valid_bearer_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = app.get("/me", None).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(missing).await, "missing_token");
    for token in ["garbage", "ses_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let response = app.get("/me/sessions", Some(token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(response).await, "invalid_session");
    }
    let logout = app.post("/auth/logout", None, &json!({})).await;
    assert_eq!(logout.status(), StatusCode::UNAUTHORIZED);
}

async fn sessions_expire_after_their_lifetime_and_when_idle(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.session_ttl = std::time::Duration::from_secs(3600);
        setup.serve.session_idle_timeout = std::time::Duration::from_secs(600);
    })
    .await;
    let (_, session) = app.signed_up().await;
    // Active every 9 minutes: never idle, until the absolute lifetime ends.
    for _ in 0..6 {
        app.clock.advance(std::time::Duration::from_secs(9 * 60));
        assert_eq!(
            app.get("/me", Some(&session.token)).await.status(),
            StatusCode::OK
        );
    }
    app.clock.advance(std::time::Duration::from_secs(7 * 60));
    let expired = app.get("/me", Some(&session.token)).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(expired).await, "session_expired");

    let (_, idle) = app.signed_up().await;
    app.clock.advance(std::time::Duration::from_secs(601));
    let response = app.get("/me", Some(&idle.token)).await;
    assert_eq!(error_code(response).await, "session_expired");
}

/// Sixty wrong passwords at once for one account from one address: they are counted as
/// they start, so only the free attempts reach the password check.
async fn a_burst_of_wrong_passwords_cannot_race_the_throttle(backend: Backend) {
    let app = spawn_app(backend).await;
    app.register("erin@example.com").await;
    let wrong = json!({"email": "erin@example.com", "password": "wrong-horse-7-battery"});
    let burst = (0..60).map(|_| app.post("/auth/login", None, &wrong));
    let statuses: Vec<StatusCode> = futures_util::future::join_all(burst)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let judged = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((1..=5).contains(&judged), "{judged} wrong passwords judged");
    assert_eq!(judged + refused, 60, "{statuses:?}");
}

on_both_backends!(
    a_burst_of_wrong_passwords_cannot_race_the_throttle,
    a_newcomer_registers_signs_in_reads_their_account_and_signs_out,
    an_address_registers_once_whatever_its_case,
    bad_registrations_get_a_clear_4xx_and_change_nothing,
    wrong_credentials_get_the_same_answer_whether_or_not_the_address_exists,
    repeated_failures_are_throttled_without_locking_the_owner_out,
    routes_need_a_valid_bearer_token,
    sessions_expire_after_their_lifetime_and_when_idle,
);
