//! Verifying an account's e-mail address: the link e-mailed at registration (and again on
//! request), only the latest working until it expires, and invitations answered only by a
//! verified address.

use crate::notifications::{VERIFICATION_SUBJECT, link_token, mail_files};
use crate::workspaces::{create, invitation_token, invite};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use store::Backend;
use tests::mail::header;
use tests::{TestApp, error_code, eventually, json_body, spawn_app};

/// The tokens of the e-mails with `subject` to `to` once `count` arrived (quoted-printable
/// unfolded), each read from its link (`<path><prefix>…`), in no particular order.
pub(crate) async fn link_tokens(
    app: &TestApp,
    to: &str,
    (subject, path, prefix): (&str, &str, &str),
    count: usize,
) -> Vec<String> {
    let dir = app.data_dir().join("mail");
    let mails = || -> Vec<String> {
        mail_files(&dir)
            .into_iter()
            .filter(|m| header(m, "To").is_some_and(|t| t.contains(to)))
            .filter(|m| header(m, "Subject").is_some_and(|s| s == subject))
            .collect()
    };
    eventually(Duration::from_secs(30), || async {
        match mails().len() {
            arrived if arrived >= count => Ok(()),
            arrived => Err(format!(
                "{arrived} of {count} e-mails \"{subject}\" to {to}"
            )),
        }
    })
    .await;
    let mails = mails();
    assert_eq!(mails.len(), count, "exactly {count} e-mails \"{subject}\"");
    mails
        .iter()
        .map(|mail| link_token(mail, path, prefix))
        .collect()
}

/// The tokens of the verification e-mails to `to` once `count` arrived.
pub(crate) async fn verification_tokens(app: &TestApp, to: &str, count: usize) -> Vec<String> {
    let link = (VERIFICATION_SUBJECT, "/verify-email/", "ver_");
    link_tokens(app, to, link, count).await
}

async fn post_token(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/auth/verify-email", None, &json!({ "token": token }))
        .await
}

/// Verifies `email` (registered, not asked for a new link) through its e-mailed link.
pub(crate) async fn verify_email(app: &TestApp, email: &str) {
    let token = verification_tokens(app, email, 1).await.pop().unwrap();
    assert_eq!(
        post_token(app, &token).await.status(),
        StatusCode::NO_CONTENT
    );
}

async fn verified(app: &TestApp, token: &str) -> bool {
    json_body(app.get("/me", Some(token)).await).await["email_verified"]
        .as_bool()
        .expect("email_verified")
}

async fn resend(app: &TestApp, token: &str) -> reqwest::Response {
    app.post("/me/email/verification", Some(token), &json!({}))
        .await
}

async fn registration_mails_a_link_that_verifies_the_address(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    assert!(!verified(&app, &session.token).await);

    let token = verification_tokens(&app, &email, 1).await.pop().unwrap();
    app.clock.advance(Duration::from_secs(60));
    // No session needed: the link may be opened on another device.
    assert_eq!(
        post_token(&app, &token).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(verified(&app, &session.token).await, "seen at once");
    // Opened again: nothing changes.
    assert_eq!(
        post_token(&app, &token).await.status(),
        StatusCode::NO_CONTENT
    );
    let again = resend(&app, &session.token).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "email_already_verified");

    // An auditor replaying the account sees when it was proven.
    let account = json_body(app.get("/me", Some(&session.token)).await).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, auditor) = app.operator_token("auditor").await;
    let state = |as_of: String| {
        let (app, account, auditor) = (&app, &account, &auditor);
        async move {
            let path = format!("/admin/audit/accounts/{account}/state{as_of}");
            json_body(app.get(&path, Some(auditor)).await).await["email_verified"].clone()
        }
    };
    assert_eq!(state(String::new()).await, true);
    let registered = json_body(app.get("/me", Some(&session.token)).await).await["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let registered = registered.replace('+', "%2B");
    assert_eq!(state(format!("?as_of={registered}")).await, false);

    let kinds = app.security_kinds(&session.token).await;
    assert_eq!(
        kinds.iter().filter(|k| **k == "email_verified").count(),
        1,
        "{kinds:?}"
    );
}

