//! Purchases through the sandbox provider and webhooks, subscriptions with proration and
//! renewals, invoices and their PDFs, operator tokens and reconciliation.

use commands::payments::{
    CHECKOUT_COMPLETED, CheckoutSession, WebhookData, WebhookEvent, WebhookSigner,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{
    Session, TestApp, WEBHOOK_SECRET, error_code, spawn_app, spawn_app_with_long_sessions,
};

const DAY: Duration = Duration::from_secs(86_400);

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

async fn start_purchase(app: &TestApp, session: &Session, pack: &str) -> Value {
    let response = app
        .post(
            "/me/credits/purchases",
            Some(&session.token),
            &json!({"pack_id": pack}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    json_of(response).await
}

async fn balance(app: &TestApp, session: &Session) -> u64 {
    json_of(app.get("/me/credits", Some(&session.token)).await).await["balance"]
        .as_u64()
        .unwrap()
}

fn paid_event(app: &TestApp, purchase: &Value, event_id: &str, amount: i64) -> (Vec<u8>, String) {
    let purchase_id = purchase["purchase_id"].as_str().unwrap();
    let session_id = purchase["checkout_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let event = WebhookEvent {
        id: event_id.into(),
        kind: CHECKOUT_COMPLETED.into(),
        created: 0,
        data: WebhookData {
            object: CheckoutSession {
                id: session_id.into(),
                client_reference_id: purchase_id.into(),
                amount_total: amount,
                currency: "eur".into(),
            },
        },
    };
    let body = serde_json::to_vec(&event).unwrap();
    let now = commands::Clock::now(&*app.clock)
        .datetime()
        .unix_timestamp();
    let signature = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec()).header(now, &body);
    (body, signature)
}

async fn deliver(app: &TestApp, body: &[u8], signature: &str) -> reqwest::Response {
    app.request(Method::POST, "/webhooks/payments", None)
        .header("content-type", "application/json")
        .header("payments-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

async fn a_pack_is_credited_only_when_the_provider_confirms_payment(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let packs: Value = json_of(app.get("/credit-packs", None).await).await;
    assert_eq!(packs[0]["price"]["currency"], "EUR");
    assert!(packs[0]["price"]["amount"].is_i64());

    let purchase = start_purchase(&app, &session, "credits-500").await;
    assert!(
        purchase["checkout_url"]
            .as_str()
            .unwrap()
            .starts_with(&app.address)
    );
    assert_eq!(balance(&app, &session).await, 0, "nothing before payment");

    // The sandbox checkout page pays: it completes the purchase in-process.
    let page = app
        .client
        .get(purchase["checkout_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Payment received"));
    assert_eq!(balance(&app, &session).await, 500);
    let again = app
        .client
        .get(purchase["checkout_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(again.text().await.unwrap().contains("Already paid"));
    assert_eq!(balance(&app, &session).await, 500);

    let invoices = json_of(app.get("/me/invoices", Some(&session.token)).await).await;
    let invoice = &invoices["invoices"][0];
    assert_eq!(invoice["reason"], "purchase");
    assert_eq!(invoice["status"], "paid");
    assert_eq!(invoice["total"], 500);
    assert_eq!(invoice["lines"][0]["description"], "500 credits");

    let unknown = app
        .post(
            "/me/credits/purchases",
            Some(&session.token),
            &json!({"pack_id": "nope"}),
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(unknown).await, "unknown_pack");
}

async fn webhooks_are_verified_and_processed_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let purchase = start_purchase(&app, &session, "credits-2000").await;
    let events_before = app.event_count().await;

    let (body, signature) = paid_event(&app, &purchase, "evt_1", 1800);
    let forged = WebhookSigner::new(b"not the secret".to_vec()).header(0, &body);
    for bad in [forged.as_str(), "t=1,v1=00", "garbage"] {
        let refused = deliver(&app, &body, bad).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(error_code(refused).await, "invalid_signature");
    }
    let unsigned = app
        .request(Method::POST, "/webhooks/payments", None)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);
    let mut tampered = body.clone();
    let at = tampered.iter().position(|b| *b == b'8').unwrap();
    tampered[at] = b'1';
    assert_eq!(
        deliver(&app, &tampered, &signature).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.event_count().await,
        events_before,
        "refused webhooks change nothing"
    );

    // A webhook signed too long ago is refused too.
    let old = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec()).header(
        commands::Clock::now(&*app.clock)
            .datetime()
            .unix_timestamp()
            - 301,
        &body,
    );
    assert_eq!(
        deliver(&app, &body, &old).await.status(),
        StatusCode::BAD_REQUEST
    );

    for _ in 0..3 {
        let accepted = deliver(&app, &body, &signature).await;
        assert_eq!(accepted.status(), StatusCode::OK);
    }
    let (other_body, other_signature) = paid_event(&app, &purchase, "evt_2", 1800);
    assert_eq!(
        deliver(&app, &other_body, &other_signature).await.status(),
        StatusCode::OK
    );
    app.settle().await;
    assert_eq!(
        balance(&app, &session).await,
        2000,
        "granted once, however often delivered"
    );
    let invoices = json_of(app.get("/me/invoices", Some(&session.token)).await).await;
    assert_eq!(invoices["invoices"].as_array().unwrap().len(), 1);

    let (short, short_signature) = paid_event(
        &app,
        &start_purchase(&app, &session, "credits-500").await,
        "evt_3",
        1,
    );
    let mismatch = deliver(&app, &short, &short_signature).await;
    assert_eq!(
        mismatch.status(),
        StatusCode::BAD_REQUEST,
        "an underpayment is refused"
    );
    app.settle().await;
    assert_eq!(balance(&app, &session).await, 2000);

    // Authentic events this service does not act on are acknowledged, whatever their
    // object (a refusal would be retried, and at length turn the endpoint off): another
    // type, and a checkout made elsewhere (no purchase reference).
    let events_before = app.event_count().await;
    let now = commands::Clock::now(&*app.clock)
        .datetime()
        .unix_timestamp();
    for event in [
        json!({"id": "evt_pi", "type": "payment_intent.succeeded", "created": now,
            "data": {"object": {"id": "pi_1", "amount": 500, "currency": "eur"}}}),
        json!({"id": "evt_link", "type": "checkout.session.completed", "created": now,
            "data": {"object": {"id": "cs_link", "client_reference_id": null,
                "amount_total": 500, "currency": "eur"}}}),
    ] {
        let body = serde_json::to_vec(&event).unwrap();
        let signature = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec()).header(now, &body);
        let answered = deliver(&app, &body, &signature).await;
        assert_eq!(answered.status(), StatusCode::OK, "{event}");
        assert_eq!(
            json_of(answered).await,
            json!({"received": true, "handled": false}),
            "{event}"
        );
    }
    // A completed checkout that does not read as one is still refused.
    let body = serde_json::to_vec(
        &json!({"id": "evt_bad", "type": "checkout.session.completed",
        "created": now, "data": {"object": {"id": "cs_bad"}}}),
    )
    .unwrap();
    let signature = WebhookSigner::new(WEBHOOK_SECRET.as_bytes().to_vec()).header(now, &body);
    let refused = deliver(&app, &body, &signature).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(refused).await, "invalid_payload");
    assert_eq!(app.event_count().await, events_before, "nothing changed");
}

async fn subscribe(app: &TestApp, session: &Session, plan: &str) -> Value {
    let response = app
        .request(Method::PUT, "/me/subscription", Some(&session.token))
        .json(&json!({"plan_id": plan}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    json_of(response).await
}

async fn invoices(app: &TestApp, session: &Session) -> Vec<Value> {
    json_of(app.get("/me/invoices", Some(&session.token)).await).await["invoices"]
        .as_array()
        .unwrap()
        .clone()
}

async fn a_subscription_upgrades_at_once_downgrades_later_and_renews(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (_, session) = app.signed_up().await;
    let none = json_of(app.get("/me/subscription", Some(&session.token)).await).await;
    assert_eq!(none["status"], "none");

    let started = subscribe(&app, &session, "starter").await;
    assert_eq!(started["status"], "active");
    assert_eq!(started["price"]["amount"], 900);
    assert_eq!(balance(&app, &session).await, 500, "the period's allowance");
    let first = invoices(&app, &session).await;
    assert_eq!(
        (
            first[0]["reason"].as_str(),
            first[0]["total"].as_i64(),
            first[0]["status"].as_str()
        ),
        (Some("subscription"), Some(900), Some("paid"))
    );

    // Ten days in, upgrade: charged and granted the prorated differences for 20 of 30 days.
    app.clock.advance(10 * DAY);
    // Changing the plan needs a recent proof of the password; the sign-in is ten days old.
    app.reauthenticate(&session).await;
    let upgraded = subscribe(&app, &session, "creator").await;
    assert_eq!(upgraded["plan_id"], "creator");
    assert_eq!(
        upgraded["current_period_end"], started["current_period_end"],
        "same period"
    );
    let upgrade = &invoices(&app, &session).await[0];
    assert_eq!(upgrade["reason"], "upgrade");
    assert_eq!(
        upgrade["total"], 1333,
        "2000 × 20/30 = 1333.33, rounded half up"
    );
    assert_eq!(balance(&app, &session).await, 500 + 1000);

    // A downgrade waits for the end of the period.
    let scheduled = subscribe(&app, &session, "starter").await;
    assert_eq!(scheduled["plan_id"], "creator");
    assert_eq!(scheduled["scheduled_plan_id"], "starter");

    app.clock.advance(20 * DAY);
    assert_eq!(app.tick().await.subscriptions, 1);
    let renewed = json_of(app.get("/me/subscription", Some(&session.token)).await).await;
    assert_eq!(renewed["plan_id"], "starter");
    assert_eq!(
        renewed["current_period_start"],
        started["current_period_end"]
    );
    let renewal = &invoices(&app, &session).await[0];
    assert_eq!(
        (renewal["reason"].as_str(), renewal["total"].as_i64()),
        (Some("renewal"), Some(900))
    );
    // Last period's allowance expired with it; this period's arrived.
    assert_eq!(balance(&app, &session).await, 500);
    assert_eq!(app.tick().await.subscriptions, 0, "nothing more is due");
}

async fn a_cancelled_subscription_runs_to_the_end_of_its_period(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (_, session) = app.signed_up().await;
    let no_subscription = app.delete("/me/subscription", Some(&session.token)).await;
    assert_eq!(no_subscription.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(no_subscription).await, "no_subscription");

    subscribe(&app, &session, "studio").await;
    let cancelled = json_of(app.delete("/me/subscription", Some(&session.token)).await).await;
    assert_eq!(cancelled["status"], "canceling");
    assert_eq!(cancelled["cancel_at_period_end"], true);
    let resumed = json_of(
        app.post("/me/subscription/resume", Some(&session.token), &json!({}))
            .await,
    )
    .await;
    assert_eq!(resumed["status"], "active");
    app.delete("/me/subscription", Some(&session.token)).await;

    app.clock.advance(29 * DAY);
    assert_eq!(app.tick().await.subscriptions, 0);
    assert_eq!(
        json_of(app.get("/me/subscription", Some(&session.token)).await).await["status"],
        "canceling"
    );
    app.clock.advance(2 * DAY);
    assert_eq!(app.tick().await.subscriptions, 1);
    assert_eq!(
        json_of(app.get("/me/subscription", Some(&session.token)).await).await["status"],
        "ended"
    );
    let late = app
        .post("/me/subscription/resume", Some(&session.token), &json!({}))
        .await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(
        invoices(&app, &session).await.len(),
        1,
        "no renewal invoice"
    );
    let unknown = app
        .request(Method::PUT, "/me/subscription", Some(&session.token))
        .json(&json!({"plan_id": "gold"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(unknown).await, "unknown_plan");
}

async fn invoice_numbers_have_no_gaps_and_pdfs_carry_the_figures(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (_, session) = app.signed_up().await;
        subscribe(&app, &session, "starter").await;
        let purchase = start_purchase(&app, &session, "credits-500").await;
        app.client
            .get(purchase["checkout_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        sessions.push(session);
    }
    let mut numbers = Vec::new();
    for session in &sessions {
        numbers.extend(
            invoices(&app, session)
                .await
                .iter()
                .map(|i| i["number"].as_str().unwrap().to_owned()),
        );
    }
    numbers.sort();
    let year = &numbers[0][..4];
    let expected: Vec<String> = (1..=6).map(|n| format!("{year}-{n:06}")).collect();
    assert_eq!(numbers, expected);

    let invoice = invoices(&app, &sessions[0])
        .await
        .into_iter()
        .find(|i| i["reason"] == "subscription")
        .unwrap();
    let id = invoice["id"].as_str().unwrap();
    let json = json_of(
        app.get(&format!("/me/invoices/{id}"), Some(&sessions[0].token))
            .await,
    )
    .await;
    assert_eq!(json["number"], invoice["number"]);
    let pdf = app
        .get(&format!("/me/invoices/{id}.pdf"), Some(&sessions[0].token))
        .await;
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = pdf_text(&bytes);
    let issued = invoice["issued_at"].as_str().unwrap();
    let issued = domain::Timestamp::from_datetime(
        time::OffsetDateTime::parse(issued, &time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    for expected in [
        invoice["number"].as_str().unwrap(),
        "Starter plan",
        "Total: 9.00 EUR",
        "Invoice",
        // Who issued it, as the catalog names the seller, and the tax the price includes.
        "Example Studio Ltd",
        "1 Example Street",
        "Tax ID: FR00 000000000",
        "Subtotal (excl. tax): 7.50 EUR",
        "Tax (20%): 1.50 EUR",
        &format!("Issued: {}", issued.human_date()),
        "Paid: ",
        "Payment reference: ch_sandbox_",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }

    let theirs = app
        .get(&format!("/me/invoices/{id}"), Some(&sessions[1].token))
        .await;
    assert_eq!(
        theirs.status(),
        StatusCode::NOT_FOUND,
        "another account's invoice"
    );
    let theirs_pdf = app
        .get(&format!("/me/invoices/{id}.pdf"), Some(&sessions[1].token))
        .await;
    assert_eq!(theirs_pdf.status(), StatusCode::NOT_FOUND);
    let portal = json_of(
        app.post(
            "/me/billing/portal-session",
            Some(&sessions[0].token),
            &json!({}),
        )
        .await,
    )
    .await;
    assert!(portal["url"].as_str().unwrap().contains("/sandbox/portal/"));
}

/// Text of a PDF (every page), read by a PDF parser (`lopdf`) independent of the library
/// that wrote it.
fn pdf_text(pdf: &[u8]) -> String {
    let document = lopdf::Document::load_mem(pdf).expect("a readable PDF");
    let pages: Vec<u32> = document.get_pages().into_keys().collect();
    assert!(!pages.is_empty(), "a PDF without pages");
    document.extract_text(&pages).expect("the text of the PDF")
}

async fn reconciliation_reports_drift_to_operators_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    subscribe(&app, &session, "starter").await;
    app.post(
        "/me/generations",
        Some(&session.token),
        &json!({"generation_id": "r1", "estimated_credits": 30, "feature": "rendering"}),
    )
    .await;

    let (operator_id, operator) = app.operator_token("auditor").await;
    assert!(operator.starts_with("adm_"));

    let report = json_of(app.get("/admin/reconciliation", Some(&operator)).await).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["accounts"], 1);
    assert!(report["invoices"].as_u64().unwrap() >= 1);

    // Credentials are kept apart: sessions are not operators, operators are not sessions.
    assert_eq!(
        app.get("/admin/reconciliation", Some(&session.token))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/admin/reconciliation", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/me", Some(&operator)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Corrupt the balance card and an invoice total: both are reported.
    sqlx::query("UPDATE credit_balances SET balance = balance + 7")
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE invoices SET total = total + 1")
        .execute(app.db.pool())
        .await
        .unwrap();
    let report = json_of(app.get("/admin/reconciliation", Some(&operator)).await).await;
    assert_eq!(report["ok"], false);
    let drift = report["drift"].as_array().unwrap();
    assert!(
        drift
            .iter()
            .any(|d| d["kind"] == "balance" && d["field"] == "balance"),
        "{report}"
    );
    assert!(
        drift
            .iter()
            .any(|d| d["kind"] == "invoice" && d["field"] == "total"),
        "{report}"
    );
    let balance_drift = drift.iter().find(|d| d["field"] == "balance").unwrap();
    assert_eq!(
        balance_drift["actual"].as_i64().unwrap() - balance_drift["expected"].as_i64().unwrap(),
        7
    );

    let mut args = vec!["accounts".to_owned(), "reconcile".to_owned()];
    args.extend(app.storage_args.clone());
    let cli = api::cli::run_from(args).await.unwrap();
    assert_ne!(cli.exit_code, 0, "the CLI exits non-zero on drift");
    assert!(cli.stdout.contains("\"drift\""));

    let mut args = vec![
        "accounts".to_owned(),
        "admin-token".to_owned(),
        "revoke".to_owned(),
        operator_id,
    ];
    args.extend(app.storage_args.clone());
    assert_eq!(api::cli::run_from(args).await.unwrap().exit_code, 0);
    assert_eq!(
        app.get("/admin/reconciliation", Some(&operator))
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "revoked"
    );
}

on_both_backends!(
    a_pack_is_credited_only_when_the_provider_confirms_payment,
    webhooks_are_verified_and_processed_once,
    a_subscription_upgrades_at_once_downgrades_later_and_renews,
    a_cancelled_subscription_runs_to_the_end_of_its_period,
    invoice_numbers_have_no_gaps_and_pdfs_carry_the_figures,
    reconciliation_reports_drift_to_operators_only,
);
