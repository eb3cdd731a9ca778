//! A workspace's studio configuration (typed, normalised, versioned) and its object
//! storage, probed live against a real S3-compatible server that checks signatures.

use crate::notifications::mails_to;
use crate::workspaces::{create, join, send};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::s3::S3Server;
use tests::{TestApp, error_code, json_body, spawn_app};

async fn studio_is_typed_normalised_and_versioned(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = app.signed_up().await;
    let (member_email, member) = app.signed_up().await;
    let ws = create(&app, &owner, "Studio").await;
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let path = format!("/workspaces/{ws}/studio");
    let defaults = json_body(app.get(&path, Some(&member.token)).await).await;
    assert_eq!(defaults["values"]["frame_rate"], 30);
    assert_eq!(defaults["sources"]["frame_rate"], "default");
    // Members read only.
    let refused = send(
        &app,
        Method::PATCH,
        &path,
        &member,
        json!({"frame_rate": 24}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Enums regardless of case, unknown keys dropped and reported.
    let changed = send(
        &app,
        Method::PATCH,
        &path,
        &owner,
        json!({"resolution": "2160P", "frame_rate": 24.0, "sparkles": true}),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed = json_body(changed).await;
    assert_eq!(changed["values"]["resolution"], "2160p");
    assert_eq!(changed["values"]["frame_rate"], 24);
    assert_eq!(changed["sources"]["resolution"], "user");
    assert_eq!(changed["warnings"][0]["key"], "sparkles");
    // Out of range: refused with the range, nothing changed.
    let out = send(
        &app,
        Method::PATCH,
        &path,
        &owner,
        json!({"frame_rate": 500, "resolution": "720p"}),
    )
    .await;
    assert_eq!(out.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_body(out).await;
    assert_eq!(body["error"]["code"], "invalid_settings");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("frame_rate") && message.contains("120"),
        "{message}"
    );
    let now = json_body(app.get(&path, Some(&member.token)).await).await;
    assert_eq!(now["values"]["resolution"], "2160p");
    // An older client's keys are migrated; null resets to the default.
    let old = send(
        &app,
        Method::PATCH,
        &path,
        &owner,
        json!({"schema_version": 1, "fps": 60, "resolution": null}),
    )
    .await;
    assert_eq!(old.status(), StatusCode::OK);
    let old = json_body(old).await;
    assert_eq!(old["values"]["frame_rate"], 60);
    assert_eq!(old["sources"]["resolution"], "default");
    // The version is an integer in any JSON spelling, as every integer field is.
    let spelled = send(
        &app,
        Method::PATCH,
        &path,
        &owner,
        json!({"schema_version": 1.0, "fps": 24}),
    )
    .await;
    assert_eq!(spelled.status(), StatusCode::OK);
    assert_eq!(json_body(spelled).await["values"]["frame_rate"], 24);
    for version in [json!(1.5), json!("x"), json!(-1)] {
        let refused = send(
            &app,
            Method::PATCH,
            &path,
            &owner,
            json!({"schema_version": version, "fps": 24}),
        )
        .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{version}"
        );
        assert_eq!(error_code(refused).await, "invalid_settings", "{version}");
    }
    let future = send(
        &app,
        Method::PATCH,
        &path,
        &owner,
        json!({"schema_version": 99}),
    )
    .await;
    assert_eq!(future.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The form's schema.
    let schema = json_body(
        app.get(&format!("{path}/schema"), Some(&member.token))
            .await,
    )
    .await;
    assert_eq!(schema["properties"]["frame_rate"]["maximum"], 120);
    assert_eq!(schema["properties"]["frame_rate"]["default"], 30);
    let (_, outsider) = app.signed_up().await;
    assert_eq!(
        app.get(&path, Some(&outsider.token)).await.status(),
        StatusCode::NOT_FOUND
    );
}

fn storage_body(server: &S3Server, secret: Option<&str>) -> Value {
    json!({
        "bucket": server.bucket,
        "region": tests::s3::REGION,
        "endpoint": server.endpoint(),
        "access_key_id": server.access_key_id,
        "secret_access_key": secret,
        "force_path_style": true,
    })
}

async fn storage(app: &TestApp, ws: &str, session: &tests::Session) -> Value {
    json_body(
        app.get(&format!("/workspaces/{ws}/storage"), Some(&session.token))
            .await,
    )
    .await
}

async fn external_storage_is_probed_before_it_is_saved(backend: Backend) {
    let server = S3Server::start().await;
    let app = spawn_app(backend).await;
    let (owner_email, owner) = app.signed_up().await;
    let (member_email, member) = app.signed_up().await;
    let ws = create(&app, &owner, "Assets").await;
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let path = format!("/workspaces/{ws}/storage");
    let managed = storage(&app, &ws, &owner).await;
    assert_eq!(managed["state"], "managed");
    assert_eq!(managed["secret_state"], "not_set");
    // A wrong secret fails the probe at its first step; nothing is saved.
    let wrong = send(
        &app,
        Method::PUT,
        &path,
        &owner,
        storage_body(&server, Some("not-the-secret")),
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_body(wrong).await;
    assert_eq!(body["error"]["code"], "storage_probe_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("put failed") && message.contains("SignatureDoesNotMatch"),
        "{message}"
    );
    assert_eq!(storage(&app, &ws, &owner).await["state"], "managed");
    // A value out of its bounds is refused before any probe, by both routes.
    let long_endpoint = format!("{}/{}", server.endpoint(), "p".repeat(2048));
    for (field, value) in [
        ("bucket", json!("ab")),
        ("bucket", json!("b".repeat(64))),
        ("region", json!("")),
        ("region", json!("r".repeat(65))),
        ("endpoint", json!(long_endpoint)),
        ("access_key_id", json!("k".repeat(257))),
        ("secret_access_key", json!("s".repeat(257))),
    ] {
        let mut body = storage_body(&server, Some(&server.secret_access_key));
        body[field] = value;
        for (method, path) in [
            (Method::PUT, path.clone()),
            (Method::POST, format!("{path}/test")),
        ] {
            let refused = send(&app, method, &path, &owner, body.clone()).await;
            assert_eq!(
                refused.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}"
            );
            let message = json_body(refused).await["error"]["message"].clone();
            assert!(message.as_str().unwrap().starts_with(field), "{message}");
        }
    }
    assert_eq!(storage(&app, &ws, &owner).await["state"], "managed");
    // Members may not configure it.
    let by_member = send(
        &app,
        Method::PUT,
        &path,
        &member,
        storage_body(&server, Some(&server.secret_access_key)),
    )
    .await;
    assert_eq!(by_member.status(), StatusCode::FORBIDDEN);
    // The right secret: probed, saved, never returned; the sentinel is gone.
    let saved = send(
        &app,
        Method::PUT,
        &path,
        &owner,
        storage_body(&server, Some(&server.secret_access_key)),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    let text = saved.text().await.unwrap();
    assert!(!text.contains(&server.secret_access_key));
    let view: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["state"], "external");
    assert_eq!(view["secret_state"], "set");
    assert!(
        view["access_key_hint"]
            .as_str()
            .unwrap()
            .ends_with(&server.access_key_id[server.access_key_id.len() - 4..])
    );
    assert!(server.objects().is_empty(), "{:?}", server.objects());
    let for_member = storage(&app, &ws, &member).await;
    assert_eq!(for_member["state"], "external");
    assert!(for_member["access_key_hint"].is_null());
    // Testing without saving: the body's values, or the saved ones.
    let test = format!("{path}/test");
    let tried = json_body(
        send(
            &app,
            Method::POST,
            &test,
            &owner,
            storage_body(&server, Some("wrong-secret")),
        )
        .await,
    )
    .await;
    assert_eq!(tried["ok"], false);
    assert_eq!(tried["step"], "put");
    let saved_ok = json_body(app.post(&test, Some(&owner.token), &json!(null)).await).await;
    assert_eq!(saved_ok["ok"], true);
    // Omitting the secret keeps the stored one.
    let kept = send(
        &app,
        Method::PUT,
        &path,
        &owner,
        storage_body(&server, None),
    )
    .await;
    assert_eq!(kept.status(), StatusCode::OK);
    // The secret is sealed wherever it is stored.
    let raw = app.raw_events().await.join("\n") + &app.read_model_rows().await.join("\n");
    assert!(!raw.contains(&server.secret_access_key));
    // The scheduled probe: a failure is recorded once, with its reason, and admins told.
    let bucket_dir = server.object_file("x").parent().unwrap().to_path_buf();
    let moved = bucket_dir.with_extension("away");
    std::fs::rename(&bucket_dir, &moved).unwrap();
    assert_eq!(
        api::routes::storage::reprobe_all(&app.state).await.unwrap(),
        1
    );
    app.settle().await;
    let failing = storage(&app, &ws, &owner).await;
    assert_eq!(failing["state"], "misconfigured");
    assert!(
        failing["problem"]
            .as_str()
            .unwrap()
            .contains("NoSuchBucket"),
        "{failing}"
    );
    let since = failing["problem_since"].clone();
    api::routes::storage::reprobe_all(&app.state).await.unwrap();
    app.settle().await;
    assert_eq!(storage(&app, &ws, &owner).await["problem_since"], since);
    let mails = mails_to(&app, &owner_email, 1).await;
    assert!(mails[0].contains("storage is failing"), "{mails:?}");
    std::fs::rename(&moved, &bucket_dir).unwrap();
    api::routes::storage::reprobe_all(&app.state).await.unwrap();
    app.settle().await;
    assert_eq!(storage(&app, &ws, &owner).await["state"], "external");
    let mails = mails_to(&app, &owner_email, 2).await;
    assert!(mails.iter().any(|m| m.contains("works again")), "{mails:?}");
    // Back to managed storage.
    let reset = app.delete(&path, Some(&owner.token)).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(storage(&app, &ws, &owner).await["state"], "managed");
    let nothing_saved = app.post(&test, Some(&owner.token), &json!(null)).await;
    assert_eq!(nothing_saved.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(nothing_saved).await, "managed_storage");
}

on_both_backends!(
    studio_is_typed_normalised_and_versioned,
    external_storage_is_probed_before_it_is_saved,
);
