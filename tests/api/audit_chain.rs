//! Tamper evidence: the hash chain over the stored log. An untouched log verifies (also
//! after an account is crypto-shredded); one byte changed in one stored event through SQL
//! breaks the chain at exactly that event; a deleted event is a broken link too; the CLI
//! says the same, prints the head and checks a published one.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, TestApp, eventually, json_body, spawn_app};

/// Waits until the chainer has linked every event committed so far.
async fn wait_chained(app: &TestApp) {
    let head = app.state.core.log.committed_head().await.expect("log head");
    eventually(Duration::from_secs(20), || async move {
        let chained = projections::chain::head(&app.db).await.expect("chain head");
        if chained.position >= head.0 {
            Ok(())
        } else {
            Err(format!(
                "the chainer did not reach {head:?} (at {})",
                chained.position
            ))
        }
    })
    .await;
}

async fn verify(app: &TestApp, token: &str) -> Value {
    let response = app.get("/admin/audit/verify", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await
}

/// How many events the log holds at or below `position`.
async fn events_up_to(app: &TestApp, position: u64) -> u64 {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE global_position <= $1")
        .bind(position as i64)
        .fetch_one(app.db.pool())
        .await
        .expect("count events");
    count as u64
}

/// An event of the log, as SQL sees it: position, stream, revision, payload text.
async fn stored_event(app: &TestApp, stream_prefix: &str) -> (u64, String, u64, String) {
    let sql = match app.backend {
        Backend::Sqlite => {
            "SELECT global_position, stream_id, stream_revision, data FROM events \
             WHERE stream_id LIKE $1 ORDER BY global_position LIMIT 1"
        }
        Backend::Postgres => {
            "SELECT global_position, stream_id, stream_revision, data::text FROM events \
             WHERE stream_id LIKE $1 ORDER BY global_position LIMIT 1"
        }
    };
    let (position, stream, revision, data): (i64, String, i64, String) = sqlx::query_as(sql)
        .bind(format!("{stream_prefix}%"))
        .fetch_one(app.db.pool())
        .await
        .expect("an event");
    (position as u64, stream, revision as u64, data)
}

/// `text` with one letter or digit inside a JSON string value replaced by another.
fn one_byte_changed(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut in_string = false;
    let mut after_colon = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                after_colon = false;
            } else if after_colon && b.is_ascii_alphanumeric() {
                let mut changed = bytes.to_vec();
                changed[i] = if b == b'x' { b'y' } else { b'x' };
                return String::from_utf8(changed).expect("still UTF-8");
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b':' {
            after_colon = true;
        } else if b == b',' || b == b'{' {
            after_colon = false;
        }
    }
    panic!("no string value to change in {text}");
}

/// Overwrites the stored payload of the event at `position`, behind the service's back.
async fn overwrite_data(app: &TestApp, position: u64, data: &str) {
    let sql = match app.backend {
        Backend::Sqlite => "UPDATE events SET data = $1 WHERE global_position = $2",
        Backend::Postgres => "UPDATE events SET data = $1::jsonb WHERE global_position = $2",
    };
    let updated = sqlx::query(sql)
        .bind(data)
        .bind(position as i64)
        .execute(app.db.pool())
        .await
        .expect("edit the event")
        .rows_affected();
    assert_eq!(updated, 1);
}

/// Registers an account, signs in and deletes it: its key is destroyed, its events stay.
async fn shredded_account(app: &TestApp) {
    let (_, session) = app.signed_up().await;
    let deleted = app
        .request(Method::DELETE, "/me", Some(&session.token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE", "acknowledge_subscription": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
}

async fn runs_the_cli(app: &TestApp, extra: &[&str]) -> (i32, String) {
    let mut args: Vec<String> = ["accounts", "audit", "verify"].map(str::to_owned).to_vec();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.extend(app.storage_args.clone());
    let outcome = api::cli::run_from(args).await.expect("audit verify runs");
    (outcome.exit_code, outcome.stdout)
}

async fn an_edited_event_breaks_the_chain_at_that_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, auditor) = app.operator_token("auditor").await;
    let (_, admin) = app.operator_token("admin").await;
    let (_, session) = app.signed_up().await;
    shredded_account(&app).await;
    app.signed_up().await;
    app.settle().await;
    wait_chained(&app).await;

    // Untouched (one account already erased): intact, for auditors and admins alike.
    let report = verify(&app, &auditor).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["first_broken"], Value::Null, "{report}");
    let head = report["head"]["position"].as_u64().unwrap();
    assert!(head > 0, "{report}");
    assert_eq!(
        report["events_checked"].as_u64().unwrap(),
        events_up_to(&app, head).await,
        "{report}"
    );
    let hash = report["head"]["hash"].as_str().unwrap();
    assert_eq!(hash.len(), 64, "{report}");
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert!(report["unchained"].as_u64().is_some(), "{report}");
    assert_eq!(verify(&app, &admin).await["ok"], true);

    // Operators only.
    let refused = app.get("/admin/audit/verify", Some(&session.token)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let refused = app.get("/admin/audit/verify", None).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // One byte of one stored event changed through SQL: the chain breaks exactly there.
    let (position, stream, revision, data) = stored_event(&app, "account-").await;
    let edited = one_byte_changed(&data);
    assert_eq!(edited.len(), data.len());
    assert_eq!(
        edited
            .bytes()
            .zip(data.bytes())
            .filter(|(a, b)| a != b)
            .count(),
        1
    );
    overwrite_data(&app, position, &edited).await;
    let report = verify(&app, &auditor).await;
    assert_eq!(report["ok"], false, "{report}");
    let broken = &report["first_broken"];
    assert_eq!(broken["position"].as_u64(), Some(position), "{report}");
    assert_eq!(broken["reason"], "hash_mismatch", "{report}");
    assert_eq!(broken["stream"], stream.as_str(), "{report}");
    assert_eq!(broken["revision"].as_u64(), Some(revision), "{report}");
    assert_eq!(
        report["events_checked"].as_u64().unwrap(),
        events_up_to(&app, position).await - 1,
        "{report}"
    );

    // Putting the byte back makes the log verify again: the chain itself was not touched.
    overwrite_data(&app, position, &data).await;
    assert_eq!(verify(&app, &auditor).await["ok"], true);
}

