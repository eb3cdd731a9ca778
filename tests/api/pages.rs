//! The lists an account reads page by page — sessions, API and CLI tokens, invoices,
//! workspaces, a workspace's invitations and the consent history — as
//! `GET /me/credits/transactions` does: `limit` (1 to 100, 50 by default) and the previous
//! page's cursor (empty: the first page); bad values are JSON errors. The responses keep their fields and gain `next_cursor` (the history, a list,
//! gains a `Next-Cursor` header).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::Backend;
use tests::{Session, TestApp, error_code, json_body, spawn_app};

/// Every page of `path` (`field` holds the entries), `limit` at a time: the entries' `key`
/// in order, and how many pages.
async fn walk(
    app: &TestApp,
    session: &Session,
    path: &str,
    field: &str,
    key: &str,
    limit: u32,
) -> (Vec<String>, usize) {
    let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, String::new());
    loop {
        let page = app
            .get(
                &format!("{path}?limit={limit}&cursor={cursor}"),
                Some(&session.token),
            )
            .await;
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let page = json_body(page).await;
        let entries = page[field].as_array().expect(field);
        assert!(entries.len() <= limit as usize, "{path}: {page}");
        keys.extend(entries.iter().map(|e| e[key].to_string()));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return (keys, pages),
        }
    }
}

/// The entries' `key` of the whole list in one page.
async fn all(app: &TestApp, session: &Session, path: &str, field: &str, key: &str) -> Vec<String> {
    let page = json_body(app.get(path, Some(&session.token)).await).await;
    assert!(page["next_cursor"].is_null(), "{path}: one page: {page}");
    page[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e[key].to_string())
        .collect()
}

