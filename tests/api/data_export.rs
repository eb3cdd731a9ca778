//! `GET /me/export`: the account holder downloads everything the account's events say
//! (the state now, and every event of its own streams, opened, secrets redacted), after a
//! recent proof; the security log records it and the account is told.

use crate::notifications::mails_to;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{error_code, json_body, spawn_app};

async fn an_account_downloads_everything_its_events_say(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    let workspace = app
        .post(
            "/workspaces",
            Some(&session.token),
            &json!({"name": "Lighthouse Films"}),
        )
        .await;
    assert_eq!(workspace.status(), StatusCode::CREATED);
    app.create_api_token(&session.token, "render farm", &["credits:read"])
        .await;

    let export = app.get("/me/export", Some(&session.token)).await;
    assert_eq!(export.status(), StatusCode::OK);
    let disposition = export.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert_eq!(export.headers()["cache-control"], "no-store");
    let export = json_body(export).await;
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(export["account_id"], me["account_id"]);
    assert_eq!(export["state"]["profile"]["email"], email.as_str());
    assert_eq!(
        export["state"]["workspaces"][0]["role"], "owner",
        "{export}"
    );

    let events = export["events"].as_array().unwrap();
    let of_type =
        |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event_type"] == kind).collect() };
    let registered = of_type("AccountRegistered");
    assert_eq!(registered[0]["data"]["email"], email.as_str());
    assert_eq!(
        registered[0]["data"]["password_hash"],
        json!({"redacted": true})
    );
    assert_eq!(of_type("DataExported").len(), 1, "the export is in it");
    assert!(!of_type("AccessTokenCreated").is_empty(), "{events:?}");
    // A workspace's events are the workspace's: the state names it, the events leave it out.
    assert!(
        events
            .iter()
            .all(|e| !e["stream"].as_str().unwrap().starts_with("workspace-")),
        "{events:?}"
    );
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "in log order");

    // Recorded, and told.
    let kinds = app.security_kinds(&session.token).await;
    assert_eq!(kinds[0], "data_exported", "{kinds:?}");
    let told = mails_to(&app, &email, 2).await;
    assert!(
        told.iter()
            .any(|m| m.contains("A copy of your account's data was downloaded")),
        "the token's notice and the export's"
    );
}

async fn a_stale_session_proves_itself_again_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = app.get("/me/export", Some(&session.token)).await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
}

on_both_backends!(
    an_account_downloads_everything_its_events_say,
    a_stale_session_proves_itself_again_first,
);
