//! The Notifications tab, and the e-mails of the embedded default (no broker, `.eml` files
//! in `<data-dir>/mail`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use store::Backend;
use tests::mail::header;
use tests::{
    PASSWORD, Session, TestApp, error_code, eventually, json_body, spawn_app, spawn_app_with,
};

async fn put_preferences(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.put("/me/notifications", Some(&session.token), &body)
        .await
}

async fn preferences_have_defaults_change_one_event_each_and_replay(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    assert_eq!(
        app.get("/me/notifications", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let defaults = json_body(app.get("/me/notifications", Some(&session.token)).await).await;
    assert_eq!(
        defaults,
        json!({"generation_complete": true, "credits_low": true, "billing_receipts": true,
               "newsletter": false, "marketing": false,
               "telegram_generation_complete": false, "telegram_credits_low": false})
    );

    let before = app.event_count().await;
    for bad in [
        json!({"marketing": "yes"}),
        json!({"sms": true}),
        json!({"marketing": true, "nope": false}),
    ] {
        let response = put_preferences(&app, &session, bad.clone()).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(error_code(response).await, "validation_failed");
    }
    let not_json = app
        .request(Method::PUT, "/me/notifications", Some(&session.token))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.event_count().await,
        before,
        "refused changes record nothing"
    );

    let changed = put_preferences(
        &app,
        &session,
        json!({"marketing": true, "credits_low": false, "newsletter": false}),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let changed = json_body(changed).await;
    assert_eq!(changed["marketing"], true);
    assert_eq!(changed["credits_low"], false);
    assert_eq!(changed["newsletter"], false);
    assert_eq!(
        app.event_count().await,
        before + 2,
        "one event per toggle that changed (newsletter was already off)"
    );
    put_preferences(&app, &session, json!({"marketing": false})).await;

    let history = json_body(
        app.get("/me/notifications/history", Some(&session.token))
            .await,
    )
    .await;
    let changes: Vec<(String, bool, String)> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["toggle"].as_str().unwrap().to_owned(),
                c["enabled"].as_bool().unwrap(),
                c["via"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("credits_low".to_owned(), false, "settings".to_owned()),
            ("marketing".to_owned(), true, "settings".to_owned()),
            ("marketing".to_owned(), false, "settings".to_owned()),
        ]
    );
    assert!(history[0]["at"].as_str().unwrap().ends_with('Z'));
}

/// The token of the link at `path` (e.g. `/invitations/`) in `mail`, which starts with
/// `prefix` (quoted-printable unfolded).
pub(crate) fn link_token(mail: &str, path: &str, prefix: &str) -> String {
    let text = mail.replace("=\r\n", "").replace("=\n", "");
    let start = text
        .find(&format!("{path}{prefix}"))
        .unwrap_or_else(|| panic!("a {path} link in {text}"))
        + path.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// The subject of the e-mail that verifies an address (sent at every registration).
pub(crate) const VERIFICATION_SUBJECT: &str = "Confirm your e-mail address";

/// Every `.eml` in the embedded mail folder (a folder per recipient account).
pub(crate) fn mail_files(dir: &Path) -> Vec<String> {
    let entries = |dir: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    entries(dir)
        .into_iter()
        .filter(|path| path.is_dir())
        .flat_map(|account| entries(&account))
        .filter(|path| path.extension().is_some_and(|x| x == "eml"))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .collect()
}

/// Waits until the folder holds `count` messages for `to` (and no more after a pause),
/// leaving out the verification link every registration sends (`email_verification`).
pub(crate) async fn mails_to(app: &TestApp, to: &str, count: usize) -> Vec<String> {
    let dir = app.data_dir().join("mail");
    let addressed = || -> Vec<String> {
        mail_files(&dir)
            .into_iter()
            .filter(|m| header(m, "To").is_some_and(|t| t.contains(to)))
            .filter(|m| header(m, "Subject").is_none_or(|s| s != VERIFICATION_SUBJECT))
            .collect()
    };
    eventually(Duration::from_secs(30), || async {
        match addressed().len() {
            arrived if arrived >= count => Ok(()),
            arrived => Err(format!("{arrived} of {count} e-mails to {to} arrived")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mails = addressed();
    assert_eq!(
        mails.len(),
        count,
        "exactly {count} e-mails to {to}: {:?}",
        subjects(&mails)
    );
    mails
}

fn subjects(mails: &[String]) -> Vec<String> {
    let mut subjects: Vec<String> = mails
        .iter()
        .map(|m| header(m, "Subject").unwrap_or_default())
        .collect();
    subjects.sort();
    subjects
}

async fn generation(app: &TestApp, token: &str, id: &str, estimate: u64, credits: u64) {
    let held = app
        .request(Method::POST, "/api/v1/generations", Some(token))
        .json(&json!({"generation_id": id, "estimated_credits": estimate, "feature": "generation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), StatusCode::CREATED, "{id}");
    let completed = app
        .request(
            Method::POST,
            &format!("/api/v1/generations/{id}/complete"),
            Some(token),
        )
        .json(&json!({"credits": credits}))
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), StatusCode::OK, "{id}");
}

async fn the_embedded_default_writes_each_mail_as_an_eml_file_obeying_toggles(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    let created = json_body(
        app.post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "farm", "scopes": ["generations:write"]}),
        )
        .await,
    )
    .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let mails = mails_to(&app, &email, 1).await;
    assert_eq!(
        subjects(&mails),
        vec!["Security notice: A new API token was created"]
    );
    let notice = &mails[0];
    assert!(notice.contains("Content-Type: text/plain"));
    assert!(notice.contains("Content-Type: text/html"));
    assert!(!notice.contains(&token), "the secret never travels by mail");

    // 100 credits: 30 spent keeps it above 20; the next 60 cross it, once.
    generation(&app, &token, "g1", 40, 30).await;
    mails_to(&app, &email, 2).await;
    generation(&app, &token, "g2", 60, 60).await;
    generation(&app, &token, "g3", 5, 5).await;
    let mails = mails_to(&app, &email, 5).await;
    let seen = subjects(&mails);
    assert_eq!(
        seen.iter()
            .filter(|s| s.starts_with("Your generation"))
            .count(),
        3,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|s| s.contains("running low")).count(),
        1,
        "one low-credits alert per crossing: {seen:?}"
    );

    // Turned off, from the next event on.
    let off = put_preferences(&app, &session, json!({"generation_complete": false})).await;
    assert_eq!(off.status(), StatusCode::OK);
    generation(&app, &token, "g4", 1, 1).await;
    let changed = app
        .request(Method::PUT, "/me/password", Some(&session.token))
        .json(&json!({"current_password": PASSWORD, "new_password": "another-7-long-Passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let mails = mails_to(&app, &email, 6).await;
    assert!(
        subjects(&mails).contains(&"Security notice: Your password was changed".to_owned()),
        "security notices ignore toggles"
    );
}

async fn buy_pack(app: &TestApp, session: &Session) {
    let purchase = json_body(
        app.post(
            "/me/credits/purchases",
            Some(&session.token),
            &json!({"pack_id": "credits-500"}),
        )
        .await,
    )
    .await;
    // The sandbox checkout page pays: it completes the purchase in-process.
    let page = app
        .client
        .get(purchase["checkout_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
}

async fn a_paid_invoice_mails_a_receipt_with_its_pdf_and_new_devices_a_notice(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    buy_pack(&app, &session).await;
    let mails = mails_to(&app, &email, 1).await;
    let receipt = &mails[0];
    let subject = header(receipt, "Subject").unwrap();
    assert!(subject.starts_with("Receipt for invoice 2"), "{subject}");
    let number = subject.rsplit(' ').next().unwrap();
    assert!(
        receipt.contains("Content-Type: application/pdf"),
        "the PDF is attached"
    );
    assert!(receipt.contains(&format!("invoice-{number}.pdf")));

    put_preferences(&app, &session, json!({"billing_receipts": false})).await;
    buy_pack(&app, &session).await;

    // A sign-in from a device class the account has not used before.
    let firefox = app
        .request(Method::POST, "/auth/login", None)
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        )
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(firefox.status(), StatusCode::CREATED);
    let mails = mails_to(&app, &email, 2).await;
    assert_eq!(
        subjects(&mails),
        vec![
            subject.clone(),
            "Security notice: New sign-in from a new device".to_owned(),
        ],
        "no second receipt once turned off"
    );
    let notice = mails
        .iter()
        .find(|m| header(m, "Subject").unwrap().contains("new device"))
        .unwrap();
    assert!(notice.contains("Firefox"), "the device is named: {notice}");
}

/// A generation held and completed by the web app's session (not an API token) is
/// announced too, once.
async fn a_generation_completed_in_the_web_app_mails_its_notice_once(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.mail.settings_url = "https://studio.test/app/".into();
    })
    .await;
    let (email, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    let held = app
        .post(
            "/me/generations",
            Some(&session.token),
            &json!({"generation_id": "web-1", "estimated_credits": 5, "feature": "generation"}),
        )
        .await;
    assert_eq!(held.status(), StatusCode::CREATED);
    let done = app
        .post(
            "/me/generations/web-1/complete",
            Some(&session.token),
            &json!({"credits": 4}),
        )
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    // A retried settlement charges once and announces once.
    let again = app
        .post(
            "/me/generations/web-1/complete",
            Some(&session.token),
            &json!({"credits": 4}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    let mails = mails_to(&app, &email, 1).await;
    assert!(
        subjects(&mails)[0].starts_with("Your generation"),
        "{:?}",
        subjects(&mails)
    );
    // "Manage these e-mails" opens the settings web app, not a path of this service.
    assert!(
        mails[0].contains("https://studio.test/app/settings/notifications"),
        "{}",
        mails[0]
    );
}

on_both_backends!(
    a_generation_completed_in_the_web_app_mails_its_notice_once,
    preferences_have_defaults_change_one_event_each_and_replay,
    the_embedded_default_writes_each_mail_as_an_eml_file_obeying_toggles,
    a_paid_invoice_mails_a_receipt_with_its_pdf_and_new_devices_a_notice,
);