async fn sessions_tokens_and_invoices_come_a_page_at_a_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    for _ in 0..4 {
        app.login(&email, tests::PASSWORD).await;
    }
    for n in 0..5 {
        let api = json!({"label": format!("api {n}"), "scopes": ["usage:read"]});
        assert_eq!(
            app.post("/me/api-tokens", Some(&session.token), &api)
                .await
                .status(),
            StatusCode::CREATED
        );
        let cli = json!({"label": format!("cli {n}"), "kind": "recorder"});
        assert_eq!(
            app.post("/me/cli-tokens", Some(&session.token), &cli)
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    // Three invoices: a subscription and two upgrades.
    for plan in ["starter", "creator", "studio"] {
        let changed = app
            .request(Method::PUT, "/me/subscription", Some(&session.token))
            .json(&json!({"plan_id": plan}))
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK, "{plan}");
    }
    // A workspace's invitations: four sent, one revoked (they stay listed).
    let ws = crate::workspaces::create(&app, &session, "Paged").await;
    let mut sent = Vec::new();
    for n in 0..4 {
        let invited =
            crate::workspaces::invite(&app, &ws, &session, &format!("p{n}@example.com"), "member")
                .await;
        assert_eq!(invited.status(), StatusCode::CREATED);
        sent.push(
            json_body(invited).await["invitation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let revoked = app
        .delete(
            &format!("/workspaces/{ws}/invitations/{}", sent[0]),
            Some(&session.token),
        )
        .await;
    assert!(revoked.status().is_success(), "{}", revoked.status());
    // Three workspaces in all, listed oldest first.
    let mut created = vec![format!("\"{ws}\"")];
    for name in ["Second", "Third"] {
        // A later creation time (the clock stands still otherwise; the id would order them).
        app.clock.advance(std::time::Duration::from_secs(1));
        let id = crate::workspaces::create(&app, &session, name).await;
        created.push(format!("\"{id}\""));
    }
    app.settle().await;

    let listed = all(
        &app,
        &session,
        "/me/workspaces",
        "workspaces",
        "workspace_id",
    )
    .await;
    assert_eq!(listed, created, "oldest first");
    let invitations = format!("/workspaces/{ws}/invitations");
    for (path, field, key, count) in [
        ("/me/workspaces", "workspaces", "workspace_id", 3),
        ("/me/sessions", "sessions", "id", 5),
        ("/me/api-tokens", "tokens", "token_id", 5),
        ("/me/cli-tokens", "tokens", "token_id", 5),
        ("/me/invoices", "invoices", "id", 3),
        (invitations.as_str(), "invitations", "invitation_id", 4),
    ] {
        let whole = all(&app, &session, path, field, key).await;
        assert_eq!(whole.len(), count, "{path}");
        for limit in [1, 2, 100] {
            let (paged, pages) = walk(&app, &session, path, field, key, limit).await;
            assert_eq!(
                paged, whole,
                "{path} by {limit}: the same entries, in order, once"
            );
            assert_eq!(
                pages,
                count.div_ceil(limit as usize).max(1),
                "{path} by {limit}"
            );
        }
    }
}

async fn the_consent_history_comes_a_page_at_a_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    for enabled in [true, false, true, false, true] {
        let changed = app
            .put(
                "/me/notifications",
                Some(&session.token),
                &json!({"newsletter": enabled}),
            )
            .await;
        assert_eq!(changed.status(), StatusCode::OK);
    }
    let whole = json_body(
        app.get("/me/notifications/history", Some(&session.token))
            .await,
    )
    .await;
    assert_eq!(whole.as_array().unwrap().len(), 5, "{whole}");

    let (mut entries, mut cursor) = (Vec::<Value>::new(), String::new());
    for expected in [2, 2, 1] {
        let page = app
            .get(
                &format!("/me/notifications/history?limit=2&cursor={cursor}"),
                Some(&session.token),
            )
            .await;
        assert_eq!(page.status(), StatusCode::OK);
        let next = page
            .headers()
            .get("next-cursor")
            .map(|v| v.to_str().unwrap().to_owned());
        let page = json_body(page).await;
        assert_eq!(page.as_array().unwrap().len(), expected, "{page}");
        entries.extend(page.as_array().unwrap().iter().cloned());
        match next {
            Some(next) => cursor = next,
            None => assert_eq!(expected, 1, "only the last page has no cursor"),
        }
    }
    assert_eq!(Value::Array(entries), whole, "oldest first, each once");
    // Cursors past the end, up to the largest the pattern allows (past SQL's integers):
    // an empty last page, not the first one again.
    for cursor in ["5", "9223372036854775808", "9999999999999999999"] {
        let page = app
            .get(
                &format!("/me/notifications/history?limit=2&cursor={cursor}"),
                Some(&session.token),
            )
            .await;
        assert_eq!(page.status(), StatusCode::OK, "{cursor}");
        assert!(page.headers().get("next-cursor").is_none(), "{cursor}");
        assert_eq!(json_body(page).await, json!([]), "{cursor}");
    }
}

async fn bad_limits_and_cursors_are_json_errors(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let ws = crate::workspaces::create(&app, &session, "Limits").await;
    let invitations = format!("/workspaces/{ws}/invitations");
    for path in [
        "/me/sessions",
        "/me/api-tokens",
        "/me/cli-tokens",
        "/me/invoices",
        "/me/notifications/history",
        "/me/workspaces",
        invitations.as_str(),
    ] {
        for (query, status, code) in [
            (
                "limit=0",
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                "limit=101",
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                "limit=-1",
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            ("limit=ten", StatusCode::BAD_REQUEST, "invalid_query"),
            (
                "cursor=not%20a%20cursor",
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
        ] {
            let response = app
                .get(&format!("{path}?{query}"), Some(&session.token))
                .await;
            assert_eq!(response.status(), status, "{path}?{query}");
            assert_eq!(error_code(response).await, code, "{path}?{query}");
        }
        for query in ["limit=100", "limit=1", "cursor=", ""] {
            let response = app
                .get(&format!("{path}?{query}"), Some(&session.token))
                .await;
            assert_eq!(response.status(), StatusCode::OK, "{path}?{query}");
        }
    }
}

on_both_backends!(
    sessions_tokens_and_invoices_come_a_page_at_a_time,
    the_consent_history_comes_a_page_at_a_time,
    bad_limits_and_cursors_are_json_errors,
);
