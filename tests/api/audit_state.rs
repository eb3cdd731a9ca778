//! The state of an account at an instant, folded from the log, against what the API
//! answered at that instant: an account's month of purchases, spends, a plan change, a
//! token created and rotated, and a session revoked.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, TestApp, json_body, spawn_app};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// What the API answered at one moment, and that moment.
struct Snapshot {
    at: String,
    available: u64,
    held: u64,
    sessions: BTreeSet<String>,
    tokens: BTreeSet<String>,
    plan: Option<String>,
    invoices: usize,
}

async fn get(app: &TestApp, path: &str, token: &str) -> Value {
    let response = app.get(path, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    json_body(response).await
}

fn ids(list: &Value, field: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|entry| entry[field].as_str().unwrap().to_owned())
        .collect()
}

/// Reads what the API says now, then notes the instant (every event so far was recorded
/// before it) and waits a little so the next phase's events are recorded after it.
async fn snapshot(app: &TestApp, token: &str) -> Snapshot {
    app.settle().await;
    let credits = get(app, "/me/credits", token).await;
    let sessions = get(app, "/me/sessions", token).await;
    let tokens = get(app, "/me/api-tokens", token).await;
    let subscription = get(app, "/me/subscription", token).await;
    let invoices = get(app, "/me/invoices", token).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    Snapshot {
        at,
        available: credits["balance"].as_u64().unwrap(),
        held: credits["held"].as_u64().unwrap(),
        sessions: ids(&sessions["sessions"], "id"),
        tokens: ids(&tokens["tokens"], "token_id"),
        plan: subscription["plan_id"].as_str().map(str::to_owned),
        invoices: invoices["invoices"].as_array().unwrap().len(),
    }
}

async fn ok(response: reqwest::Response, what: &str) -> Value {
    assert!(
        response.status().is_success(),
        "{what}: {}",
        response.status()
    );
    response.json().await.unwrap_or(Value::Null)
}

async fn the_state_at_each_instant_is_what_the_api_answered_then(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = format!("month-{}@example.com", Uuid::new_v4().simple());
    let account = app.register(&email).await;
    let token = app.login(&email, PASSWORD).await.token;
    let mut moments = vec![snapshot(&app, &token).await];

    // Credits arrive: the signup bonus, and a pack paid through the sandbox's checkout.
    ok(
        app.post("/me/claims/signup-bonus", Some(&token), &json!({}))
            .await,
        "bonus",
    )
    .await;
    let purchase = ok(
        app.post(
            "/me/credits/purchases",
            Some(&token),
            &json!({"pack_id": "credits-500"}),
        )
        .await,
        "purchase",
    )
    .await;
    let url = purchase["checkout_url"].as_str().unwrap();
    ok(app.client.get(url).send().await.unwrap(), "checkout").await;
    moments.push(snapshot(&app, &token).await);

    // Spends: one generation completes, another holds credits still.
    let hold = |id: &str, amount: u64| {
        app.request(Method::POST, "/me/generations", Some(&token))
            .json(
                &json!({"generation_id": id, "estimated_credits": amount, "feature": "generation"}),
            )
            .send()
    };
    ok(hold("gen-a", 40).await.unwrap(), "hold a").await;
    let complete = app
        .post(
            "/me/generations/gen-a/complete",
            Some(&token),
            &json!({"credits": 30}),
        )
        .await;
    ok(complete, "complete a").await;
    ok(hold("gen-b", 25).await.unwrap(), "hold b").await;
    moments.push(snapshot(&app, &token).await);

    // A plan, a second device, an API token.
    let subscribe = |plan: &'static str| {
        app.request(Method::PUT, "/me/subscription", Some(&token))
            .json(&json!({"plan_id": plan}))
            .send()
    };
    ok(subscribe("starter").await.unwrap(), "starter").await;
    let second = app.login(&email, PASSWORD).await;
    let token_id = app
        .create_api_token(&token, "farm", &["credits:read"])
        .await;
    moments.push(snapshot(&app, &token).await);

    // The token is rotated, the second session revoked, the plan upgraded.
    app.rotate_api_token(&token, &token_id).await;
    let revoked = app
        .delete(&format!("/me/sessions/{}", second.id), Some(&token))
        .await;
    ok(revoked, "revoke").await;
    ok(subscribe("creator").await.unwrap(), "creator").await;
    moments.push(snapshot(&app, &token).await);

    let (_, auditor) = app.operator_token("auditor").await;
    let mut seen = BTreeSet::new();
    for (i, moment) in moments.iter().enumerate() {
        let path = format!(
            "/admin/audit/accounts/{account}/state?as_of={}",
            moment.at.replace('+', "%2B")
        );
        let state = get(&app, &path, &auditor).await;
        let what = format!("moment {i} ({}): {state}", moment.at);
        assert_eq!(state["credits"]["available"], moment.available, "{what}");
        assert_eq!(state["credits"]["held"], moment.held, "{what}");
        assert_eq!(
            ids(&state["sessions"], "session_id"),
            moment.sessions,
            "{what}"
        );
        assert_eq!(ids(&state["tokens"], "token_id"), moment.tokens, "{what}");
        assert_eq!(
            state["subscription"]["plan_id"].as_str().map(str::to_owned),
            moment.plan,
            "{what}"
        );
        assert_eq!(
            state["invoices"].as_array().unwrap().len(),
            moment.invoices,
            "{what}"
        );
        assert_eq!(state["profile"]["email"], email.as_str());
        seen.insert((moment.available, moment.held, moment.plan.clone()));
    }
    assert_eq!(
        seen.len(),
        moments.len(),
        "every moment differs from the others"
    );
    assert_eq!(moments[4].plan.as_deref(), Some("creator"));
    assert_eq!(moments[3].sessions.len(), 2);
    assert_eq!(moments[4].sessions.len(), 1);
    assert_eq!(moments[4].tokens, BTreeSet::from([token_id]));
}

