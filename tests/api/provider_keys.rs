//! Bring-your-own provider keys over HTTP, against local fakes of the providers: a wrong
//! key is refused and nothing saved, a right one is saved sealed (never in clear in an
//! answer, event or table), a limited ElevenLabs key, a key that turns invalid on the
//! scheduled check (recorded, one e-mail), the resolve order for the studio's workers and
//! its service role, workspace keys for admins, and shredding with the owner's key.

use crate::notifications::mails_to;
use crate::workspaces::{create, join, send};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::providers::FakeProviders;
use tests::{PASSWORD, TestApp, error_code, json_body, spawn_app_with};

const OPENAI_KEY: &str = "sk-proj-Secret0penAiKey9876wxyz";
const WRONG_KEY: &str = "sk-proj-NotAKeyAnyoneIssued0000";
const LIMITED_KEY: &str = "sk_elevenlabsLimitedKey1234abcd";
const WORKSPACE_KEY: &str = "sk-proj-W0rkspaceSharedKey5555";

async fn start(backend: Backend) -> (TestApp, FakeProviders) {
    let fakes = FakeProviders::start().await;
    let urls = fakes.base_urls();
    let app = spawn_app_with(backend, |setup| {
        setup.serve.provider_base_urls = urls;
    })
    .await;
    (app, fakes)
}

fn entry<'a>(list: &'a Value, provider: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == provider)
        .unwrap()
}

async fn everything_stored(app: &TestApp) -> String {
    app.raw_events().await.join("\n") + &app.read_model_rows().await.join("\n")
}

