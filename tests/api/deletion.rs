//! Deleting an account: every session ends, the data key is destroyed so the account's
//! events stay in the append-only log but no longer open, personal rows leave the read
//! models, and the e-mail address can register again.

use commands::EventCodec;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use store::{Backend, EventDecoder, GlobalPosition, Payload};
use tests::{PASSWORD, Session, TestApp, error_code, json_body, spawn_app_with_long_sessions};
use vault::{DataKeys, MasterKey};

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) DeletionProbe/9.1";
const DISPLAY_NAME: &str = "Quintessa Vantablack";
const BIO: &str = "Directs slow-motion films about lighthouses";

async fn delete_me(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.request(Method::DELETE, "/me", Some(&session.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Decodes the account's sealed events with a codec of its own, reading the data keys
/// from the database (not from the service's cache): `(opened, erased)`.
async fn sealed_events_of(app: &TestApp, account_id: &str) -> (usize, usize) {
    let master_key = app
        .storage_args
        .windows(2)
        .find(|w| w[0] == "--master-key")
        .map(|w| w[1].clone())
        .expect("the master key flag");
    let master = MasterKey::from_base64(&master_key).unwrap();
    let store = app.state.core.codec.keys().store().clone();
    let codec = EventCodec::new(Arc::new(DataKeys::new(store, &master)));
    let events = app
        .state
        .core
        .log
        .read_all(GlobalPosition::START, 100_000)
        .await
        .unwrap();
    let (mut opened, mut erased) = (0, 0);
    for event in events {
        let subject = event.metadata.data_subject.map(|s| s.to_string());
        if subject.as_deref() != Some(account_id) || !event.data.to_string().contains("$personal") {
            continue;
        }
        match codec.decode_event(event).await.unwrap().payload {
            Payload::Event(_) => opened += 1,
            Payload::Erased { .. } => erased += 1,
            Payload::Unknown => panic!("an unknown event"),
        }
    }
    (opened, erased)
}

async fn a_deleted_account_leaves_no_readable_personal_data(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let email = format!("erase-me-{}@example.com", uuid::Uuid::new_v4().simple());
    let account_id = app.register(&email).await;
    let login = app
        .request(Method::POST, "/auth/login", None)
        .header("user-agent", USER_AGENT)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::CREATED);
    let login = json_body(login).await;
    let session = Session {
        id: login["session_id"].as_str().unwrap().to_owned(),
        token: login["token"].as_str().unwrap().to_owned(),
    };
    let other = app.login(&email, PASSWORD).await;
    let profile = app
        .request(Method::PATCH, "/me/profile", Some(&session.token))
        .json(&json!({"display_name": DISPLAY_NAME, "bio": BIO, "public_profile": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), StatusCode::OK);
    let api_token = json_body(
        app.post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "render farm", "scopes": ["account:read"]}),
        )
        .await,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let cli_token = json_body(
        app.post(
            "/me/cli-tokens",
            Some(&session.token),
            &json!({"label": "laptop", "kind": "device"}),
        )
        .await,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get("/api/v1/me", Some(&api_token)).await.status(),
        StatusCode::OK
    );
    let subscribed = app
        .request(Method::PUT, "/me/subscription", Some(&session.token))
        .json(&json!({"plan_id": "starter"}))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::OK);
    app.settle().await;
    let personal = [email.as_str(), DISPLAY_NAME, BIO, "DeletionProbe"];
    // The service reads them back, yet no table holds them in clear, even before.
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(
        (me["email"].as_str(), me["bio"].as_str()),
        (Some(email.as_str()), Some(BIO))
    );
    let rows = app.read_model_rows().await.join("\n");
    for value in personal {
        assert!(
            !rows.contains(value),
            "{value} is sealed in the read models"
        );
    }
    let (opened, erased) = sealed_events_of(&app, &account_id).await;
    assert!(
        opened >= 3,
        "registration, sign-ins and profile carry sealed data"
    );
    assert_eq!(erased, 0);

    // Refusals change nothing.
    let events_before = app.event_count().await;
    let unconfirmed = delete_me(
        &app,
        &session,
        json!({"password": PASSWORD, "confirm": "yes"}),
    )
    .await;
    assert_eq!(unconfirmed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let subscription = delete_me(
        &app,
        &session,
        json!({"password": PASSWORD, "confirm": "DELETE"}),
    )
    .await;
    assert_eq!(subscription.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(subscription).await, "active_subscription");
    let wrong = delete_me(
        &app,
        &session,
        json!({"password": "not-the-password-at-all", "confirm": "DELETE", "acknowledge_subscription": true}),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invalid_current_password");
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = delete_me(
        &app,
        &session,
        json!({"password": PASSWORD, "confirm": "DELETE", "acknowledge_subscription": true}),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
    assert_eq!(app.event_count().await, events_before);
    assert_eq!(
        app.get("/me", Some(&session.token)).await.status(),
        StatusCode::OK
    );

    let proved = app
        .post(
            "/auth/reauthenticate",
            Some(&session.token),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(proved.status(), StatusCode::OK);
    let deleted = delete_me(
        &app,
        &session,
        json!({"password": PASSWORD, "confirm": "DELETE", "acknowledge_subscription": true}),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    // Every session is over at once.
    for token in [&session.token, &other.token] {
        assert_eq!(
            app.get("/me", Some(token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // And every API and CLI token, recorded in each token's stream.
    assert_eq!(
        app.get("/api/v1/me", Some(&api_token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/cli/v1/me", Some(&cli_token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let revocations = app
        .raw_events()
        .await
        .iter()
        .filter(|e| e.starts_with("accesstoken-") && e.contains("AccessTokenRevoked"))
        .count();
    assert_eq!(revocations, 2);
    assert_eq!(
        app.post(
            "/auth/login",
            None,
            &json!({"email": email, "password": PASSWORD})
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&format!("/profiles/{account_id}"), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // The log kept every event, but the sealed ones no longer open.
    assert!(app.event_count().await > events_before, "append-only");
    let (opened, erased) = sealed_events_of(&app, &account_id).await;
    assert_eq!(opened, 0, "no event of the account decrypts any more");
    assert!(erased >= 3);
    let raw = app.raw_events().await.join("\n");
    for value in personal {
        assert!(!raw.contains(value), "{value} is not in the log in clear");
    }

    // No personal data survives in any table.
    app.settle().await;
    let rows = app.read_model_rows().await;
    for value in personal {
        let found: Vec<&String> = rows.iter().filter(|r| r.contains(value)).collect();
        assert!(found.is_empty(), "{value} survives in {found:?}");
    }
    assert!(
        !rows.iter().any(|r| r.starts_with("subscriptions:")
            && r.contains(&account_id)
            && r.contains("active")),
        "the subscription ended: {rows:?}"
    );

    // The address is free again, for a new account.
    let again = app.register(&email).await;
    assert_ne!(again, account_id);
    let session = app.login(&email, PASSWORD).await;
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["account_id"], again.as_str());
    assert_eq!(me["display_name"], "Test User");
}

on_both_backends!(a_deleted_account_leaves_no_readable_personal_data);
