//! A forgotten password: a link e-mailed on request (the same answer whether or not an
//! account holds the address), working once within the hour, ending every session, needing
//! the second factor with 2FA on.

use crate::email_verification::link_tokens;
use crate::notifications::mails_to;
use crate::security::{turn_on_2fa, wrong_code};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, TestApp, error_code, json_body, spawn_app, spawn_app_with_long_sessions};

const NEW_PASSWORD: &str = "another-7-long-Passphrase";
const RESET_SUBJECT: &str = "Reset your password";

async fn ask(app: &TestApp, email: &str) -> reqwest::Response {
    app.post("/auth/password-reset", None, &json!({ "email": email }))
        .await
}

/// The tokens of the reset e-mails to `email` once `count` arrived.
pub(crate) async fn reset_tokens(app: &TestApp, email: &str, count: usize) -> Vec<String> {
    let link = (RESET_SUBJECT, "/reset-password/", "pwr_");
    link_tokens(app, email, link, count).await
}

async fn confirm(app: &TestApp, token: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({"token": token, "new_password": NEW_PASSWORD});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.post("/auth/password-reset/confirm", None, &body).await
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> StatusCode {
    app.post(
        "/auth/login",
        None,
        &json!({"email": email, "password": password}),
    )
    .await
    .status()
}

async fn a_forgotten_password_is_reset_through_the_e_mailed_link(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, first) = app.signed_up().await;
    let second = app.login(&email, PASSWORD).await;
    let api_token = app
        .create_api_token(&first.token, "ci", &["credits:read"])
        .await;

    // The same answer for an address no account holds: nothing tells them apart.
    let unknown = format!("nobody-{}", email);
    assert_eq!(ask(&app, &unknown).await.status(), StatusCode::ACCEPTED);
    let asked = ask(&app, &email).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let token = reset_tokens(&app, &email, 1).await.pop().unwrap();
    let malformed = ask(&app, "not an address").await;
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // A weak password is refused and the link still works.
    let weak = app
        .post(
            "/auth/password-reset/confirm",
            None,
            &json!({"token": token, "new_password": "password"}),
        )
        .await;
    assert_eq!(weak.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(weak).await, "weak_password");

    let done = confirm(&app, &token, json!({"revoke_tokens": true})).await;
    assert_eq!(done.status(), StatusCode::OK);
    let done = json_body(done).await;
    assert_eq!(done["sessions_revoked"], 2, "{done}");
    assert_eq!(done["tokens_revoked"], 1, "{done}");

    // Every session and token ends at once; only the new password signs in.
    for old in [&first.token, &second.token, &api_token] {
        assert_eq!(
            app.get("/me", Some(old)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        sign_in(&app, &email, PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    let session = app.login(&email, NEW_PASSWORD).await;

    // The link works once.
    let again = confirm(&app, &token, json!({})).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(again).await, "password_reset_link_invalid");

    // It reached the address: the address is verified.
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["email_verified"], true);
    let kinds = app.security_kinds(&session.token).await;
    for kind in [
        "password_reset_requested",
        "password_reset",
        "email_verified",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }
    assert!(!kinds.iter().any(|k| k == "password_changed"), "{kinds:?}");

    // The owner hears of it; the address no account holds got nothing.
    // The reset link, the API token's notice and the password's.
    let mails = mails_to(&app, &email, 3).await;
    assert!(
        mails
            .iter()
            .any(|m| m.contains("Your password was changed")),
        "a security notice"
    );
    let folder = app.data_dir().join("mail");
    let all = crate::notifications::mail_files(&folder);
    assert!(!all.iter().any(|m| m.contains(&unknown)));
}

async fn links_are_replaced_expire_and_go_out_once_a_minute(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    // A burst sends one link: the minute is the account's to decide.
    let burst: Vec<_> = (0..6).map(|_| ask(&app, &email)).collect();
    for answer in futures_util::future::join_all(burst).await {
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
    let first = reset_tokens(&app, &email, 1).await.pop().unwrap();
    // The others were refused, not delayed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    reset_tokens(&app, &email, 1).await;

    app.clock.advance(Duration::from_secs(61));
    assert_eq!(ask(&app, &email).await.status(), StatusCode::ACCEPTED);
    let tokens = reset_tokens(&app, &email, 2).await;
    let second = tokens.into_iter().find(|t| *t != first).unwrap();
    let replaced = confirm(&app, &first, json!({})).await;
    assert_eq!(replaced.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(replaced).await, "password_reset_link_invalid");

    app.clock.advance(Duration::from_secs(3600));
    let expired = confirm(&app, &second, json!({})).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    assert_eq!(error_code(expired).await, "password_reset_link_expired");

    // A made-up link, and one signed with another key.
    let forged = format!("pwr_{}", "A".repeat(70));
    let made_up = confirm(&app, &forged, json!({})).await;
    assert_eq!(made_up.status(), StatusCode::NOT_FOUND);

    // Nothing changed: the old password and the session still work.
    assert_eq!(
        app.get("/me", Some(&session.token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(sign_in(&app, &email, PASSWORD).await, StatusCode::CREATED);
}

async fn with_two_factor_on_the_mailbox_alone_does_not_reset(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    let (_, recovery_codes) = turn_on_2fa(&app, &session).await;
    assert_eq!(ask(&app, &email).await.status(), StatusCode::ACCEPTED);
    let token = reset_tokens(&app, &email, 1).await.pop().unwrap();

    let without = confirm(&app, &token, json!({})).await;
    assert_eq!(without.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(without).await, "totp_required");
    let wrong = confirm(&app, &token, json!({"recovery_code": "not-a-code"})).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(wrong).await, "invalid_second_factor");
    assert_eq!(
        app.get("/me", Some(&session.token)).await.status(),
        StatusCode::OK,
        "nothing changed"
    );

    let with_code = json!({"recovery_code": recovery_codes[0]});
    let done = confirm(&app, &token, with_code).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(
        app.get("/me", Some(&session.token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The recovery code is used up.
    let reused = app
        .post(
            "/auth/login",
            None,
            &json!({"email": email, "password": NEW_PASSWORD, "recovery_code": recovery_codes[0]}),
        )
        .await;
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let other = app
        .post(
            "/auth/login",
            None,
            &json!({"email": email, "password": NEW_PASSWORD, "recovery_code": recovery_codes[1]}),
        )
        .await;
    assert_eq!(other.status(), StatusCode::CREATED);
}

async fn codes_guessed_through_a_reset_are_throttled(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    let (secret, _) = turn_on_2fa(&app, &session).await;
    assert_eq!(ask(&app, &email).await.status(), StatusCode::ACCEPTED);
    let token = reset_tokens(&app, &email, 1).await.pop().unwrap();
    let wrong = json!({"totp_code": wrong_code(&app, &secret)});
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(confirm(&app, &token, wrong.clone()).await.status());
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    let throttled = confirm(&app, &token, wrong).await;
    assert_eq!(
        throttled.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    // The address has one budget: signing in with a code waits too.
    let signing_in = app
        .post(
            "/auth/login",
            None,
            &json!({"email": email, "password": PASSWORD, "totp_code": app.totp_now(&secret)}),
        )
        .await;
    assert_eq!(signing_in.status(), StatusCode::TOO_MANY_REQUESTS);
}

on_both_backends!(
    a_forgotten_password_is_reset_through_the_e_mailed_link,
    links_are_replaced_expire_and_go_out_once_a_minute,
    with_two_factor_on_the_mailbox_alone_does_not_reset,
    codes_guessed_through_a_reset_are_throttled,
);
