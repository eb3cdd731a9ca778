//! Credits: claims, holds and settlements, the never-negative balance under concurrency,
//! expiries and the transaction history.

use commands::CommandContext;
use commands::credits::Grant;
use domain::AccountId;
use domain::credits::SourceKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use store::Backend;
use tests::{Session, TestApp, error_code, json_body, spawn_app, spawn_app_with_long_sessions};

const DAY: Duration = Duration::from_secs(86_400);

async fn account_id(app: &TestApp, session: &Session) -> AccountId {
    let me: Value = app
        .get("/me", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    AccountId(me["account_id"].as_str().unwrap().parse().unwrap())
}

/// Grants purchased credits directly (the purchase path has tests of its own).
async fn grant(app: &TestApp, account: AccountId, amount: u64) {
    let grant = Grant {
        grant_key: format!("test:{}", uuid::Uuid::new_v4()),
        amount,
        source: SourceKind::Purchase,
        expires_at: None,
    };
    let now = commands::Clock::now(&*app.clock);
    app.state
        .payments
        .credits
        .grant(&CommandContext::system("test"), account, grant, now)
        .await
        .unwrap();
    app.settle().await;
}

async fn credits(app: &TestApp, session: &Session) -> Value {
    app.get("/me/credits", Some(&session.token))
        .await
        .json()
        .await
        .unwrap()
}

async fn hold(app: &TestApp, session: &Session, id: &str, amount: u64) -> reqwest::Response {
    app.post(
        "/me/generations",
        Some(&session.token),
        &json!({"generation_id": id, "estimated_credits": amount, "feature": "generation"}),
    )
    .await
}

async fn complete(app: &TestApp, session: &Session, id: &str, amount: u64) -> reqwest::Response {
    app.post(
        &format!("/me/generations/{id}/complete"),
        Some(&session.token),
        &json!({"credits": amount}),
    )
    .await
}

async fn the_signup_bonus_is_claimed_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let claims: Value = app
        .get("/me/claims", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    let bonus = claims["claims"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "signup-bonus")
        .unwrap()
        .clone();
    assert_eq!(bonus["status"], "available");

    for _ in 0..2 {
        let claimed = app
            .post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
            .await;
        assert_eq!(claimed.status(), StatusCode::OK);
        assert_eq!(claimed.json::<Value>().await.unwrap()["status"], "redeemed");
    }
    let card = credits(&app, &session).await;
    assert_eq!(card["balance"], 100, "granted once: {card}");
    assert_eq!(card["lots"][0]["source"], "signup_bonus");
    assert!(card["lots"][0]["expires_at"].is_string());

    let missing = app
        .post("/me/claims/no-such-offer", Some(&session.token), &json!({}))
        .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "claim_not_found");
}

async fn a_hold_is_settled_for_the_actual_amount_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let account = account_id(&app, &session).await;
    grant(&app, account, 500).await;

    assert_eq!(
        hold(&app, &session, "gen-1", 200).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        hold(&app, &session, "gen-1", 200).await.status(),
        StatusCode::CREATED,
        "a retried hold is the same hold"
    );
    let card = credits(&app, &session).await;
    assert_eq!(
        (card["balance"].as_u64(), card["held"].as_u64()),
        (Some(300), Some(200))
    );

    let other = hold(&app, &session, "gen-1", 250).await;
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(other).await, "generation_conflict");

    let too_much = complete(&app, &session, "gen-1", 201).await;
    assert_eq!(too_much.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(too_much).await, "exceeds_hold");
    for _ in 0..3 {
        assert_eq!(
            complete(&app, &session, "gen-1", 120).await.status(),
            StatusCode::OK,
            "retries charge once"
        );
    }
    let card = credits(&app, &session).await;
    assert_eq!(
        (card["balance"].as_u64(), card["held"].as_u64()),
        (Some(380), Some(0))
    );

    let fail_after = app
        .post(
            "/me/generations/gen-1/fail",
            Some(&session.token),
            &json!({}),
        )
        .await;
    assert_eq!(fail_after.status(), StatusCode::CONFLICT);
    // Held again once completed: refused, never answered as held with nothing held.
    let again = hold(&app, &session, "gen-1", 200).await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(again).await, "generation_closed");
    let card = credits(&app, &session).await;
    assert_eq!(card["held"].as_u64(), Some(0));
    let unknown = complete(&app, &session, "gen-404", 1).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "generation_not_found");

    assert_eq!(
        hold(&app, &session, "gen-2", 80).await.status(),
        StatusCode::CREATED
    );
    for _ in 0..2 {
        let failed = app
            .post(
                "/me/generations/gen-2/fail",
                Some(&session.token),
                &json!({}),
            )
            .await;
        assert_eq!(failed.status(), StatusCode::OK);
    }
    assert_eq!(
        credits(&app, &session).await["balance"],
        380,
        "a failed generation costs nothing"
    );

    let broke = hold(&app, &session, "gen-3", 381).await;
    assert_eq!(broke.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(broke).await, "insufficient_credits");
    let bad_id = hold(&app, &session, "bad id with spaces", 1).await;
    assert_eq!(bad_id.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_hundred_parallel_spends_never_overdraw(backend: Backend) {
    let app = Arc::new(spawn_app(backend).await);
    let (_, session) = app.signed_up().await;
    let account = account_id(&app, &session).await;
    grant(&app, account, 1000).await;

    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let (app, session) = (app.clone(), session.clone());
            tokio::spawn(async move {
                let id = format!("parallel-{i}");
                let held = hold(&app, &session, &id, 15).await;
                match held.status() {
                    StatusCode::CREATED => {
                        let done = complete(&app, &session, &id, 15).await;
                        assert_eq!(done.status(), StatusCode::OK);
                        true
                    }
                    status => {
                        let code = error_code(held).await;
                        assert!(
                            status == StatusCode::CONFLICT
                                && (code == "insufficient_credits"
                                    || code == "concurrent_modification"),
                            "{status} {code}"
                        );
                        false
                    }
                }
            })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        if task.await.unwrap() {
            spent += 1;
        }
    }
    // Commands on one account queue in-process, so none gives up on contention: exactly as
    // many spends succeed as the credits allow.
    assert_eq!(spent, 66, "{spent} spends of 15 out of 1000");
    let card = credits(&app, &session).await;
    assert_eq!(
        card["balance"].as_u64().unwrap(),
        1000 - 15 * spent,
        "granted minus spent, to the credit"
    );
    assert_eq!(card["held"], 0);
    let ledger = app.state.payments.credits.ledger(account).await.unwrap();
    assert_eq!(ledger.balance(), 1000 - 15 * spent, "the log agrees");
}

