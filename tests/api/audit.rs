//! Audit of an account for operators: its events in log order with their envelope, paged
//! and bounded in time, personal fields erased after a deletion; who may read them; and the
//! CLI's `accounts audit events|state`, which answers as the routes do.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::{PASSWORD, TestApp, error_code, json_body, spawn_app};
use uuid::Uuid;

async fn events(app: &TestApp, token: &str, account: &str, query: &str) -> Value {
    let response = app
        .get(
            &format!("/admin/audit/accounts/{account}/events{query}"),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "events{query}");
    json_body(response).await
}

fn instant(event: &Value) -> time::OffsetDateTime {
    let text = event["recorded_at"].as_str().unwrap();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

/// Registers an account and signs in: `(account id, email, session token)`.
async fn account(app: &TestApp) -> (String, String, String) {
    let email = format!("audit-{}@example.com", Uuid::new_v4().simple());
    let id = app.register(&email).await;
    let session = app.login(&email, PASSWORD).await;
    (id, email, session.token)
}

async fn events_list_the_accounts_streams_in_log_order_with_metadata(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, email, token) = account(&app).await;
    let (other, _, other_token) = account(&app).await;
    let claimed = app
        .request(Method::POST, "/me/claims/signup-bonus", Some(&token))
        .header("Idempotency-Key", "audit-claim-1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(claimed.status().is_success(), "{}", claimed.status());
    app.post("/me/claims/signup-bonus", Some(&other_token), &json!({}))
        .await;
    let token_id = app
        .create_api_token(&token, "audit", &["credits:read"])
        .await;
    let workspace = app
        .post(
            "/workspaces",
            Some(&token),
            &json!({"name": "Lighthouse Films"}),
        )
        .await;
    assert_eq!(workspace.status(), StatusCode::CREATED);
    let workspace = json_body(workspace).await["workspace_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.settle().await;
    let (_, auditor) = app.operator_token("auditor").await;

    let all = events(&app, &auditor, &id, "?limit=1000").await;
    assert_eq!(all["account_id"], id.as_str());
    assert!(all["next_cursor"].is_null());
    let list = all["events"].as_array().unwrap().clone();
    let streams: Vec<&str> = list.iter().map(|e| e["stream"].as_str().unwrap()).collect();
    for stream in [
        format!("account-{id}"),
        format!("credits-{id}"),
        format!("accesstoken-{token_id}"),
        format!("workspace-{workspace}"),
    ] {
        assert!(
            streams.contains(&stream.as_str()),
            "{stream} in {streams:?}"
        );
    }
    assert!(
        streams.iter().all(|s| !s.contains(&other)),
        "another account's streams: {streams:?}"
    );
    let others = events(&app, &auditor, &other, "?limit=1000").await;
    assert!(
        !others.to_string().contains(&workspace),
        "a workspace it never belonged to"
    );
    let created = list
        .iter()
        .find(|e| e["event_type"] == "WorkspaceCreated")
        .unwrap();
    assert_eq!(created["data"]["name"], "Lighthouse Films");
    assert_eq!(created["data_subject"], workspace.as_str());
    let state = app
        .get(&format!("/admin/audit/accounts/{id}/state"), Some(&auditor))
        .await;
    let state = json_body(state).await;
    assert_eq!(state["workspaces"][0]["workspace_id"], workspace.as_str());
    assert_eq!(state["workspaces"][0]["role"], "owner");
    assert_eq!(state["workspaces"][0]["name"], "Lighthouse Films");
    assert_eq!(state["tokens"][0]["token_id"], token_id.as_str());
    let positions: Vec<u64> = list
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    for event in &list {
        for field in [
            "event_id",
            "event_type",
            "recorded_at",
            "occurred_at",
            "correlation_id",
        ] {
            assert!(event[field].is_string(), "{field} of {event}");
        }
        assert!(event["actor"]["kind"].is_string(), "{event}");
        assert!(event["revision"].is_u64() && event["schema_version"].is_u64());
    }
    let registered = list
        .iter()
        .find(|e| e["event_type"] == "AccountRegistered")
        .unwrap();
    assert_eq!(registered["personal_data"], "opened");
    assert_eq!(registered["data"]["email"], email.as_str());
    assert_eq!(
        registered["data"]["password_hash"],
        json!({"redacted": true})
    );
    assert_eq!(registered["actor"]["kind"], "anonymous");
    let granted = list
        .iter()
        .find(|e| e["event_type"] == "CreditsGranted")
        .unwrap();
    assert_eq!(granted["idempotency_key"], "audit-claim-1");
    assert_eq!(granted["actor"]["kind"], "session");

    // Pages of two, followed by their cursors, are the whole list.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = events(&app, &auditor, &id, &query).await;
        let got = page["events"].as_array().unwrap();
        assert!(got.len() <= 2);
        paged.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    // A cursor past every position, up to the largest the pattern allows (past SQL's
    // integers), is an empty last page, not the first one again.
    for cursor in [
        "9223372036854775807",
        "9223372036854775808",
        "9999999999999999999",
    ] {
        let page = events(&app, &auditor, &id, &format!("?cursor={cursor}")).await;
        assert_eq!(page["events"], json!([]), "{cursor}");
        assert!(page["next_cursor"].is_null(), "{cursor}");
    }
    // The activity flusher may append to the account's streams meanwhile: only after.
    assert_eq!(paged[..list.len()], list[..]);
    let last = positions[positions.len() - 1];
    assert!(
        paged[list.len()..]
            .iter()
            .all(|e| e["position"].as_u64().unwrap() > last)
    );

    // `from` and `to` bound the recorded time, inclusive.
    let middle_text = list[list.len() / 2]["recorded_at"].as_str().unwrap();
    let middle = instant(&list[list.len() / 2]);
    let encoded = middle_text.replace('+', "%2B");
    let from = events(&app, &auditor, &id, &format!("?limit=1000&from={encoded}")).await;
    let to = events(&app, &auditor, &id, &format!("?limit=1000&to={encoded}")).await;
    let listed = |page: &Value| -> Vec<Value> {
        let events = page["events"].as_array().unwrap().iter();
        events
            .filter(|e| e["position"].as_u64().unwrap() <= last)
            .cloned()
            .collect()
    };
    let (from, to) = (listed(&from), listed(&to));
    assert!(from.iter().all(|e| instant(e) >= middle));
    assert!(to.iter().all(|e| instant(e) <= middle));
    assert!(from.iter().any(|e| instant(e) == middle));
    assert!(to.iter().any(|e| instant(e) == middle));
    assert_eq!(
        from.len() + to.len(),
        list.len() + list.iter().filter(|e| instant(e) == middle).count()
    );
}

async fn only_operators_read_audits_and_bad_input_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _, token) = account(&app).await;
    let (_, admin) = app.operator_token("admin").await;
    let (_, service) = app.operator_token("service").await;
    let events_path = format!("/admin/audit/accounts/{id}/events");
    let state_path = format!("/admin/audit/accounts/{id}/state");
    for path in [&events_path, &state_path] {
        assert_eq!(app.get(path, Some(&admin)).await.status(), StatusCode::OK);
        let session = app.get(path, Some(&token)).await;
        assert_eq!(session.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(session).await, "invalid_admin_token");
        assert_eq!(app.get(path, None).await.status(), StatusCode::UNAUTHORIZED);
        let refused = app.get(path, Some(&service)).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(error_code(refused).await, "insufficient_role");
    }
    let unknown = Uuid::new_v4();
    for path in [
        format!("/admin/audit/accounts/{unknown}/events"),
        format!("/admin/audit/accounts/{unknown}/state"),
    ] {
        let missing = app.get(&path, Some(&admin)).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(missing).await, "account_not_found");
    }
    for query in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?cursor=abc",
        "?cursor=99999999999999999999",
        "?from=yesterday",
        "?to=2026-13-01T00:00:00Z",
    ] {
        let refused = app
            .get(&format!("{events_path}{query}"), Some(&admin))
            .await;
        assert!(
            refused.status().is_client_error(),
            "{query}: {}",
            refused.status()
        );
        assert!(!error_code(refused).await.is_empty(), "{query}");
    }
    for as_of in ["soon", ""] {
        let refused = app
            .get(&format!("{state_path}?as_of={as_of}"), Some(&admin))
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{as_of:?}"
        );
    }
    let bad_id = app
        .get("/admin/audit/accounts/not-a-uuid/events", Some(&admin))
        .await;
    assert!(bad_id.status().is_client_error());
    assert!(!error_code(bad_id).await.is_empty());
    // A state in the future is the state now.
    let later = app
        .get(
            &format!("{state_path}?as_of=2999-01-01T00:00:00Z"),
            Some(&admin),
        )
        .await;
    assert_eq!(later.status(), StatusCode::OK);
    assert!(json_body(later).await["as_of"].as_str().unwrap() < "2999");
}

