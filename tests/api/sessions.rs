//! Listing and revoking sessions; revocations hold from the very next request.

use reqwest::StatusCode;
use serde_json::Value;
use store::Backend;
use tests::{PASSWORD, error_code, eventually, spawn_app, spawn_app_with};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn sessions_list_device_ip_location_and_the_current_one(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.client_ip_header = Some("CF-Connecting-IP".into());
        setup.serve.country_header = Some("CF-IPCountry".into());
        setup.serve.city_header = Some("X-Geo-City".into());
    })
    .await;
    let (email, first) = app.signed_up().await;
    let second: Value = app
        .request(reqwest::Method::POST, "/auth/login", None)
        .header("user-agent", FIREFOX)
        .header("CF-Connecting-IP", "198.51.100.23")
        .header("CF-IPCountry", "FR")
        .header("X-Geo-City", "Lyon")
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let list: Value = app
        .get("/me/sessions", Some(&first.token))
        .await
        .json()
        .await
        .unwrap();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], first.id.as_str());
    let other = sessions
        .iter()
        .find(|s| s["id"] == second["session_id"])
        .unwrap();
    assert_eq!(other["device"], "Firefox 128 on Linux");
    assert_eq!(other["ip"], "198.51.100.23");
    assert_eq!(other["location"], "Lyon, FR");
    assert_eq!(other["current"], false);
    for field in ["created_at", "last_active_at", "expires_at"] {
        assert!(other[field].is_string(), "{field}");
    }
}

async fn a_revoked_session_is_refused_by_the_very_next_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, phone) = app.signed_up().await;
    let laptop = app.login(&email, PASSWORD).await;
    // Repeat to catch a read model that would lag behind the revoke.
    for _ in 0..5 {
        let tablet = app.login(&email, PASSWORD).await;
        assert_eq!(
            app.get("/me", Some(&tablet.token)).await.status(),
            StatusCode::OK,
            "a new session works at once"
        );
        let revoke = app
            .delete(&format!("/me/sessions/{}", tablet.id), Some(&laptop.token))
            .await;
        assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
        let refused = app.get("/me", Some(&tablet.token)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    // Revoking again is harmless.
    let again = app
        .delete(&format!("/me/sessions/{}", phone.id), Some(&laptop.token))
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    let again = app
        .delete(&format!("/me/sessions/{}", phone.id), Some(&laptop.token))
        .await;
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/me", Some(&laptop.token)).await.status(),
        StatusCode::OK
    );
}

async fn another_accounts_session_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, mine) = app.signed_up().await;
    let (_, theirs) = app.signed_up().await;
    for path in [
        format!("/me/sessions/{}", theirs.id),
        format!("/me/sessions/{}", uuid::Uuid::new_v4()),
        "/me/sessions/not-a-uuid".to_owned(),
    ] {
        let response = app.delete(&path, Some(&mine.token)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(error_code(response).await, "session_not_found");
    }
    assert_eq!(
        app.get("/me", Some(&theirs.token)).await.status(),
        StatusCode::OK,
        "untouched"
    );
}

async fn revoking_all_others_keeps_only_the_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, keep) = app.signed_up().await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(app.login(&email, PASSWORD).await);
    }
    let (_, stranger) = app.signed_up().await;
    let response = app.delete("/me/sessions", Some(&keep.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revoked"], 3);
    for other in &others {
        assert_eq!(
            app.get("/me", Some(&other.token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.get("/me", Some(&keep.token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get("/me", Some(&stranger.token)).await.status(),
        StatusCode::OK
    );
    let list: Value = app
        .get("/me/sessions", Some(&keep.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

async fn last_active_times_are_recorded_in_the_log(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    app.clock.advance(std::time::Duration::from_secs(120));
    assert_eq!(
        app.get("/me", Some(&session.token)).await.status(),
        StatusCode::OK
    );
    let seen_at = commands::Clock::now(&*app.clock).unix_micros();
    // Flushed every 200 ms in tests as one event; the sessions read model follows it.
    let (app, session_id) = (&app, &session.id);
    eventually(std::time::Duration::from_secs(10), || async move {
        let stored: i64 =
            sqlx::query_scalar("SELECT last_active_at FROM sessions WHERE session_id = $1")
                .bind(session_id)
                .fetch_one(app.db.pool())
                .await
                .unwrap();
        if stored == seen_at {
            Ok(())
        } else {
            Err(format!(
                "last activity never reached the read model (at {stored})"
            ))
        }
    })
    .await;
    let events = app.raw_events().await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.contains("SessionsActive"))
            .count(),
        1,
        "one event per flush"
    );
    let list: Value = app
        .get("/me/sessions", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["sessions"][0]["last_active_at"],
        app.clock_now_rfc3339().as_str()
    );
}

on_both_backends!(
    sessions_list_device_ip_location_and_the_current_one,
    a_revoked_session_is_refused_by_the_very_next_request,
    another_accounts_session_is_not_found,
    revoking_all_others_keeps_only_the_caller,
    last_active_times_are_recorded_in_the_log,
);
