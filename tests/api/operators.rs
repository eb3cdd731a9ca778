//! Operator tokens: they expire, an auditor is refused what needs an admin, and only they
//! see the read models' checkpoints in `/readyz`.

use api::extract::{Admin, Operator};
use axum::body::Body;
use axum::http::Request;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{error_code, json_body, spawn_app};
use tower::ServiceExt;

const DAY: Duration = Duration::from_secs(86_400);

async fn operator_tokens_expire(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, short) = app
        .operator_token_with("auditor", &["--expires-in-days", "1"])
        .await;
    let (_, default) = app.operator_token("admin").await;
    for token in [&short, &default] {
        let report = app.get("/admin/reconciliation", Some(token)).await;
        assert_eq!(report.status(), StatusCode::OK);
    }
    app.clock.advance(DAY + Duration::from_secs(60));
    let expired = app.get("/admin/reconciliation", Some(&short)).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(expired).await, "admin_token_expired");
    let expired = app.get("/readyz", Some(&short)).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    // The default lifetime is 90 days.
    let report = app.get("/admin/reconciliation", Some(&default)).await;
    assert_eq!(report.status(), StatusCode::OK);
    app.clock.advance(89 * DAY);
    let expired = app.get("/admin/mail/dead-letters", Some(&default)).await;
    assert_eq!(error_code(expired).await, "admin_token_expired");

    // The CLI refuses a lifetime out of range.
    let mut args: Vec<String> = [
        "accounts",
        "operator-token",
        "create",
        "--role",
        "admin",
        "--expires-in-days",
        "0",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(app.storage_args.clone());
    assert!(api::cli::run_from(args).await.is_err());
}

async fn an_auditor_is_refused_what_needs_an_admin(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, auditor) = app.operator_token("auditor").await;
    let (_, admin) = app.operator_token("admin").await;
    // No route changes anything as an operator yet; one would take `Operator<Admin>`.
    let router = axum::Router::new()
        .route(
            "/admin/a-write",
            axum::routing::post(|operator: Operator<Admin>| async move {
                operator.token_id.to_string()
            }),
        )
        .with_state(app.state.clone());
    let call = |token: &str| {
        Request::post("/admin/a-write")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let refused = router.clone().oneshot(call(&auditor)).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "insufficient_role");
    let allowed = router.clone().oneshot(call(&admin)).await.unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    // Both read the reports.
    for token in [&auditor, &admin] {
        let report = app.get("/admin/reconciliation", Some(token)).await;
        assert_eq!(report.status(), StatusCode::OK);
    }
}

async fn readiness_details_are_for_operators_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let anyone = app.get("/readyz", None).await;
    assert_eq!(anyone.status(), StatusCode::OK);
    assert_eq!(
        anyone.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
    for token in [session.token.as_str(), "adm_nope", "garbage"] {
        let refused = app.get("/readyz", Some(token)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(error_code(refused).await, "invalid_admin_token");
    }
    let (_, auditor) = app.operator_token("auditor").await;
    let details: Value = app
        .get("/readyz", Some(&auditor))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(details["status"], "ready");
    let projections = details["projections"].as_array().unwrap();
    assert!(projections.iter().all(|p| p["checkpoint"].is_u64()));
}

async fn dead_letters_come_a_page_at_a_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, auditor) = app.operator_token("auditor").await;
    // Five letters, two given up on at the same instant (the id orders them).
    for (n, dead_at) in [(1, 10), (2, 20), (3, 20), (4, 30), (5, 40)] {
        sqlx::query(
            "INSERT INTO mail_dead_letters (message_id, body, attempts, last_error, dead_at) \
             VALUES ($1, $2, 3, 'refused', $3)",
        )
        .bind(format!("00000000-0000-4000-8000-00000000000{n}"))
        .bind(json!({"n": n}).to_string())
        .bind(dead_at)
        .execute(app.db.pool())
        .await
        .unwrap();
    }
    let whole = app.get("/admin/mail/dead-letters", Some(&auditor)).await;
    assert_eq!(whole.status(), StatusCode::OK);
    let whole = json_body(whole).await;
    let order = |page: &Value| -> Vec<i64> {
        page["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"]["n"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(order(&whole), [5, 4, 2, 3, 1], "newest first: {whole}");
    assert!(whole["next_cursor"].is_null(), "{whole}");
    for limit in [1, 2] {
        let (mut seen, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
        loop {
            let page = app
                .get(
                    &format!("/admin/mail/dead-letters?limit={limit}&cursor={cursor}"),
                    Some(&auditor),
                )
                .await;
            assert_eq!(page.status(), StatusCode::OK);
            let page = json_body(page).await;
            seen.extend(order(&page));
            pages += 1;
            match page["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(seen, [5, 4, 2, 3, 1], "by {limit}");
        assert_eq!(pages, 5usize.div_ceil(limit), "by {limit}");
    }
    for query in ["limit=0", "limit=101", "cursor=nope"] {
        let refused = app
            .get(&format!("/admin/mail/dead-letters?{query}"), Some(&auditor))
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}"
        );
        assert_eq!(error_code(refused).await, "validation_failed", "{query}");
    }
    // The CLI prints every letter, however many pages they take.
    let mut args: Vec<String> = ["accounts", "mail", "dead-letters"]
        .map(str::to_owned)
        .to_vec();
    args.extend(app.storage_args.clone());
    let outcome = api::cli::run_from(args).await.unwrap();
    let printed: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(printed.as_array().unwrap().len(), 5, "{printed}");
}

on_both_backends!(
    dead_letters_come_a_page_at_a_time,
    operator_tokens_expire,
    an_auditor_is_refused_what_needs_an_admin,
    readiness_details_are_for_operators_only,
);