async fn a_deleted_event_is_a_broken_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, auditor) = app.operator_token("auditor").await;
    app.signed_up().await;
    app.signed_up().await;
    app.settle().await;
    wait_chained(&app).await;
    assert_eq!(verify(&app, &auditor).await["ok"], true);

    let (position, _, _, _) = stored_event(&app, "account-").await;
    sqlx::query("DELETE FROM events WHERE global_position = $1")
        .bind(position as i64)
        .execute(app.db.pool())
        .await
        .expect("delete the event");
    let report = verify(&app, &auditor).await;
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(
        report["first_broken"]["position"].as_u64(),
        Some(position),
        "{report}"
    );
    assert_eq!(
        report["first_broken"]["reason"], "missing_event",
        "{report}"
    );
    assert_eq!(report["first_broken"]["stream"], Value::Null, "{report}");
}

async fn the_cli_verifies_prints_the_head_and_checks_a_published_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, auditor) = app.operator_token("auditor").await;
    app.signed_up().await;
    app.settle().await;
    wait_chained(&app).await;

    let (code, stdout) = runs_the_cli(&app, &[]).await;
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["ok"], true, "{report}");
    let position = report["head"]["position"].as_u64().unwrap();
    let hash = report["head"]["hash"].as_str().unwrap().to_owned();
    // The service answers the same head (unless it chained more meanwhile, never less).
    let served = verify(&app, &auditor).await;
    assert!(served["head"]["position"].as_u64().unwrap() >= position);

    let (code, text) = runs_the_cli(&app, &["--format", "text"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("chain intact: "), "{text}");
    assert!(text.contains(&format!("head: {position}:{hash}")), "{text}");

    // A published head is checked: the right one matches, another does not.
    let anchor = format!("{position}:{hash}");
    let (code, stdout) = runs_the_cli(&app, &["--expect-head", &anchor]).await;
    assert_eq!(code, 0, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["anchor"]["matches"], true, "{report}");
    let forged = format!("{position}:{}", "0".repeat(64));
    let (code, stdout) = runs_the_cli(&app, &["--expect-head", &forged]).await;
    assert_eq!(code, 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["anchor"]["matches"], false, "{report}");
    assert_eq!(report["anchor"]["found"], hash.as_str(), "{report}");
    assert!(
        api::cli::run_from(
            [
                "accounts",
                "audit",
                "verify",
                "--expect-head",
                "not-an-anchor"
            ]
            .map(str::to_owned)
            .into_iter()
            .chain(app.storage_args.clone())
        )
        .await
        .is_err()
    );

    // An edited event: exit code 1 and the position, in both formats.
    let (edited_at, _, _, data) = stored_event(&app, "account-").await;
    overwrite_data(&app, edited_at, &one_byte_changed(&data)).await;
    let (code, stdout) = runs_the_cli(&app, &[]).await;
    assert_eq!(code, 1, "{stdout}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["first_broken"]["position"].as_u64(),
        Some(edited_at),
        "{report}"
    );
    let (code, text) = runs_the_cli(&app, &["--format", "text"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!(
            "first broken link: position {edited_at} (account-"
        )),
        "{text}"
    );
    assert!(text.contains("hash_mismatch"), "{text}");
}

#[test]
fn one_byte_changed_changes_exactly_one_value_byte() {
    let text = r#"{"a": 1, "name": "sealed:v1:abc", "x": "q\"z"}"#;
    let changed = one_byte_changed(text);
    assert_eq!(changed, r#"{"a": 1, "name": "xealed:v1:abc", "x": "q\"z"}"#);
    assert!(serde_json::from_str::<Value>(&changed).is_ok());
}

on_both_backends!(
    an_edited_event_breaks_the_chain_at_that_event,
    a_deleted_event_is_a_broken_link,
    the_cli_verifies_prints_the_head_and_checks_a_published_one,
);