async fn holds_time_out_and_lots_expire_on_the_clock(backend: Backend) {
    let app = spawn_app_with_long_sessions(backend).await;
    let (_, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    assert_eq!(
        hold(&app, &session, "slow", 40).await.status(),
        StatusCode::CREATED
    );

    app.clock.advance(Duration::from_secs(3601));
    let late = complete(&app, &session, "slow", 10).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(late).await, "hold_expired");
    let tick = app.tick().await;
    assert_eq!(tick.holds_released, 1);
    let card = credits(&app, &session).await;
    assert_eq!(
        (card["balance"].as_u64(), card["held"].as_u64()),
        (Some(100), Some(0))
    );

    // The bonus lot expires 30 days after the claim: it stops counting at once...
    app.clock.advance(30 * DAY);
    let card = credits(&app, &session).await;
    assert_eq!(card["balance"], 0, "{card}");
    // ...and the scheduler records the expiry.
    assert_eq!(app.tick().await.lots_expired, 1);
    let history: Value = app
        .get("/me/credits/transactions", Some(&session.token))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = history["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["expiry", "release", "hold", "grant"],
        "newest first"
    );
    assert_eq!(history["transactions"][0]["amount"], 100);
    assert_eq!(history["transactions"][2]["generation_id"], "slow");
    assert_eq!(history["transactions"][2]["feature"], "generation");
}

