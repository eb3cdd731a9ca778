//! Where requests come from: the client IP read from the right of a proxy header (the
//! client writes the left), and the new-device notice keyed on the device class and its
//! network.

use reqwest::{Method, StatusCode};
use serde_json::json;
use store::Backend;
use tests::{PASSWORD, TestApp, spawn_app_with};

/// A wrong password from behind the proxies, with `forwarded` as `X-Forwarded-For`.
async fn sign_in(app: &TestApp, email: &str, password: &str, forwarded: &str) -> StatusCode {
    app.request(Method::POST, "/auth/login", None)
        .header("x-forwarded-for", forwarded)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

async fn a_spoofed_forwarded_entry_does_not_escape_the_throttle(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    app.register("erin@example.com").await;
    // The client prepends a new address each time; the proxy appends the real one.
    for n in 0..5 {
        let forwarded = format!("10.0.{n}.1, 203.0.113.9");
        let status = sign_in(
            &app,
            "erin@example.com",
            "wrong-horse-7-battery",
            &forwarded,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let spoofed = sign_in(&app, "erin@example.com", PASSWORD, "10.0.99.1, 203.0.113.9").await;
    assert_eq!(spoofed.as_u16(), 429, "still the throttled address");
    // The owner, elsewhere, is not taken for the throttled address however the header
    // starts.
    let owner = sign_in(
        &app,
        "erin@example.com",
        PASSWORD,
        "203.0.113.9, 198.51.100.7",
    )
    .await;
    assert_eq!(owner, StatusCode::CREATED);
}

async fn with_two_proxies_the_second_entry_from_the_right_is_the_client(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
        setup.serve.trusted_proxies = Some(2);
    })
    .await;
    app.register("finn@example.com").await;
    for n in 0..5 {
        // client-chosen, the client as the edge proxy saw it, the edge proxy
        let forwarded = format!("10.0.{n}.1, 203.0.113.9, 10.1.0.{n}");
        let status = sign_in(
            &app,
            "finn@example.com",
            "wrong-horse-7-battery",
            &forwarded,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let blocked = sign_in(&app, "finn@example.com", PASSWORD, "203.0.113.9, 10.1.0.7").await;
    assert_eq!(blocked.as_u16(), 429);
}

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn new_device_notices(app: &TestApp) -> usize {
    app.raw_events()
        .await
        .iter()
        .filter(|e| e.contains(" NewDeviceSignedIn "))
        .count()
}

async fn the_same_browser_from_another_network_is_a_new_device(backend: Backend) {
    let app = spawn_app_with(backend, |setup| {
        setup.serve.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    app.register("gus@example.com").await;
    let sign_in_from = |ip: &'static str| {
        app.request(Method::POST, "/auth/login", None)
            .header("x-forwarded-for", ip)
            .header("user-agent", FIREFOX)
            .json(&json!({"email": "gus@example.com", "password": PASSWORD}))
            .send()
    };
    for ip in ["203.0.113.9", "203.0.113.77"] {
        assert_eq!(
            sign_in_from(ip).await.unwrap().status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(
        new_device_notices(&app).await,
        0,
        "the same browser on its /24"
    );
    assert_eq!(
        sign_in_from("198.51.100.20").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        new_device_notices(&app).await,
        1,
        "the same browser elsewhere"
    );
    let third = sign_in_from("198.51.100.21").await.unwrap();
    assert_eq!(third.status(), StatusCode::CREATED);
    assert_eq!(
        new_device_notices(&app).await,
        1,
        "that network is known now"
    );
}

on_both_backends!(
    a_spoofed_forwarded_entry_does_not_escape_the_throttle,
    with_two_proxies_the_second_entry_from_the_right_is_the_client,
    the_same_browser_from_another_network_is_a_new_device,
);
