//! Two-factor authentication and re-authentication for sensitive changes. Codes come from
//! `tests::reference_totp_code`, an implementation independent of the service's (checked
//! against the RFC 6238 vectors), at the service's clock.

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, Session, TestApp, error_code, json_body, spawn_app_with_long_sessions};

const STEP: Duration = Duration::from_secs(30);

/// Starts enrolment and turns 2FA on; returns the secret and the recovery codes.
pub(crate) async fn turn_on_2fa(app: &TestApp, session: &Session) -> (String, Vec<String>) {
    let enrolment = json_body(app.post("/me/totp", Some(&session.token), &json!({})).await).await;
    let secret = enrolment["secret"].as_str().expect("secret").to_owned();
    let confirmed = app
        .post(
            "/me/totp/confirm",
            Some(&session.token),
            &json!({"code": app.totp_now(&secret)}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let codes = json_body(confirmed).await["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    (secret, codes)
}

async fn login_with(app: &TestApp, email: &str, factor: Value) -> reqwest::Response {
    let mut body = json!({"email": email, "password": PASSWORD});
    if let (Some(body), Some(factor)) = (body.as_object_mut(), factor.as_object()) {
        body.extend(factor.clone());
    }
    app.post("/auth/login", None, &body).await
}

/// A code that is none of the codes of the current step and the steps either side.
pub(crate) fn wrong_code(app: &TestApp, secret: &str) -> String {
    let now = app.clock_unix_seconds();
    let valid: Vec<String> = [-30, 0, 30]
        .iter()
        .map(|d| tests::reference_totp_code(secret, now + d))
        .collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !valid.contains(c))
        .expect("a wrong code")
}

async fn event_types(app: &TestApp) -> Vec<String> {
    app.raw_events()
        .await
        .iter()
        .filter_map(|e| e.split(' ').nth(1).map(str::to_owned))
        .collect()
}

async fn a_code_signs_in_once_per_step_and_a_recovery_code_once(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;

    let enrolment = json_body(app.post("/me/totp", Some(&session.token), &json!({})).await).await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "a 160-bit secret in base32: {secret}");
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let qr = base64::engine::general_purpose::STANDARD
        .decode(enrolment["qr_png_base64"].as_str().unwrap())
        .unwrap();
    assert!(qr.starts_with(b"\x89PNG\r\n\x1a\n"), "the QR code is a PNG");
    // Nothing is enforced before confirmation.
    assert_eq!(
        login_with(&app, &email, json!({})).await.status(),
        StatusCode::CREATED
    );
    let wrong = app
        .post(
            "/me/totp/confirm",
            Some(&session.token),
            &json!({"code": wrong_code(&app, &secret)}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invalid_second_factor");
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["two_factor_enabled"], false);

    let confirm_code = app.totp_now(&secret);
    let confirmed = app
        .post(
            "/me/totp/confirm",
            Some(&session.token),
            &json!({"code": confirm_code}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    let recovery: Vec<String> = json_body(confirmed).await["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let distinct: std::collections::HashSet<_> = recovery.iter().collect();
    assert_eq!(distinct.len(), 10);
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(me["two_factor_enabled"], true);

    // The password alone no longer signs in.
    let password_only = login_with(&app, &email, json!({})).await;
    assert_eq!(password_only.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(password_only).await, "totp_required");
    // The code that confirmed is spent for its step, even within its 30 seconds.
    let replayed = login_with(&app, &email, json!({"totp_code": confirm_code})).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(replayed).await, "invalid_second_factor");

    app.clock.advance(STEP);
    let code = app.totp_now(&secret);
    assert_eq!(
        login_with(&app, &email, json!({"totp_code": code}))
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        login_with(&app, &email, json!({"totp_code": code}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "a code signs in once"
    );

    // One step of drift either side is accepted; further is not.
    app.clock.advance(4 * STEP);
    let now = app.clock_unix_seconds();
    let previous_step = tests::reference_totp_code(&secret, now - 30);
    assert_eq!(
        login_with(&app, &email, json!({"totp_code": previous_step}))
            .await
            .status(),
        StatusCode::CREATED
    );
    let far_ahead = tests::reference_totp_code(&secret, now + 90);
    if ![-30, 0, 30]
        .iter()
        .any(|d| tests::reference_totp_code(&secret, now + d) == far_ahead)
    {
        assert_eq!(
            login_with(&app, &email, json!({"totp_code": far_ahead}))
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }

    // A recovery code signs in once.
    let used = login_with(&app, &email, json!({"recovery_code": recovery[3]})).await;
    assert_eq!(used.status(), StatusCode::CREATED);
    let again = login_with(&app, &email, json!({"recovery_code": recovery[3]})).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(again).await, "invalid_second_factor");
    assert_eq!(
        login_with(&app, &email, json!({"recovery_code": recovery[4]}))
            .await
            .status(),
        StatusCode::CREATED
    );

    // The secret and the recovery codes never reach the log in clear.
    let raw = app.raw_events().await.join("\n");
    assert!(!raw.contains(&secret), "the secret is sealed in the log");
    assert!(recovery.iter().all(|c| !raw.contains(c.as_str())));
    // What the security e-mails will need is recorded.
    let types = event_types(&app).await;
    for wanted in ["TotpEnabled", "RecoveryCodeUsed"] {
        assert!(types.iter().any(|t| t == wanted), "{wanted} in {types:?}");
    }
}

async fn wrong_codes_are_throttled(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    let (secret, _) = turn_on_2fa(&app, &session).await;
    let wrong = wrong_code(&app, &secret);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            login_with(&app, &email, json!({"totp_code": wrong}))
                .await
                .status(),
        );
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    let throttled = login_with(&app, &email, json!({"totp_code": wrong})).await;
    assert_eq!(
        throttled.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    // Even the right code waits out the lockout: guessing cannot be raced.
    app.clock.advance(STEP);
    let right = login_with(&app, &email, json!({"totp_code": app.totp_now(&secret)})).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn recovery_codes_are_replaced_and_2fa_turned_off_with_password_and_code(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    let (secret, old_codes) = turn_on_2fa(&app, &session).await;

    let replaced = app
        .post("/me/totp/recovery-codes", Some(&session.token), &json!({}))
        .await;
    assert_eq!(replaced.status(), StatusCode::OK);
    let new_codes: Vec<String> = json_body(replaced).await["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|c| !old_codes.contains(c)));
    assert_eq!(
        login_with(&app, &email, json!({"recovery_code": old_codes[0]}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the old codes stopped working"
    );
    assert_eq!(
        login_with(&app, &email, json!({"recovery_code": new_codes[0]}))
            .await
            .status(),
        StatusCode::CREATED
    );

    app.clock.advance(STEP);
    let disable = |body: Value| {
        app.request(Method::DELETE, "/me/totp", Some(&session.token))
            .json(&body)
            .send()
    };
    let wrong_password =
        disable(json!({"password": "not-the-password-at-all", "code": app.totp_now(&secret)}))
            .await
            .unwrap();
    assert_eq!(wrong_password.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong_password).await, "invalid_current_password");
    let wrong = disable(json!({"password": PASSWORD, "code": wrong_code(&app, &secret)}))
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invalid_second_factor");
    assert_eq!(
        json_body(app.get("/me", Some(&session.token)).await).await["two_factor_enabled"],
        true,
        "refusals change nothing"
    );

    let off = disable(json!({"password": PASSWORD, "code": app.totp_now(&secret)}))
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        json_body(app.get("/me", Some(&session.token)).await).await["two_factor_enabled"],
        false
    );
    assert_eq!(
        login_with(&app, &email, json!({})).await.status(),
        StatusCode::CREATED,
        "the password alone signs in again"
    );
    let types = event_types(&app).await;
    for wanted in [
        "TotpEnabled",
        "RecoveryCodesRegenerated",
        "RecoveryCodeUsed",
        "TotpDisabled",
    ] {
        assert!(types.iter().any(|t| t == wanted), "{wanted} in {types:?}");
    }
}

async fn sensitive_changes_need_a_recent_proof(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    let change = json!({
        "current_password": PASSWORD,
        "new_password": "another-7-long-Passphrase",
        "sign_out_other_sessions": false
    });

    // Eleven minutes after signing in, the proof of the password has gone stale.
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = app
        .request(Method::PUT, "/me/password", Some(&session.token))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
    assert_eq!(
        login_with(&app, &email, json!({})).await.status(),
        StatusCode::CREATED,
        "the password did not change"
    );

    let wrong = app
        .post(
            "/auth/reauthenticate",
            Some(&session.token),
            &json!({"password": "not-the-password-at-all"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invalid_current_password");
    let proved = app
        .post(
            "/auth/reauthenticate",
            Some(&session.token),
            &json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(proved.status(), StatusCode::OK);
    assert!(json_body(proved).await["valid_until"].is_string());
    let changed = app
        .request(Method::PUT, "/me/password", Some(&session.token))
        .json(&change)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);

    // With 2FA on, the proof takes a code too.
    let (secret, _) = turn_on_2fa(&app, &session).await;
    app.clock.advance(Duration::from_secs(11 * 60));
    let stale = app
        .post("/me/totp/recovery-codes", Some(&session.token), &json!({}))
        .await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(stale).await, "reauthentication_required");
    let password_only = app
        .post(
            "/auth/reauthenticate",
            Some(&session.token),
            &json!({"password": "another-7-long-Passphrase"}),
        )
        .await;
    assert_eq!(password_only.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(password_only).await, "totp_required");
    let proved = app
        .post(
            "/auth/reauthenticate",
            Some(&session.token),
            &json!({"password": "another-7-long-Passphrase", "totp_code": app.totp_now(&secret)}),
        )
        .await;
    assert_eq!(proved.status(), StatusCode::OK);
    assert_eq!(
        app.post("/me/totp/recovery-codes", Some(&session.token), &json!({}))
            .await
            .status(),
        StatusCode::OK
    );
}

/// Parallel guesses are counted as they start: of a burst of wrong codes, at most the free
/// attempts are judged, and every other one is refused without being.
async fn a_burst_of_wrong_codes_cannot_race_the_throttle(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (email, session) = app.signed_up().await;
    let (secret, _) = turn_on_2fa(&app, &session).await;
    let wrong = wrong_code(&app, &secret);
    let burst = (0..200).map(|_| async {
        let response = login_with(&app, &email, json!({"totp_code": wrong})).await;
        (response.status(), error_code(response).await)
    });
    let answers: Vec<(StatusCode, String)> = futures_util::future::join_all(burst).await;
    // Every answer is a judged wrong code or a throttle refusal; anything else (and its
    // count) is in the message, so a failure says which refusal slipped in.
    let count = |status: StatusCode, code: &str| {
        answers
            .iter()
            .filter(|(s, c)| *s == status && c == code)
            .count()
    };
    let judged = count(StatusCode::UNAUTHORIZED, "invalid_second_factor");
    let refused = count(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let others: Vec<_> = answers
        .iter()
        .filter(|(s, c)| {
            !(*s == StatusCode::UNAUTHORIZED && c == "invalid_second_factor"
                || *s == StatusCode::TOO_MANY_REQUESTS && c == "too_many_attempts")
        })
        .collect();
    assert!(
        (1..=5).contains(&judged),
        "{judged} wrong codes judged; other answers: {others:?}"
    );
    assert_eq!(judged + refused, 200, "other answers: {others:?}");
}

on_both_backends!(
    a_code_signs_in_once_per_step_and_a_recovery_code_once,
    wrong_codes_are_throttled,
    a_burst_of_wrong_codes_cannot_race_the_throttle,
    recovery_codes_are_replaced_and_2fa_turned_off_with_password_and_code,
    sensitive_changes_need_a_recent_proof,
);
