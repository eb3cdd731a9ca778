//! The edges of the service: security headers on every response and on the HTML pages.

use domain::AccountId;
use domain::notifications::Toggle;
use reqwest::{Response, StatusCode};
use store::Backend;
use tests::spawn_app;
use uuid::Uuid;

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn html_pages_carry_security_headers_and_every_response_nosniff(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/healthz", "/openapi.json", "/nope", "/me"] {
        let response = app.get(path, None).await;
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
    }
    let token = app
        .state
        .notices
        .unsubscribe_links
        .token(AccountId(Uuid::new_v4()), Toggle::Newsletter);
    let pages = [
        format!("/unsubscribe?token={token}"),
        format!("/sandbox/portal/{}", Uuid::new_v4()),
        "/docs".to_owned(),
    ];
    for path in &pages {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(
            header(&response, "content-type").starts_with("text/html"),
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(
            header(&response, "referrer-policy"),
            "no-referrer",
            "{path}"
        );
        let policy = header(&response, "content-security-policy");
        assert!(policy.starts_with("default-src 'none'"), "{path}: {policy}");
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        if path == "/docs" {
            // Scalar, from its CDN, and requests to this service only.
            assert!(
                policy.contains("script-src https://cdn.jsdelivr.net"),
                "{policy}"
            );
            assert!(policy.contains("connect-src 'self'"), "{policy}");
        } else {
            assert!(
                !policy.contains("script-src"),
                "no script on {path}: {policy}"
            );
        }
    }
    // The unsubscribe form still posts back here.
    let unsubscribe = app.get(&pages[0], None).await;
    assert!(header(&unsubscribe, "content-security-policy").contains("form-action 'self'"));
}

on_both_backends!(html_pages_carry_security_headers_and_every_response_nosniff,);