async fn own_keys_are_verified_sealed_and_checked_again(backend: Backend) {
    let (app, fakes) = start(backend).await;
    let (email, s) = app.signed_up().await;
    fakes.accept(OPENAI_KEY);
    fakes.accept_limited(LIMITED_KEY);
    let list = json_body(app.get("/me/provider-keys", Some(&s.token)).await).await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert_eq!(entry(&list, "openai")["encryption_available"], true);
    assert_eq!(entry(&list, "openai")["credential_exists"], false);

    // A wrong key: 422 with the provider's reason, nothing saved.
    let wrong = app
        .put(
            "/me/provider-keys/openai",
            Some(&s.token),
            &json!({"api_key": WRONG_KEY}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_body(wrong).await;
    assert_eq!(body["error"]["code"], "provider_key_rejected");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Incorrect API key")
    );
    let list = json_body(app.get("/me/provider-keys", Some(&s.token)).await).await;
    assert_eq!(entry(&list, "openai")["credential_exists"], false);
    assert!(!everything_stored(&app).await.contains("NotAKeyAnyone"));
    // A malformed key never reaches the provider.
    let calls = fakes.calls();
    let malformed = app
        .put(
            "/me/provider-keys/anthropic",
            Some(&s.token),
            &json!({"api_key": "short"}),
        )
        .await;
    assert_eq!(error_code(malformed).await, "validation_failed");
    assert_eq!(fakes.calls(), calls);

    // The right key: valid, its hint shown, the secret nowhere in clear.
    let saved = app
        .put(
            "/me/provider-keys/openai",
            Some(&s.token),
            &json!({"api_key": OPENAI_KEY}),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::OK);
    let text = saved.text().await.unwrap();
    assert!(!text.contains(OPENAI_KEY), "{text}");
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["status"], "valid");
    assert_eq!(view["key_hint"], "sk-p…wxyz");
    let list = app
        .get("/me/provider-keys", Some(&s.token))
        .await
        .text()
        .await
        .unwrap();
    assert!(!list.contains(OPENAI_KEY));
    assert!(!everything_stored(&app).await.contains("Secret0penAiKey"));

    // ElevenLabs without user_read: valid but limited.
    let limited = json_body(
        app.put(
            "/me/provider-keys/elevenlabs",
            Some(&s.token),
            &json!({"api_key": LIMITED_KEY}),
        )
        .await,
    )
    .await;
    assert_eq!(limited["status"], "limited", "{limited}");
    assert!(limited["problem"].as_str().unwrap().contains("user_read"));
    // Verified again by its owner: the answer waits for the history to show it.
    let again = app
        .post(
            "/me/provider-keys/elevenlabs/verify",
            Some(&s.token),
            &json!({}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let history = json_body(
        app.get("/me/provider-keys/elevenlabs/history", Some(&s.token))
            .await,
    )
    .await;
    let lines: Vec<(&str, &str)> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        lines,
        [("set", "limited"), ("verified", "limited")],
        "{history}"
    );

    // A Google service account: its shape is checked, its e-mail is the hint.
    let sa = json!({"type": "service_account", "project_id": "studio-renders",
        "client_email": "renderer@studio-renders.iam.gserviceaccount.com",
        "private_key": "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdr\n-----END PRIVATE KEY-----\n"});
    let google = json_body(
        app.put(
            "/me/provider-keys/google",
            Some(&s.token),
            &json!({"service_account_json": sa.to_string()}),
        )
        .await,
    )
    .await;
    assert_eq!(
        google["key_hint"],
        "renderer@studio-renders.iam.gserviceaccount.com"
    );
    assert_eq!(google["project_id"], "studio-renders");
    assert_eq!(google["status"], "unverified");
    assert!(
        !everything_stored(&app)
            .await
            .contains("TUlJRXZRSUJBREFOQmdr")
    );

    // Revoked at the provider: the scheduled check records it and mails the owner once.
    fakes.revoke(OPENAI_KEY);
    api::routes::provider_keys::reverify_all(&app.state)
        .await
        .unwrap();
    app.settle().await;
    let list = json_body(app.get("/me/provider-keys", Some(&s.token)).await).await;
    assert_eq!(entry(&list, "openai")["status"], "invalid");
    let mails = mails_to(&app, &email, 1).await;
    assert!(mails[0].contains("OpenAI key stopped working"), "{mails:?}");
    api::routes::provider_keys::reverify_all(&app.state)
        .await
        .unwrap();
    app.settle().await;
    mails_to(&app, &email, 1).await;
    let history = json_body(
        app.get("/me/provider-keys/openai/history", Some(&s.token))
            .await,
    )
    .await;
    let actions: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["set", "invalid", "invalid"]);

    // Removed.
    let removed = app.delete("/me/provider-keys/openai", Some(&s.token)).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let list = json_body(app.get("/me/provider-keys", Some(&s.token)).await).await;
    assert_eq!(entry(&list, "openai")["credential_exists"], false);
    // An unknown provider is a 400.
    let unknown = app
        .get("/me/provider-keys/acme/history", Some(&s.token))
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

async fn resolve(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.post("/internal/provider-keys/resolve", Some(token), &body)
        .await
}

async fn workspace_keys_resolve_in_order_for_service_tokens_only(backend: Backend) {
    let (app, fakes) = start(backend).await;
    fakes.accept(OPENAI_KEY);
    fakes.accept(WORKSPACE_KEY);
    let (_, owner) = app.signed_up().await;
    let (member_email, member) = app.signed_up().await;
    let (_, outsider) = app.signed_up().await;
    let ws = create(&app, &owner, "Keys Studio").await;
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let id_of = |s: &tests::Session| {
        let s = s.clone();
        let app = &app;
        async move {
            json_body(app.get("/me", Some(&s.token)).await).await["account_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let member_id = id_of(&member).await;
    let outsider_id = id_of(&outsider).await;
    let keys = format!("/workspaces/{ws}/provider-keys");
    // Members may not manage the workspace's keys.
    let by_member = send(
        &app,
        Method::PUT,
        &format!("{keys}/openai"),
        &member,
        json!({"api_key": WORKSPACE_KEY}),
    )
    .await;
    assert_eq!(by_member.status(), StatusCode::FORBIDDEN);
    let saved = send(
        &app,
        Method::PUT,
        &format!("{keys}/openai"),
        &owner,
        json!({"api_key": WORKSPACE_KEY}),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    // Members see that it exists, not its hint.
    let for_member = json_body(app.get(&keys, Some(&member.token)).await).await;
    assert_eq!(entry(&for_member, "openai")["credential_exists"], true);
    assert!(entry(&for_member, "openai")["key_hint"].is_null());
    let for_outsider = app.get(&keys, Some(&outsider.token)).await;
    assert_eq!(for_outsider.status(), StatusCode::NOT_FOUND);

    // Only a service token may resolve.
    let (_, service) = app.operator_token("service").await;
    let (_, admin) = app.operator_token("admin").await;
    let (_, auditor) = app.operator_token("auditor").await;
    let ask = json!({"account_id": member_id, "workspace_id": ws, "provider": "openai"});
    for refused in [&admin, &auditor] {
        assert_eq!(
            resolve(&app, refused, ask.clone()).await.status(),
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        resolve(&app, &member.token, ask.clone()).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A service token is no operator elsewhere.
    assert_eq!(
        app.get("/admin/reconciliation", Some(&service))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    // The workspace's key for a member without one.
    let got = json_body(resolve(&app, &service, ask.clone()).await).await;
    assert_eq!(got["source"], "workspace", "{got}");
    assert_eq!(got["api_key"], WORKSPACE_KEY);
    // The member's own key first.
    let own = send(
        &app,
        Method::PUT,
        "/me/provider-keys/openai",
        &member,
        json!({"api_key": OPENAI_KEY}),
    )
    .await;
    assert_eq!(own.status(), StatusCode::OK);
    let got = json_body(resolve(&app, &service, ask.clone()).await).await;
    assert_eq!(got["source"], "account");
    assert_eq!(got["api_key"], OPENAI_KEY);
    // A retry with an Idempotency-Key resolves again: the answer, a secret in the clear
    // with no account's key to seal it with, is never stored for a replay.
    for _ in 0..2 {
        let retried = app
            .request(
                Method::POST,
                "/internal/provider-keys/resolve",
                Some(&service),
            )
            .header("Idempotency-Key", "resolve-1")
            .json(&ask)
            .send()
            .await
            .unwrap();
        assert_eq!(retried.headers()["idempotent-replayed"], "false");
        assert_eq!(json_body(retried).await["api_key"], OPENAI_KEY);
    }
    let stored = app.read_model_rows().await;
    assert!(
        !stored.iter().any(|row| row.contains(OPENAI_KEY)),
        "the resolved key is stored nowhere in the clear"
    );
    // Not a member: the workspace's key is not given.
    let got = json_body(
        resolve(
            &app,
            &service,
            json!({"account_id": outsider_id, "workspace_id": ws, "provider": "openai"}),
        )
        .await,
    )
    .await;
    assert_eq!(got["source"], "platform");
    assert!(got["api_key"].is_null());
    // No key anywhere: the platform's.
    let got = json_body(
        resolve(
            &app,
            &service,
            json!({"account_id": member_id, "workspace_id": ws, "provider": "anthropic"}),
        )
        .await,
    )
    .await;
    assert_eq!(got["source"], "platform");

    // Each resolve is in the key's history (a read model: once it has caught up).
    app.settle().await;
    let history = json_body(
        app.get(&format!("{keys}/openai/history"), Some(&owner.token))
            .await,
    )
    .await;
    let resolved: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{history}");
    assert_eq!(resolved[0]["account_id"], member_id.as_str());
    let mine = json_body(
        app.get("/me/provider-keys/openai/history", Some(&member.token))
            .await,
    )
    .await;
    assert_eq!(
        mine["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "resolved")
            .count(),
        3,
        "once, then once for each retry"
    );
    // It grows with every resolve: a page at a time, the pages making the whole of it.
    let (mut paged, mut cursor) = (Vec::new(), String::new());
    loop {
        let page = json_body(
            app.get(
                &format!("/me/provider-keys/openai/history?limit=2&cursor={cursor}"),
                Some(&member.token),
            )
            .await,
        )
        .await;
        let entries = page["entries"].as_array().unwrap();
        assert!(entries.len() <= 2, "{page}");
        paged.extend(entries.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(Value::Array(paged), mine["entries"]);
    let bad = app
        .get(
            "/me/provider-keys/openai/history?limit=0",
            Some(&member.token),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let by_member = app
        .get(&format!("{keys}/openai/history"), Some(&member.token))
        .await;
    assert_eq!(by_member.status(), StatusCode::FORBIDDEN);
    // The secret is in no event or table in clear.
    let stored = everything_stored(&app).await;
    assert!(!stored.contains("W0rkspaceSharedKey") && !stored.contains("Secret0penAiKey"));
}

async fn deleting_the_owner_shreds_its_keys(backend: Backend) {
    let (app, fakes) = start(backend).await;
    fakes.accept(WORKSPACE_KEY);
    let (_, owner) = app.signed_up().await;
    let ws = create(&app, &owner, "Doomed Keys").await;
    let keys = format!("/workspaces/{ws}/provider-keys");
    let saved = send(
        &app,
        Method::PUT,
        &format!("{keys}/openai"),
        &owner,
        json!({"api_key": WORKSPACE_KEY}),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/workspaces/{ws}"),
        &owner,
        json!({"confirm": "Doomed Keys"}),
    )
    .await;
    assert!(deleted.status().is_success(), "{}", deleted.status());
    app.settle().await;
    let owner_id = uuid::Uuid::parse_str(&ws).unwrap();
    assert!(
        app.state
            .core
            .codec
            .keys()
            .get(owner_id)
            .await
            .unwrap()
            .is_none()
    );
    // Its events remain, sealed with a key that no longer exists; nothing in clear.
    let stored = everything_stored(&app).await;
    assert!(!stored.contains("W0rkspaceSharedKey"));
    assert!(stored.contains(&format!("providerkeys-{ws}")));
    // Its history goes with it.
    let lines: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM provider_key_history WHERE owner_id = $1")
            .bind(&ws)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(lines, 0);
    // The keys are gone from the aggregate, and saving is refused: it cannot be sealed.
    assert!(
        app.state
            .byok
            .keys
            .load(owner_id)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    assert!(!app.state.byok.keys.encryption_available(owner_id).await);

    // An account's keys go with the account.
    let (_, s) = app.signed_up().await;
    fakes.accept(OPENAI_KEY);
    let me = json_body(app.get("/me", Some(&s.token)).await).await;
    let account = uuid::Uuid::parse_str(me["account_id"].as_str().unwrap()).unwrap();
    app.put(
        "/me/provider-keys/openai",
        Some(&s.token),
        &json!({"api_key": OPENAI_KEY}),
    )
    .await;
    let gone = app
        .request(Method::DELETE, "/me", Some(&s.token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE"}))
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.status());
    for _ in 0..100 {
        if app
            .state
            .core
            .codec
            .keys()
            .get(account)
            .await
            .unwrap()
            .is_none()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        app.state
            .byok
            .keys
            .load(account)
            .await
            .unwrap()
            .keys
            .is_empty()
    );
    assert!(!everything_stored(&app).await.contains("Secret0penAiKey"));
}

on_both_backends!(
    own_keys_are_verified_sealed_and_checked_again,
    workspace_keys_resolve_in_order_for_service_tokens_only,
    deleting_the_owner_shreds_its_keys,
);
