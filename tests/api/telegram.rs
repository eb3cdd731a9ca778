//! Telegram: linking a chat with a single-use deep link, the webhook and its secret, `/stop`
//! and a blocked bot, a Telegram user moving to another account, and notices to the chat
//! only when their Telegram toggle is on, exactly once. The Bot API is a local fake
//! (`tests::telegram::FakeBotApi`).

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::telegram::{BOT_TOKEN, BOT_USERNAME, FakeBotApi, WEBHOOK_SECRET};
use tests::{Session, TestApp, error_code, json_body, spawn_app, spawn_app_with};
use uuid::Uuid;

async fn app_with_bot(backend: Backend) -> (TestApp, FakeBotApi) {
    let fake = FakeBotApi::start().await;
    let url = fake.url();
    let app = spawn_app_with(backend, |setup| {
        let telegram = &mut setup.serve.mail.telegram;
        telegram.telegram_api_url = url;
        telegram.telegram_bot_token = Some(BOT_TOKEN.into());
        telegram.telegram_bot_username = Some(BOT_USERNAME.into());
        telegram.telegram_webhook_secret = Some(WEBHOOK_SECRET.into());
    })
    .await;
    (app, fake)
}

/// A Telegram user with a private chat of their own (ids large enough to search for).
#[derive(Clone)]
struct TgUser {
    id: i64,
    chat: i64,
    username: String,
}

fn tg_user() -> TgUser {
    let n = (Uuid::new_v4().as_u128() % 1_000_000_000) as i64;
    TgUser {
        id: 8_100_000_000 + n,
        chat: 9_200_000_000 + n,
        username: format!("tguser_{}", &Uuid::new_v4().simple().to_string()[..10]),
    }
}

async fn webhook(app: &TestApp, secret: Option<&str>, update: &Value) -> Response {
    let mut request = app
        .request(Method::POST, "/webhooks/telegram", None)
        .json(update);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request.send().await.unwrap()
}

async fn say(app: &TestApp, user: &TgUser, text: &str) {
    let update = json!({
        "update_id": 1,
        "message": {
            "message_id": 5,
            "date": 1_700_000_000,
            "chat": {"id": user.chat, "type": "private", "username": user.username},
            "from": {"id": user.id, "is_bot": false, "first_name": "Ada", "username": user.username},
            "text": text,
        }
    });
    let response = webhook(app, Some(WEBHOOK_SECRET), &update).await;
    assert_eq!(response.status(), StatusCode::OK, "{text}");
}

