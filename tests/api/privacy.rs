//! Personal data never appears in clear in the event log.

use reqwest::StatusCode;
use serde_json::json;
use store::Backend;
use tests::{PASSWORD, spawn_app_with};

const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 PrivacyProbe/7";

async fn emails_names_ips_and_user_agents_are_not_in_the_events_table(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
        setup.serve.city_header = Some("X-Geo-City".into());
    })
    .await;
    let email = "Grace.Hopper@Navy.example";
    let name = "Rear Admiral Grace Brewster Hopper";
    let response = app
        .post(
            "/auth/register",
            None,
            &json!({"email": email, "password": PASSWORD, "display_name": name}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let login = app
        .request(reqwest::Method::POST, "/auth/login", None)
        .header("user-agent", USER_AGENT)
        .header("X-Forwarded-For", "203.0.113.77")
        .header("X-Geo-City", "Arlington")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::CREATED);
    let token = login.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = app
        .request(reqwest::Method::PUT, "/me/password", Some(&token))
        .json(&json!({"current_password": PASSWORD, "new_password": "an0ther-Long-secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), StatusCode::OK);

    // The read model shows them, so they were recorded...
    let sessions: serde_json::Value = app
        .get("/me/sessions", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["ip"], "203.0.113.77");
    // ...but the raw log holds none of them in clear.
    let raw = app.raw_events().await.join("\n");
    assert!(
        raw.contains("AccountRegistered")
            && raw.contains("SessionStarted")
            && raw.contains("PasswordChanged")
    );
    for secret in [
        email,
        &email.to_lowercase(),
        name,
        "Grace",
        "203.0.113.77",
        "PrivacyProbe",
        "Firefox",
        "Arlington",
        "$argon2id",
        PASSWORD,
        &token,
    ] {
        assert!(
            !raw.contains(secret),
            "{secret:?} appears in the events table"
        );
    }
}

async fn a_rebuilt_read_model_ends_with_the_same_rows(backend: Backend) {
    let app = spawn_app_with(backend, |_| {}).await;
    for _ in 0..3 {
        let (email, session) = app.signed_up().await;
        let other = app.login(&email, PASSWORD).await;
        app.delete(&format!("/me/sessions/{}", other.id), Some(&session.token))
            .await;
    }
    // Personal columns are sealed with fresh nonces, so rows are compared as the service
    // reads them: opened.
    let view = || async {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT account_id FROM accounts ORDER BY account_id")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        let now = commands::Clock::now(&*app.clock);
        let mut accounts = Vec::new();
        let mut sessions = Vec::new();
        for id in ids {
            let id = domain::AccountId(uuid::Uuid::parse_str(&id).unwrap());
            let sealer = &app.state.core.sealer;
            accounts.push(
                projections::accounts::find(&app.db, sealer, id)
                    .await
                    .unwrap(),
            );
            let every = projections::Page::first(i64::MAX);
            for row in projections::sessions::list_for_account(&app.db, sealer, id, now, &every)
                .await
                .unwrap()
                .items
            {
                // The last-active time may move with a flush of the running service.
                let live = row.session;
                sessions.push((
                    live.session_id,
                    live.account_id,
                    live.created_at,
                    live.expires_at,
                    row.origin,
                ));
            }
        }
        (accounts, sessions)
    };
    let before = view().await;
    assert_eq!(before.0.len(), 3);
    assert!(before.0.iter().all(Option::is_some));
    assert_eq!(before.1.len(), 3);
    assert!(before.1.iter().all(|s| !s.4.device.is_empty()));

    // `accounts rebuild all`, as an operator would run it against the same data.
    let mut args = vec![
        "accounts".to_owned(),
        "rebuild".to_owned(),
        "all".to_owned(),
    ];
    args.extend(app.storage_args.clone());
    api::cli::run_from(args).await.expect("rebuild runs");

    assert_eq!(before, view().await);
}

on_both_backends!(
    emails_names_ips_and_user_agents_are_not_in_the_events_table,
    a_rebuilt_read_model_ends_with_the_same_rows,
);