async fn only_the_latest_link_works_and_a_new_one_waits_a_minute(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    let first = verification_tokens(&app, &email, 1).await.pop().unwrap();

    // The first link is on its way.
    let early = resend(&app, &session.token).await;
    assert_eq!(early.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(early.headers().contains_key("retry-after"));
    assert_eq!(error_code(early).await, "verification_requested_recently");

    // A minute later, a parallel burst sends one new link.
    app.clock.advance(Duration::from_secs(61));
    let burst = futures_util::future::join_all((0..6).map(|_| resend(&app, &session.token))).await;
    let sent: Vec<_> = burst
        .iter()
        .filter(|r| r.status() == StatusCode::ACCEPTED)
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "{:?}",
        burst.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    assert!(
        burst
            .iter()
            .all(|r| [StatusCode::ACCEPTED, StatusCode::TOO_MANY_REQUESTS].contains(&r.status()))
    );
    let tokens = verification_tokens(&app, &email, 2).await;
    let second = tokens
        .into_iter()
        .find(|t| *t != first)
        .expect("a new link");

    let replaced = post_token(&app, &first).await;
    assert_eq!(replaced.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(replaced).await, "verification_link_invalid");
    assert!(!verified(&app, &session.token).await);
    assert_eq!(
        post_token(&app, &second).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(verified(&app, &session.token).await);
}

async fn expired_forged_and_malformed_links_verify_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    let token = verification_tokens(&app, &email, 1).await.pop().unwrap();

    // Another signature on the same account and generation.
    let mut forged: Vec<char> = token.chars().collect();
    let inside_the_mac = 4 + 50;
    forged[inside_the_mac] = if forged[inside_the_mac] == 'A' {
        'B'
    } else {
        'A'
    };
    let forged: String = forged.into_iter().collect();
    let response = post_token(&app, &forged).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "verification_link_invalid");
    // Not shaped like a link: no link either.
    for made_up in ["ver_short", "inv_x", ""] {
        let response = post_token(&app, made_up).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{made_up:?}");
        assert_eq!(error_code(response).await, "verification_link_invalid");
    }

    app.clock.advance(Duration::from_secs(3 * 86_400));
    let response = post_token(&app, &token).await;
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(error_code(response).await, "verification_link_expired");
    assert!(!verified(&app, &session.token).await);

    // A new link works where the expired one did not.
    assert_eq!(
        resend(&app, &session.token).await.status(),
        StatusCode::ACCEPTED
    );
    let fresh = verification_tokens(&app, &email, 2)
        .await
        .into_iter()
        .find(|t| *t != token)
        .unwrap();
    assert_eq!(
        post_token(&app, &fresh).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(verified(&app, &session.token).await);
}

async fn only_a_verified_address_answers_an_invitation(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = app.signed_up().await;
    let ws = create(&app, &owner, "Verified only").await;
    // Whoever registers the invited address first (say, from a forwarded link) has not
    // proved it is theirs.
    let (email, invitee) = app.signed_up().await;
    let email = email.to_lowercase();
    assert_eq!(
        invite(&app, &ws, &owner, &email, "member").await.status(),
        StatusCode::CREATED
    );
    let token = invitation_token(&app, &email, 1).await;
    for answer in ["accept", "decline"] {
        let refused = app
            .post(
                &format!("/invitations/{token}/{answer}"),
                Some(&invitee.token),
                &json!({}),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(error_code(refused).await, "email_unverified");
    }

    verify_email(&app, &email).await;
    let accepted = app
        .post(
            &format!("/invitations/{token}/accept"),
            Some(&invitee.token),
            &json!({}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(json_body(accepted).await["workspace_id"], ws.as_str());
}

on_both_backends!(
    registration_mails_a_link_that_verifies_the_address,
    only_the_latest_link_works_and_a_new_one_waits_a_minute,
    expired_forged_and_malformed_links_verify_nothing,
    only_a_verified_address_answers_an_invitation,
);

/// An account signed up and signed in whose address is verified.
pub(crate) async fn signed_up_verified(app: &TestApp) -> (String, tests::Session) {
    let (email, session) = app.signed_up().await;
    verify_email(app, &email).await;
    (email, session)
}
