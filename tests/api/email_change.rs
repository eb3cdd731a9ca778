//! Changing the account's address: asked for with the password, confirmed through the link
//! e-mailed to the new address (which then signs in, and is verified), told to the old
//! address (which is free again); replaced, withdrawn, expired and taken links move
//! nothing.

use crate::email_verification::link_tokens;
use crate::notifications::mails_to;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, Session, TestApp, error_code, json_body, spawn_app};

const CHANGE_SUBJECT: &str = "Confirm your new e-mail address";
const CHANGED_SUBJECT: &str = "Your e-mail address was changed";

/// Another address for `email`'s mailbox, which no `To:` of `email` contains.
fn elsewhere(email: &str, domain: &str) -> String {
    email.replace('@', &format!("@{domain}."))
}

async fn ask(app: &TestApp, session: &Session, new_email: &str) -> reqwest::Response {
    let body = json!({"new_email": new_email, "password": PASSWORD});
    app.post("/me/email/change", Some(&session.token), &body)
        .await
}

async fn confirm(app: &TestApp, token: &str) -> reqwest::Response {
    let body = json!({ "token": token });
    app.post("/auth/email-change/confirm", None, &body).await
}

/// The tokens of the change links to `email` once `count` arrived.
async fn change_tokens(app: &TestApp, email: &str, count: usize) -> Vec<String> {
    let link = (CHANGE_SUBJECT, "/confirm-email-change/", "emc_");
    link_tokens(app, email, link, count).await
}

async fn sign_in(app: &TestApp, email: &str) -> StatusCode {
    let body = json!({"email": email, "password": PASSWORD});
    app.post("/auth/login", None, &body).await.status()
}

async fn the_new_address_takes_over_once_its_link_is_opened(backend: Backend) {
    let app = spawn_app(backend).await;
    let (old, session) = app.signed_up().await;
    let new = elsewhere(&old, "moved");

    let wrong_password = app
        .post(
            "/me/email/change",
            Some(&session.token),
            &json!({"new_email": new, "password": "not-the-password-1"}),
        )
        .await;
    assert_eq!(wrong_password.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong_password).await, "invalid_current_password");
    let same = ask(&app, &session, &old.to_uppercase()).await;
    assert_eq!(same.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(same).await, "email_unchanged");
    let malformed = ask(&app, &session, "not an address").await;
    assert_eq!(malformed.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let asked = ask(&app, &session, &new).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    let asked = json_body(asked).await;
    assert_eq!(asked["email"], new.as_str(), "{asked}");
    // Until the link is opened the account keeps its address, and shows the change.
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["email"], old.as_str());
    assert_eq!(me["pending_email"]["email"], new.as_str(), "{me}");
    assert_eq!(me["pending_email"]["expires_at"], asked["expires_at"]);
    assert_eq!(sign_in(&app, &new).await, StatusCode::UNAUTHORIZED);

    let token = change_tokens(&app, &new, 1).await.pop().unwrap();
    assert_eq!(confirm(&app, &token).await.status(), StatusCode::NO_CONTENT);
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["email"], new.as_str(), "{me}");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["pending_email"], serde_json::Value::Null);
    // The session goes on; the new address signs in, the old one no longer does.
    assert_eq!(sign_in(&app, &new).await, StatusCode::CREATED);
    assert_eq!(sign_in(&app, &old).await, StatusCode::UNAUTHORIZED);
    // Opening the link again changes nothing.
    assert_eq!(confirm(&app, &token).await.status(), StatusCode::NO_CONTENT);

    // The old address is told where the account went, masked (it may be someone else's).
    let told = mails_to(&app, &old, 1).await.pop().unwrap();
    let unfolded = told.replace("=\r\n", "").replace("=\n", "");
    assert!(told.contains(CHANGED_SUBJECT), "{told}");
    let masked = format!("u***@{}", new.split_once('@').unwrap().1);
    assert!(unfolded.contains(&masked), "{told}");
    assert!(!unfolded.contains(&new), "{told}");
    let kinds = app.security_kinds(&session.token).await;
    for kind in ["email_change_requested", "email_changed"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}: {kinds:?}");
    }

    // The old address is free; the new one is the account's.
    let taken = app
        .post(
            "/auth/register",
            None,
            &json!({"email": new, "password": PASSWORD, "display_name": "Other"}),
        )
        .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    app.register(&old).await;
}

async fn replaced_withdrawn_expired_and_taken_changes_move_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (old, session) = app.signed_up().await;
    let (held, _) = app.signed_up().await;
    let taken = ask(&app, &session, &held).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(taken).await, "email_taken");

    // One request a minute; the next replaces the link.
    let (first, second) = (elsewhere(&old, "first"), elsewhere(&old, "second"));
    assert_eq!(
        ask(&app, &session, &first).await.status(),
        StatusCode::ACCEPTED
    );
    let soon = ask(&app, &session, &second).await;
    assert_eq!(soon.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error_code(soon).await, "email_change_requested_recently");
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(
        ask(&app, &session, &second).await.status(),
        StatusCode::ACCEPTED
    );
    let replaced = change_tokens(&app, &first, 1).await.pop().unwrap();
    let refused = confirm(&app, &replaced).await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(refused).await, "email_change_link_invalid");

    // Withdrawn: the link no longer works.
    let withdrawn = change_tokens(&app, &second, 1).await.pop().unwrap();
    let cancelled = app.delete("/me/email/change", Some(&session.token)).await;
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["pending_email"], serde_json::Value::Null, "{me}");
    assert_eq!(
        confirm(&app, &withdrawn).await.status(),
        StatusCode::NOT_FOUND
    );

    // Someone registers the address before the link is opened: it stays theirs.
    app.clock.advance(Duration::from_secs(61));
    let raced = elsewhere(&old, "raced");
    assert_eq!(
        ask(&app, &session, &raced).await.status(),
        StatusCode::ACCEPTED
    );
    let token = change_tokens(&app, &raced, 1).await.pop().unwrap();
    app.register(&raced).await;
    let lost = confirm(&app, &token).await;
    assert_eq!(lost.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(lost).await, "email_taken");

    // A day on, the link is dead.
    app.clock.advance(Duration::from_secs(61));
    let late = elsewhere(&old, "late");
    assert_eq!(
        ask(&app, &session, &late).await.status(),
        StatusCode::ACCEPTED
    );
    let token = change_tokens(&app, &late, 1).await.pop().unwrap();
    app.clock.advance(Duration::from_secs(86_400));
    let expired = confirm(&app, &token).await;
    assert_eq!(expired.status(), StatusCode::GONE);
    assert_eq!(error_code(expired).await, "email_change_link_expired");
    let forged = confirm(&app, &format!("emc_{}", "A".repeat(70))).await;
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);

    // Nothing moved.
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["email"], old.as_str(), "{me}");
    assert_eq!(me["pending_email"], serde_json::Value::Null, "{me}");
    assert_eq!(sign_in(&app, &old).await, StatusCode::CREATED);
}

async fn a_stale_session_proves_itself_again_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (old, session) = app.signed_up().await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = ask(&app, &session, &elsewhere(&old, "moved")).await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
}

on_both_backends!(
    the_new_address_takes_over_once_its_link_is_opened,
    replaced_withdrawn_expired_and_taken_changes_move_nothing,
    a_stale_session_proves_itself_again_first,
);