async fn personal_fields_read_as_erased_once_the_account_is_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _, token) = account(&app).await;
    let deleted = app
        .request(Method::DELETE, "/me", Some(&token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE"}))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    app.settle().await;
    let (_, auditor) = app.operator_token("auditor").await;
    let list = events(&app, &auditor, &id, "").await["events"].clone();
    let list = list.as_array().unwrap();
    let registered = list
        .iter()
        .find(|e| e["event_type"] == "AccountRegistered")
        .unwrap();
    assert_eq!(registered["personal_data"], "erased");
    for field in ["email", "display_name", "password_hash"] {
        assert_eq!(
            registered["data"][field],
            json!({"erased": true}),
            "{field}"
        );
    }
    assert_eq!(registered["data"]["account_id"], id.as_str());
    let erased = list
        .iter()
        .find(|e| e["event_type"] == "AccountErased")
        .unwrap();
    assert_eq!(erased["personal_data"], "none");
    let state = app
        .get(&format!("/admin/audit/accounts/{id}/state"), Some(&auditor))
        .await;
    assert_eq!(state.status(), StatusCode::OK);
    let state = json_body(state).await;
    assert_eq!(state["erased"], true);
    assert!(state["profile"]["email"].is_null());
    assert!(state["sessions"].as_array().unwrap().is_empty());
}

async fn the_cli_answers_as_the_routes_do(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _, token) = account(&app).await;
    app.post("/me/claims/signup-bonus", Some(&token), &json!({}))
        .await;
    app.settle().await;
    let (_, auditor) = app.operator_token("auditor").await;
    let cli = |extra: &[&str]| {
        let mut args: Vec<String> = ["accounts", "audit"].map(str::to_owned).to_vec();
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args.extend(app.storage_args.clone());
        args
    };
    // Bounded by an instant, so that an activity flush meanwhile changes neither answer.
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = api::cli::run_from(cli(&["events", &id, "--to", &now]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    let printed: Value = serde_json::from_str(&out.stdout).unwrap();
    let to = format!("?to={}", now.replace('+', "%2B"));
    assert_eq!(printed, events(&app, &auditor, &id, &to).await);

    let table = api::cli::run_from(cli(&["events", &id, "--format", "table"]))
        .await
        .unwrap();
    assert!(table.stdout.starts_with("POSITION"), "{}", table.stdout);
    assert!(table.stdout.contains("AccountRegistered"));
    assert!(table.stdout.contains(&format!("credits-{id}")));

    let state = api::cli::run_from(cli(&["state", &id, "--as-of", &now]))
        .await
        .unwrap();
    assert_eq!(state.exit_code, 0);
    let state: Value = serde_json::from_str(&state.stdout).unwrap();
    let routed = json_body(
        app.get(
            &format!(
                "/admin/audit/accounts/{id}/state?as_of={}",
                now.replace('+', "%2B")
            ),
            Some(&auditor),
        )
        .await,
    )
    .await;
    assert_eq!(state, routed);
    assert!(
        state["credits"]["available"].as_u64().unwrap() > 0,
        "{state}"
    );
    let table = api::cli::run_from(cli(&["state", &id, "--format", "table"]))
        .await
        .unwrap();
    assert!(table.stdout.contains("account_id"), "{}", table.stdout);
    assert!(table.stdout.contains("credits"));

    let unknown = Uuid::new_v4().to_string();
    let refused = api::cli::run_from(cli(&["events", &unknown]))
        .await
        .unwrap();
    assert_eq!(refused.exit_code, 2);
    let refused = api::cli::run_from(cli(&["state", &id, "--as-of", "soon"]))
        .await
        .unwrap();
    assert_eq!(refused.exit_code, 2);
}

on_both_backends!(
    events_list_the_accounts_streams_in_log_order_with_metadata,
    only_operators_read_audits_and_bad_input_is_refused,
    personal_fields_read_as_erased_once_the_account_is_deleted,
    the_cli_answers_as_the_routes_do,
);
