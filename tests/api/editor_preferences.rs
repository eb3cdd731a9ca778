//! The Editor tab: typed preferences, layered over the workspace's studio defaults, with
//! writes that never overwrite another device's silently.

use crate::workspaces::{create, send};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::{Session, TestApp, error_code, json_body, spawn_app};

async fn write(
    app: &TestApp,
    method: Method,
    path: &str,
    s: &Session,
    version: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut request = app.request(method, path, Some(&s.token)).json(&body);
    if let Some(version) = version {
        request = request.header("If-Match", version);
    }
    request.send().await.unwrap()
}

async fn preferences_are_typed_layered_and_versioned(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, user) = app.signed_up().await;
    let path = "/me/editor-preferences";
    let first = app.get(path, Some(&user.token)).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"0\"");
    let first = json_body(first).await;
    assert_eq!(first["values"]["theme"], "system");
    assert_eq!(first["sources"]["theme"], "default");
    // Without If-Match: 428; with it, enums matched regardless of case, unknown keys warned.
    let blind = write(
        &app,
        Method::PATCH,
        path,
        &user,
        None,
        json!({"theme": "dark"}),
    )
    .await;
    assert_eq!(blind.status(), StatusCode::PRECONDITION_REQUIRED);
    let set = write(
        &app,
        Method::PATCH,
        path,
        &user,
        Some(&etag),
        json!({"theme": "DARK", "wobble": 1}),
    )
    .await;
    assert_eq!(set.status(), StatusCode::OK);
    let new_etag = set.headers()["etag"].to_str().unwrap().to_owned();
    let set = json_body(set).await;
    assert_eq!(set["values"]["theme"], "dark");
    assert_eq!(set["version"], 1);
    assert_eq!(set["warnings"][0]["key"], "wobble");
    // Another device that read version 0 is refused, and nothing changes.
    let stale = write(
        &app,
        Method::PATCH,
        path,
        &user,
        Some(&etag),
        json!({"theme": "light"}),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(error_code(stale).await, "stale_version");
    assert_eq!(
        json_body(app.get(path, Some(&user.token)).await).await["values"]["theme"],
        "dark"
    );
    // Out of range: the range is named.
    let out = write(
        &app,
        Method::PATCH,
        path,
        &user,
        Some(&new_etag),
        json!({"autosave_interval_seconds": 5}),
    )
    .await;
    assert_eq!(out.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_body(out).await["error"]["message"]
            .as_str()
            .unwrap()
            .contains("600")
    );
    // A value set equal to its default stays set; resetting it is another event.
    let same = write(
        &app,
        Method::PATCH,
        path,
        &user,
        Some(&new_etag),
        json!({"timeline_snapping": true}),
    )
    .await;
    let same_etag = same.headers()["etag"].to_str().unwrap().to_owned();
    let same = json_body(same).await;
    assert_eq!(same["sources"]["timeline_snapping"], "user");
    let reset = write(
        &app,
        Method::DELETE,
        &format!("{path}/timeline_snapping"),
        &user,
        Some(&same_etag),
        json!(null),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::OK);
    assert_eq!(
        json_body(reset).await["sources"]["timeline_snapping"],
        "default"
    );
    let unknown = write(
        &app,
        Method::DELETE,
        &format!("{path}/nope"),
        &user,
        Some("\"3\""),
        json!(null),
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // An older client's key is migrated.
    let current = app.get(path, Some(&user.token)).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    let old = write(
        &app,
        Method::PATCH,
        path,
        &user,
        Some(&current),
        json!({"schema_version": 1, "snap_to_grid": false}),
    )
    .await;
    assert_eq!(json_body(old).await["values"]["timeline_snapping"], false);
    // The history: every set and reset, newest first.
    let history = json_body(app.get(&format!("{path}/history"), Some(&user.token)).await).await;
    let actions: Vec<(String, String)> = history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_owned(),
                c["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("timeline_snapping".to_owned(), "set".to_owned()),
            ("timeline_snapping".to_owned(), "reset".to_owned()),
            ("timeline_snapping".to_owned(), "set".to_owned()),
            ("theme".to_owned(), "set".to_owned()),
        ]
    );
    // The workspace's studio defaults apply where the user set nothing.
    let ws = create(&app, &user, "Brand").await;
    let studio = send(
        &app,
        Method::PATCH,
        &format!("/workspaces/{ws}/studio"),
        &user,
        json!({"brand_colours": ["#FF0066"]}),
    )
    .await;
    assert_eq!(studio.status(), StatusCode::OK);
    let layered = json_body(
        app.get(&format!("{path}?workspace_id={ws}"), Some(&user.token))
            .await,
    )
    .await;
    assert_eq!(layered["values"]["accent_colour"], "#ff0066");
    assert_eq!(layered["sources"]["accent_colour"], "fallback");
    let schema = json_body(app.get(&format!("{path}/schema"), Some(&user.token)).await).await;
    assert_eq!(
        schema["properties"]["autosave_interval_seconds"]["maximum"],
        600
    );
}

on_both_backends!(preferences_are_typed_layered_and_versioned);
