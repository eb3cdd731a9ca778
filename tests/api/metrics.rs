//! Prometheus metrics: on an operator token at `/metrics`, and without one on the
//! `--metrics-listen` address. Routes appear by template, never by path; commands,
//! password-hash waits and every read model's lag are there; no id nor e-mail address is.
//!
//! Every app of this test process records into the one global recorder, so a case looks
//! for figures being there, never for exact counts of recorded ones.

use reqwest::StatusCode;
use serde_json::json;
use store::Backend;
use tests::{PASSWORD, spawn_app_with};

async fn metrics_show_routes_commands_hash_waits_and_lag(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    // A registration (a command and a new hash), two sign-ins (verifications), reads, and
    // a route with an id in its path.
    let (email, laptop) = app.signed_up().await;
    let phone = app.login(&email, PASSWORD).await;
    assert_eq!(
        app.get("/me", Some(&laptop.token)).await.status(),
        StatusCode::OK
    );
    let revoked = app
        .delete(&format!("/me/sessions/{}", phone.id), Some(&laptop.token))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let unknown = format!("/no/such/route/{}", phone.id);
    assert_eq!(
        app.get(&unknown, None).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/me/credits", Some(&laptop.token)).await.status(),
        StatusCode::OK
    );
    let account_id = app
        .get("/me", Some(&laptop.token))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["account_id"]
        .as_str()
        .map(str::to_owned);

    // Without a token: refused, as before.
    assert_eq!(
        app.get("/metrics", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (operator_id, operator) = app.operator_token("auditor").await;
    let response = app.get("/metrics", Some(&operator)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = response.text().await.unwrap();

    for expected in [
        "# TYPE accounts_http_request_duration_seconds histogram",
        r#"accounts_http_request_duration_seconds_bucket{method="GET",route="/me",status="200",le="0.005"}"#,
        r#"accounts_http_requests_total{method="DELETE",route="/me/sessions/{id}",status="204"}"#,
        r#"accounts_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        "# TYPE accounts_command_duration_seconds histogram",
        r#"accounts_command_duration_seconds_count{command="account"#,
        r#"accounts_password_hash_wait_seconds_count{share="verify"}"#,
        r#"accounts_password_hash_wait_seconds_count{share="hash"}"#,
        "# TYPE accounts_append_batch_size histogram",
        "# TYPE accounts_balance_card_batch_size histogram",
        "# HELP accounts_projection_lag_events ",
        "# TYPE accounts_projection_lag_seconds gauge",
        "accounts_mail_sent_total ",
        "accounts_notifier_behind ",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in\n{text}");
    }
    let mut followers = app.state.core.projections.names();
    followers.extend(app.state.core.projections.reactor_names());
    for follower in followers {
        for name in [
            "accounts_projection_lag_events",
            "accounts_projection_lag_seconds",
        ] {
            let series = format!("{name}{{read_model=\"{}\"}} ", follower.key());
            assert!(text.contains(&series), "{series:?} missing in\n{text}");
        }
    }

    // Nothing a request carried: ids, the e-mail address, tokens.
    let mut raw = vec![
        email.clone(),
        laptop.id.clone(),
        phone.id.clone(),
        laptop.token.clone(),
        operator.clone(),
        operator_id,
        "example.com".to_owned(),
    ];
    raw.extend(account_id);
    for raw in &raw {
        assert!(!text.contains(raw.as_str()), "{raw} in\n{text}");
    }

    // The separate address: the same text without a token, and nothing else.
    let metrics = app
        .metrics_address
        .as_deref()
        .expect("--metrics-listen bound");
    let open = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), StatusCode::OK);
    let open = open.text().await.unwrap();
    for expected in [
        r#"route="/me",status="200""#,
        "accounts_projection_lag_events{read_model=\"credits\"}",
        "accounts_mail_sent_total ",
    ] {
        assert!(open.contains(expected), "{expected:?} missing in\n{open}");
    }
    for raw in &raw {
        assert!(!open.contains(raw.as_str()), "{raw} in\n{open}");
    }
    let elsewhere = app
        .client
        .get(format!("{metrics}/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
    let posted = app
        .client
        .post(format!("{metrics}/metrics"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);
}

async fn without_metrics_listen_there_is_no_second_address(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    assert!(app.metrics_address.is_none());
}

on_both_backends!(
    metrics_show_routes_commands_hash_waits_and_lag,
    without_metrics_listen_there_is_no_second_address,
);
