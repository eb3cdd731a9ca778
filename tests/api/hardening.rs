//! The edges of the service: the webhook's body limit and envelope, that an oversized body
//! is answered, not cut off, and security headers on every response and on the HTML pages.

use commands::payments::{CheckoutSession, WebhookData, WebhookEvent, WebhookSigner};
use domain::AccountId;
use domain::notifications::Toggle;
use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use store::Backend;
use tests::{PASSWORD, TestApp, WEBHOOK_SECRET, post_unread, spawn_app};
use uuid::Uuid;

/// A signed webhook body of exactly `size` bytes (an event of a type the service ignores).
fn signed_event(app: &TestApp, size: usize) -> (Vec<u8>, String) {
    let event = |id: String| WebhookEvent {
        id,
        kind: "customer.updated".into(),
        created: 0,
        data: WebhookData {
            object: CheckoutSession {
                id: "cs_1".into(),
                client_reference_id: "none".into(),
                amount_total: 0,
                currency: "eur".into(),
            },
        },
    };
    let bare = serde_json::to_vec(&event(String::new())).unwrap().len();
    let body = serde_json::to_vec(&event("x".repeat(size - bare))).unwrap();
    assert_eq!(body.len(), size);
    let signature = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec())
        .header(app.clock_unix_seconds(), &body);
    (body, signature)
}

/// Posts `event` to the webhook, signed with the test secret.
async fn post_signed(app: &TestApp, event: serde_json::Value) -> Response {
    let body = serde_json::to_vec(&event).unwrap();
    let signature = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec())
        .header(app.clock_unix_seconds(), &body);
    app.request(Method::POST, "/webhooks/payments", None)
        .header("content-type", "application/json")
        .header("payments-signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn webhooks_take_small_bodies_only(backend: Backend) {
    let app = spawn_app(backend).await;
    // A signed body just under the limit is read and verified.
    let (body, signature) = signed_event(&app, 64 * 1024);
    let accepted = app
        .request(Method::POST, "/webhooks/payments", None)
        .header("content-type", "application/json")
        .header("payments-signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(
        accepted.json::<serde_json::Value>().await.unwrap()["handled"],
        false
    );

    // An event of a type the service ignores is acknowledged whatever its object (a
    // provider's other events carry customers, invoices…), as the document says; but an
    // object it must be, as in every provider's events.
    let customer = json!({"id": "cus_1", "currency": {}, "amount_total": ["not", "a", "number"]});
    let acknowledged = post_signed(
        &app,
        json!({
            "id": "evt_customer", "type": "customer.updated", "created": 0,
            "data": {"object": customer}
        }),
    )
    .await;
    assert_eq!(acknowledged.status(), StatusCode::OK);
    assert_eq!(
        acknowledged.json::<serde_json::Value>().await.unwrap()["handled"],
        false
    );
    let not_an_object = post_signed(
        &app,
        json!({
            "id": "evt_odd", "type": "customer.updated", "created": 0, "data": {"object": 5}
        }),
    )
    .await;
    assert_eq!(not_an_object.status(), StatusCode::BAD_REQUEST);

    // Over 64 KiB: 413 in JSON before it is read, signed or not, with an idempotency key or
    // without (the key's check reads bodies too, and the limit comes first).
    let (body, signature) = signed_event(&app, 64 * 1024 + 1);
    let keyed: &[(&str, &str)] = &[
        ("payments-signature", &signature),
        ("idempotency-key", "k1"),
    ];
    for headers in [
        &[("payments-signature", signature.as_str())][..],
        keyed,
        &[],
    ] {
        let (status, content_type, answer) =
            post_unread(&app, "/webhooks/payments", headers, &body).await;
        assert_eq!(status, 413, "{headers:?}");
        assert_eq!(content_type, "application/json");
        assert_eq!(answer["error"]["code"], "payload_too_large");
    }
    // The other routes keep theirs: a 100 KiB JSON body is read (and refused for its
    // content, not its size).
    let big = json!({"email": "x".repeat(100 * 1024), "password": PASSWORD, "display_name": "X"});
    let refused = app.post("/auth/register", None, &big).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// A body over a route's limit gets its 413 every time, whichever layer refuses it (the
/// declared length, the idempotency check's read, the avatar's own read), and the
/// connection stays usable. Refusing before the body is read must not reset the
/// connection under a client still sending it: the service reads the rest first.
async fn oversized_bodies_are_answered_not_cut_off(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let client = reqwest::Client::new();
    let big = vec![0_u8; 7 << 20];
    for round in 0..8 {
        let keyed = format!("big-{round}");
        let attempts = [
            (
                "/me/avatar",
                Method::PUT,
                Some(keyed.as_str()),
                "avatar_too_large",
            ),
            ("/me/avatar", Method::PUT, None, "avatar_too_large"),
            (
                "/webhooks/payments",
                Method::POST,
                None,
                "payload_too_large",
            ),
            (
                "/auth/login",
                Method::POST,
                Some(keyed.as_str()),
                "payload_too_large",
            ),
            ("/auth/login", Method::POST, None, "payload_too_large"),
        ];
        for (path, method, key, code) in attempts {
            let mut request = client
                .request(method, format!("{}{path}", app.address))
                .bearer_auth(&session.token)
                .header(
                    "content-type",
                    if path == "/me/avatar" {
                        "image/png"
                    } else {
                        "application/json"
                    },
                )
                .body(big.clone());
            if let Some(key) = key {
                request = request.header("idempotency-key", key);
            }
            let refused = request
                .send()
                .await
                .unwrap_or_else(|e| panic!("round {round}, {path} {key:?}: {e:?}"));
            assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            let answer: serde_json::Value = refused.json().await.unwrap();
            assert_eq!(answer["error"]["code"], code, "{path} {key:?}");
        }
    }
    // The same client goes on with an ordinary request.
    let me = client
        .get(format!("{}/me", app.address))
        .bearer_auth(&session.token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

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
        let default = if path == "/docs" { "'self'" } else { "'none'" };
        assert!(
            policy.starts_with(&format!("default-src {default}")),
            "{path}: {policy}"
        );
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        if path == "/docs" {
            // Scalar, served by this service, and requests to this service only.
            assert!(policy.contains("script-src 'self'"), "{policy}");
            assert!(!policy.contains("https:"), "{policy}");
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

on_both_backends!(
    webhooks_take_small_bodies_only,
    oversized_bodies_are_answered_not_cut_off,
    html_pages_carry_security_headers_and_every_response_nosniff,
);