async fn the_history_is_paginated_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let account = account_id(&app, &session).await;
    grant(&app, account, 1000).await;
    for i in 0..4 {
        hold(&app, &session, &format!("page-{i}"), 10).await;
        complete(&app, &session, &format!("page-{i}"), 5 + i).await;
    }
    // 1 grant + 4 × (hold, spend, release) = 13 entries.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/me/credits/transactions?limit=5&cursor={c}"),
            None => "/me/credits/transactions?limit=5".to_owned(),
        };
        let page: Value = app
            .get(&path, Some(&session.token))
            .await
            .json()
            .await
            .unwrap();
        let entries = page["transactions"].as_array().unwrap().clone();
        assert!(entries.len() <= 5);
        seen.extend(entries);
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 13);
    assert_eq!(seen.last().unwrap()["kind"], "grant");
    assert_eq!(seen[0]["generation_id"], "page-3");
    // A cursor before the newest entry, up to the largest the pattern allows (past SQL's
    // integers), is the first page.
    for cursor in [
        "9223372036854775807-0",
        "9999999999999999999-9999999999999999999",
    ] {
        let page = json_body(
            app.get(
                &format!("/me/credits/transactions?limit=5&cursor={cursor}"),
                Some(&session.token),
            )
            .await,
        )
        .await;
        assert_eq!(
            page["transactions"].as_array().unwrap()[..],
            seen[..5],
            "{cursor}"
        );
    }
    for bad in ["limit=0", "limit=201", "cursor=nonsense"] {
        let response = app
            .get(
                &format!("/me/credits/transactions?{bad}"),
                Some(&session.token),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

/// A hold made through one node and settled through another answer once committed; the
/// balance read through the other node right after each shows it (the read waits for the
/// credits read model, not the command).
async fn a_balance_read_on_another_node_shows_a_spend_at_once(backend: Backend) {
    let a = spawn_app(backend).await;
    let b = a.peer(|_| {}).await;
    let (_, session) = a.signed_up().await;
    let account = account_id(&a, &session).await;
    grant(&a, account, 1_000).await;
    for n in 0..5 {
        let id = format!("gen-{n}");
        assert_eq!(
            hold(&a, &session, &id, 100).await.status(),
            StatusCode::CREATED
        );
        let card = credits(&b, &session).await;
        assert_eq!(
            (card["balance"].as_u64(), card["held"].as_u64()),
            (Some(1_000 - 100 * n - 100), Some(100)),
            "the hold of {id}, read on the other node"
        );
        assert_eq!(
            complete(&b, &session, &id, 100).await.status(),
            StatusCode::OK
        );
        let card = credits(&a, &session).await;
        assert_eq!(
            (card["balance"].as_u64(), card["held"].as_u64()),
            (Some(1_000 - 100 * n - 100), Some(0)),
            "the settlement of {id}, read on the first node"
        );
        let history: Value = b
            .get("/me/credits/transactions", Some(&session.token))
            .await
            .json()
            .await
            .unwrap();
        let newest = &history["transactions"][0];
        assert_eq!(
            (newest["kind"].as_str(), newest["generation_id"].as_str()),
            (Some("spend"), Some(id.as_str())),
            "the history read on the other node starts with it: {history}"
        );
    }
}

on_both_backends!(
    the_signup_bonus_is_claimed_once,
    a_hold_is_settled_for_the_actual_amount_once,
    a_hundred_parallel_spends_never_overdraw,
    holds_time_out_and_lots_expire_on_the_clock,
    the_history_is_paginated_newest_first,
    campaigns_stop_at_their_end_and_at_their_budget,
    a_balance_read_on_another_node_shows_a_spend_at_once,
);

async fn campaigns_stop_at_their_end_and_at_their_budget(backend: Backend) {
    let catalog = std::env::temp_dir().join(format!("catalog-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(
        &catalog,
        r#"currency = "EUR"
[[claims]]
id = "small"
name = "Small campaign"
kind = "promotion"
credits = 250
budget_credits = 500

[[claims]]
id = "over"
name = "Over"
kind = "promotion"
credits = 10
ends_at = "2020-01-01T00:00:00Z"
"#,
    )
    .unwrap();
    let path = catalog.clone();
    let app = tests::spawn_app_with(backend, move |setup| setup.serve.catalog = Some(path)).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(app.signed_up().await.1);
    }
    for session in &sessions[..2] {
        let claimed = app
            .post("/me/claims/small", Some(&session.token), &json!({}))
            .await;
        assert_eq!(claimed.status(), StatusCode::OK);
    }
    let exhausted = app
        .post("/me/claims/small", Some(&sessions[2].token), &json!({}))
        .await;
    assert_eq!(exhausted.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(exhausted).await, "claim_budget_exhausted");
    let again = app
        .post("/me/claims/small", Some(&sessions[0].token), &json!({}))
        .await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "those who claimed get the same answer"
    );

    let ended = app
        .post("/me/claims/over", Some(&sessions[2].token), &json!({}))
        .await;
    assert_eq!(ended.status(), StatusCode::GONE);
    assert_eq!(error_code(ended).await, "claim_ended");

    let list: Value = app
        .get("/me/claims", Some(&sessions[2].token))
        .await
        .json()
        .await
        .unwrap();
    let status = |id: &str| {
        list["claims"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status("small"), "exhausted");
    assert_eq!(status("over"), "ended");
    assert_eq!(
        credits(&app, &sessions[2]).await["balance"],
        0,
        "nothing granted"
    );
    assert_eq!(credits(&app, &sessions[0]).await["balance"], 250);
    std::fs::remove_file(catalog).ok();
}

/// A hold answers while the credits read model is held back; a balance read then waits
/// for it and shows the hold once it moves on. The read model is held back by locking its
/// checkpoint row, which its next batch must update (PostgreSQL: SQLite's one writer would
/// hold back the hold's own append too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_answers_before_the_read_model_shows_it_and_the_balance_read_waits() {
    use sqlx::Connection;
    tests::within_time_limit(Box::pin(async {
        let app = spawn_app(Backend::Postgres).await;
        let (_, session) = app.signed_up().await;
        let account = account_id(&app, &session).await;
        grant(&app, account, 500).await;

        let mut conn = sqlx::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        let mut lock = conn.begin().await.unwrap();
        sqlx::query(
            "SELECT position FROM projection_checkpoints WHERE name = 'credits' FOR UPDATE",
        )
        .execute(&mut *lock)
        .await
        .unwrap();

        let held = tokio::time::timeout(Duration::from_secs(5), hold(&app, &session, "gen-1", 200))
            .await
            .expect("the hold answers without the read model");
        assert_eq!(held.status(), StatusCode::CREATED);

        let read = tokio::spawn({
            let (client, url, token) = (
                app.client.clone(),
                format!("{}/me/credits", app.address),
                session.token.clone(),
            );
            async move {
                let response = client.get(url).bearer_auth(token).send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!read.is_finished(), "the read waits for the read model");

        lock.rollback().await.unwrap();
        let (status, card) = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the read answers once the read model moves on")
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (card["balance"].as_u64(), card["held"].as_u64()),
            (Some(300), Some(200)),
            "{card}"
        );
    }))
    .await;
}