async fn link_token(app: &TestApp, session: &Session) -> String {
    let response = app
        .post("/me/telegram/link", Some(&session.token), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_body(response).await;
    let url = body["link_url"].as_str().unwrap();
    let prefix = format!("https://t.me/{BOT_USERNAME}?start=");
    assert!(url.starts_with(&prefix), "{url}");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    url[prefix.len()..].to_owned()
}

async fn status(app: &TestApp, session: &Session) -> Value {
    let response = app.get("/me/telegram", Some(&session.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    json_body(response).await
}

async fn link(app: &TestApp, fake: &FakeBotApi, session: &Session, user: &TgUser) {
    let token = link_token(app, session).await;
    let before = fake.sent_to(user.chat).len();
    say(app, user, &format!("/start {token}")).await;
    let sent = fake.wait_for(user.chat, before + 1).await;
    assert!(sent[before].starts_with("Connected"), "{sent:?}");
    assert_eq!(status(app, session).await["linked"], true);
}

async fn a_link_works_end_to_end_once_and_not_after_ten_minutes(backend: Backend) {
    let (app, fake) = app_with_bot(backend).await;
    let (_, session) = app.signed_up().await;
    let unlinked = status(&app, &session).await;
    assert_eq!(
        unlinked,
        json!({"linked": false, "username_hint": null, "linked_at": null})
    );
    let ada = tg_user();
    let token = link_token(&app, &session).await;
    assert!(token.len() >= 24 && token.len() <= 64, "{token}");
    say(&app, &ada, &format!("/start {token}")).await;
    let sent = fake.wait_for(ada.chat, 1).await;
    assert!(sent[0].starts_with("Connected"), "{sent:?}");
    let linked = status(&app, &session).await;
    assert_eq!(linked["linked"], true);
    assert_eq!(linked["username_hint"], format!("@{}…", &ada.username[..2]));
    let linked_at = linked["linked_at"].clone();

    // The same token again, from someone else: answered, nothing linked.
    let eve = tg_user();
    say(&app, &eve, &format!("/start {token}")).await;
    let sent = fake.wait_for(eve.chat, 1).await;
    assert!(sent[0].contains("already used"), "{sent:?}");
    // A made-up token: the same answer.
    say(&app, &eve, "/start tg_not-a-real-token").await;
    assert!(fake.wait_for(eve.chat, 2).await[1].contains("already used"));

    // A fresh token used after 11 minutes: expired, nothing changes.
    let late = link_token(&app, &session).await;
    app.clock.advance(Duration::from_secs(11 * 60));
    say(&app, &eve, &format!("/start {late}")).await;
    let sent = fake.wait_for(eve.chat, 3).await;
    assert!(sent[2].contains("expired"), "{sent:?}");
    let still = status(&app, &session).await;
    assert_eq!(still["linked_at"], linked_at);
    assert_eq!(still["username_hint"], linked["username_hint"]);

    // Telegram ids and the username are sealed in events and read models.
    app.settle().await;
    let raw = app.raw_events().await.join("\n");
    let rows = app.read_model_rows().await.join("\n");
    for secret in [
        ada.id.to_string(),
        ada.chat.to_string(),
        ada.username.clone(),
        token.clone(),
    ] {
        assert!(!raw.contains(&secret), "{secret} in the events");
        assert!(!rows.contains(&secret), "{secret} in the tables");
    }
}

async fn the_webhook_needs_its_secret_and_the_routes_a_bot(backend: Backend) {
    let (app, fake) = app_with_bot(backend).await;
    let (_, session) = app.signed_up().await;
    let token = link_token(&app, &session).await;
    let ada = tg_user();
    let update = json!({"update_id": 2, "message": {
        "chat": {"id": ada.chat, "type": "private"},
        "from": {"id": ada.id, "username": ada.username},
        "text": format!("/start {token}")}});
    let before = app.event_count().await;
    let missing = webhook(&app, None, &update).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(missing).await, "missing_secret_token");
    let wrong = webhook(&app, Some("tg-webhook-secreT"), &update).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invalid_secret_token");
    let garbage = app
        .request(Method::POST, "/webhooks/telegram", None)
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .header("content-type", "application/json")
        .body("{\"nope\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(garbage).await, "invalid_payload");
    assert_eq!(app.event_count().await, before, "nothing changed");
    assert_eq!(status(&app, &session).await["linked"], false);
    assert!(fake.sent().is_empty());

    // Without a bot, every Telegram route is 503 with its code.
    let bare = spawn_app(backend).await;
    let (_, session) = bare.signed_up().await;
    for response in [
        bare.post("/me/telegram/link", Some(&session.token), &json!({}))
            .await,
        bare.get("/me/telegram", Some(&session.token)).await,
        bare.delete("/me/telegram", Some(&session.token)).await,
        webhook(&bare, Some(WEBHOOK_SECRET), &update).await,
    ] {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error_code(response).await, "telegram_unavailable");
    }
}

async fn stop_blocking_the_bot_and_delete_unlink(backend: Backend) {
    let (app, fake) = app_with_bot(backend).await;
    let (_, session) = app.signed_up().await;
    let ada = tg_user();
    link(&app, &fake, &session, &ada).await;
    say(&app, &ada, "/stop").await;
    assert!(fake.wait_for(ada.chat, 2).await[1].starts_with("Disconnected"));
    assert_eq!(status(&app, &session).await["linked"], false);

    link(&app, &fake, &session, &ada).await;
    // Ada kicks the bot from a chat: removing it from a group unlinks nothing; blocking it
    // (a kick in her private chat with it) unlinks.
    let kicked_from = |update: u32, chat: Value| {
        json!({"update_id": update, "my_chat_member": {
            "chat": chat,
            "from": {"id": ada.id, "is_bot": false, "first_name": "Ada"},
            "date": 1_700_000_000,
            "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": true, "first_name": "bot"}},
            "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": true, "first_name": "bot"}, "until_date": 0}}})
    };
    let removed = kicked_from(4, json!({"id": -1_001_234, "type": "supergroup"}));
    assert_eq!(
        webhook(&app, Some(WEBHOOK_SECRET), &removed).await.status(),
        StatusCode::OK
    );
    assert_eq!(status(&app, &session).await["linked"], true);
    let kicked = kicked_from(3, json!({"id": ada.chat, "type": "private"}));
    assert_eq!(
        webhook(&app, Some(WEBHOOK_SECRET), &kicked).await.status(),
        StatusCode::OK
    );
    assert_eq!(status(&app, &session).await["linked"], false);

    link(&app, &fake, &session, &ada).await;
    for _ in 0..2 {
        let response = app.delete("/me/telegram", Some(&session.token)).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    assert_eq!(status(&app, &session).await["linked"], false);
    // Unlinked by the account, the Telegram user can link it again.
    link(&app, &fake, &session, &ada).await;
}