/// The instant, once every event so far is recorded before it.
async fn instant(app: &TestApp) -> String {
    app.settle().await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let at = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    at.replace('+', "%2B")
}

/// A workspace deleted since (its key destroyed, so its events' names no longer open)
/// still shows who belonged to it at an earlier instant: its owner, and not a member
/// removed before then.
async fn a_deleted_workspace_s_members_are_still_folded_at_earlier_instants(backend: Backend) {
    use crate::workspaces::{create, join, send};
    let app = spawn_app(backend).await;
    let (_, owner) = app.signed_up().await;
    let (member_email, member) = app.signed_up().await;
    let ws = create(&app, &owner, "Gone Studio").await;
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let id_of = |s: &tests::Session| {
        let app = &app;
        let token = s.token.clone();
        async move {
            json_body(app.get("/me", Some(&token)).await).await["account_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (owner_id, member_id) = (id_of(&owner).await, id_of(&member).await);
    let removed = send(
        &app,
        Method::DELETE,
        &format!("/workspaces/{ws}/members/{member_id}"),
        &owner,
        json!({}),
    )
    .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let before_deletion = instant(&app).await;
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/workspaces/{ws}"),
        &owner,
        json!({"confirm": "Gone Studio"}),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    app.settle().await;

    let (_, auditor) = app.operator_token("auditor").await;
    let state_of = |account: String| {
        let (app, auditor, at) = (&app, auditor.clone(), before_deletion.clone());
        async move {
            get(
                app,
                &format!("/admin/audit/accounts/{account}/state?as_of={at}"),
                &auditor,
            )
            .await
        }
    };
    let owner_state = state_of(owner_id).await;
    assert_eq!(
        owner_state["workspaces"][0]["workspace_id"],
        ws.as_str(),
        "{owner_state}"
    );
    assert_eq!(owner_state["workspaces"][0]["role"], "owner");
    assert!(
        owner_state["workspaces"][0]["name"].is_null(),
        "the name is erased"
    );
    let member_state = state_of(member_id).await;
    assert_eq!(member_state["workspaces"], json!([]), "{member_state}");
}

/// A session idle for the idle timeout had ended at the instant, as the API answered then:
/// the state lists only the live ones.
async fn sessions_idle_too_long_are_not_listed_as_live(backend: Backend) {
    // Long enough that the second session's sign-in, the settling and the read below fit
    // in it on a loaded machine.
    let idle = Duration::from_secs(3);
    let app = tests::spawn_app_with(backend, |setup| setup.serve.session_idle_timeout = idle).await;
    let (email, first) = app.signed_up().await;
    let account = json_body(app.get("/me", Some(&first.token)).await).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first session makes no request for longer than the idle timeout on the log's
    // clock (the wall clock, which the instant reads); the service's clock, which stands
    // still otherwise, is brought to it.
    tokio::time::sleep(idle + Duration::from_millis(300)).await;
    let wall = domain::Timestamp::from_datetime(OffsetDateTime::now_utc());
    app.clock
        .advance(wall.since(commands::Clock::now(&*app.clock)));
    let second = app.login(&email, PASSWORD).await;
    let listed = get(&app, "/me/sessions", &second.token).await;
    assert_eq!(
        ids(&listed["sessions"], "id"),
        BTreeSet::from([second.id.clone()])
    );
    app.settle().await;
    let (_, auditor) = app.operator_token("auditor").await;
    let state = get(
        &app,
        &format!("/admin/audit/accounts/{account}/state"),
        &auditor,
    )
    .await;
    assert_eq!(
        ids(&state["sessions"], "session_id"),
        BTreeSet::from([second.id]),
        "{state}"
    );
}

on_both_backends!(
    the_state_at_each_instant_is_what_the_api_answered_then,
    a_deleted_workspace_s_members_are_still_folded_at_earlier_instants,
    sessions_idle_too_long_are_not_listed_as_live,
);