async fn a_telegram_user_linked_to_another_account_moves(backend: Backend) {
    let (app, fake) = app_with_bot(backend).await;
    let (_, first) = app.signed_up().await;
    let (_, second) = app.signed_up().await;
    let ada = tg_user();
    link(&app, &fake, &first, &ada).await;
    link(&app, &fake, &second, &ada).await;
    assert_eq!(status(&app, &first).await["linked"], false);
    assert_eq!(status(&app, &second).await["linked"], true);
    // PostgreSQL prints JSON with spaces.
    let raw = app.raw_events().await.join("\n").replace(' ', "");
    assert!(raw.contains("\"reason\":\"moved\""), "the move is recorded");
    assert!(
        raw.contains("\"previous\":\""),
        "the former account is recorded"
    );
    // `/stop` now unlinks the second account.
    say(&app, &ada, "/stop").await;
    assert_eq!(status(&app, &second).await["linked"], false);
}

async fn generation(app: &TestApp, session: &Session, id: &str) {
    let held = app
        .post(
            "/me/generations",
            Some(&session.token),
            &json!({"generation_id": id, "estimated_credits": 2, "feature": "generation"}),
        )
        .await;
    assert_eq!(held.status(), StatusCode::CREATED);
    // Settled twice: charged once, announced once.
    for _ in 0..2 {
        let done = app
            .post(
                &format!("/me/generations/{id}/complete"),
                Some(&session.token),
                &json!({"credits": 2}),
            )
            .await;
        assert_eq!(done.status(), StatusCode::OK);
    }
}

async fn a_generation_notice_reaches_the_chat_only_with_its_toggle_once(backend: Backend) {
    let (app, fake) = app_with_bot(backend).await;
    let (email, session) = app.signed_up().await;
    app.post("/me/claims/signup-bonus", Some(&session.token), &json!({}))
        .await;
    let ada = tg_user();
    link(&app, &fake, &session, &ada).await;

    generation(&app, &session, "tg-off").await;
    // The e-mail arriving shows the notifier and mailer handled the event.
    crate::notifications::mails_to(&app, &email, 1).await;
    assert_eq!(
        fake.sent_to(ada.chat).len(),
        1,
        "the toggle is off by default"
    );

    let on = app
        .put(
            "/me/notifications",
            Some(&session.token),
            &json!({"telegram_generation_complete": true}),
        )
        .await;
    assert_eq!(on.status(), StatusCode::OK);
    assert_eq!(json_body(on).await["telegram_generation_complete"], true);
    generation(&app, &session, "tg-on").await;
    let sent = fake.wait_for(ada.chat, 2).await;
    assert!(
        sent[1].contains("tg-on") && sent[1].contains("complete"),
        "{sent:?}"
    );
    crate::notifications::mails_to(&app, &email, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.sent_to(ada.chat).len(), 2, "exactly once");
}

on_both_backends!(
    a_link_works_end_to_end_once_and_not_after_ten_minutes,
    the_webhook_needs_its_secret_and_the_routes_a_bot,
    stop_blocking_the_bot_and_delete_unlink,
    a_telegram_user_linked_to_another_account_moves,
    a_generation_notice_reaches_the_chat_only_with_its_toggle_once,
);
