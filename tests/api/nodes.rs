//! Several API nodes on one database: throttles, token rate limits and erased keys hold
//! for the deployment, not per process.

use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, eventually, json_body, spawn_app_with};

/// Wrong passwords alternating between two nodes are throttled as if one node saw them all.
async fn wrong_passwords_spread_over_two_nodes_are_throttled_as_one(backend: Backend) {
    let a = spawn_app_with(backend, |_| {}).await;
    let b = a.peer(|_| {}).await;
    a.register("nina@example.com").await;
    let wrong = json!({"email": "nina@example.com", "password": "wrong-horse-7-battery"});
    let mut statuses = Vec::new();
    for n in 0..14 {
        let node = if n % 2 == 0 { &a } else { &b };
        statuses.push(node.post("/auth/login", None, &wrong).await.status());
    }
    let judged = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(judged, 5, "five free attempts in all: {statuses:?}");
    assert!(
        statuses[5..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// A token's request budget is the same whichever node a request reaches.
async fn a_token_rate_limit_holds_across_nodes(backend: Backend) {
    let a = spawn_app_with(backend, |setup| setup.serve.token_rate_limit = 6).await;
    let b = a.peer(|setup| setup.serve.token_rate_limit = 6).await;
    let (_, session) = a.signed_up().await;
    let token = json_body(
        a.post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "farm", "scopes": ["account:read"]}),
        )
        .await,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut admitted = 0;
    for n in 0..12 {
        let node = if n % 2 == 0 { &a } else { &b };
        let status = node.get("/api/v1/me", Some(&token)).await.status();
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 6, "six a minute, in bursts of six, in all");
}

/// A token revoked through one node is refused by another that has it in its token cache
/// once that node sees the read model show the revocation, and at the latest once its
/// cache's TTL has passed.
async fn a_token_revoked_on_one_node_leaves_the_cache_of_another(backend: Backend) {
    let ttl = Duration::from_secs(2);
    let a = spawn_app_with(backend, |setup| setup.serve.token_cache_ttl = ttl).await;
    let b = a.peer(|setup| setup.serve.token_cache_ttl = ttl).await;
    let (_, session) = a.signed_up().await;
    let created = json_body(
        a.post(
            "/me/api-tokens",
            Some(&session.token),
            &json!({"label": "farm", "scopes": ["credits:read"]}),
        )
        .await,
    )
    .await;
    let (token_id, token) = (
        created["token_id"].as_str().unwrap().to_owned(),
        created["token"].as_str().unwrap().to_owned(),
    );
    // Node b answers from its cache once it has read the token (wait for the cache to
    // be in use: it is bypassed until b's follower of the log has started).
    let (b, token) = (&b, &token);
    eventually(Duration::from_secs(20), || async move {
        let status = b.get("/api/v1/credits", Some(token)).await.status();
        assert_eq!(status, StatusCode::OK);
        if b.state.tokens.cache.is_empty() {
            Err("b never cached it".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let revoked = a
        .delete(&format!("/me/api-tokens/{token_id}"), Some(&session.token))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        a.get("/api/v1/credits", Some(token)).await.status(),
        StatusCode::UNAUTHORIZED,
        "refused at once by the node that revoked it"
    );
    // A generous deadline: the bound is the read model's lag plus at most the TTL.
    eventually(ttl + Duration::from_secs(15), || async move {
        match b.get("/api/v1/credits", Some(token)).await.status() {
            StatusCode::UNAUTHORIZED => Ok(()),
            StatusCode::OK => Err("node b still accepts the revoked token".to_owned()),
            other => panic!("unexpected {other}"),
        }
    })
    .await;
}

/// A rotation through one node answers once committed; its new secret works at once
/// through another node, whose look-up of a secret it does not know waits for the read
/// model to show what the log holds. Repeated, so that some requests land before the read
/// model shows the rotation.
async fn a_secret_rotated_on_one_node_works_at_once_on_another(backend: Backend) {
    let a = spawn_app_with(backend, |_| {}).await;
    let b = a.peer(|_| {}).await;
    let (_, session) = a.signed_up().await;
    let token_id = a
        .create_api_token(&session.token, "farm", &["credits:read"])
        .await;
    for round in 0..20 {
        let rotated = a.rotate_api_token(&session.token, &token_id).await;
        let new = rotated["token"].as_str().unwrap();
        assert_eq!(
            b.get("/api/v1/credits", Some(new)).await.status(),
            StatusCode::OK,
            "round {round}: node b refused the new secret"
        );
    }
}

/// A new session works on its very first request, through the node that signed in and
/// through another: the sign-in answers once the sessions read model shows it, and the
/// nodes share that read model. Repeated, so that a sign-in answering early would show.
async fn a_new_session_works_at_once_on_either_node(backend: Backend) {
    let a = spawn_app_with(backend, |_| {}).await;
    let b = a.peer(|_| {}).await;
    let (email, _) = a.signed_up().await;
    for round in 0..20 {
        let session = a.login(&email, PASSWORD).await;
        let (name, node) = if round % 2 == 0 { ("a", &a) } else { ("b", &b) };
        let me = node.get("/me", Some(&session.token)).await;
        assert_eq!(
            me.status(),
            StatusCode::OK,
            "round {round}: node {name} refused the new session"
        );
    }
    // A token nobody issued is still refused after that wait.
    let unknown = format!(
        "{}{}",
        commands::tokens::SESSION_TOKEN_PREFIX,
        "x".repeat(43)
    );
    for node in [&a, &b] {
        assert_eq!(
            node.get("/me", Some(&unknown)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// A signed-out session is refused by the very next request through the node that signed
/// it out, which had it in its session cache; another node that had it cached refuses it
/// once it sees the read model show the sign-out, at the latest once its TTL has passed.
async fn a_session_signed_out_on_one_node_leaves_every_session_cache(backend: Backend) {
    let ttl = Duration::from_secs(2);
    let a = spawn_app_with(backend, |setup| setup.serve.session_cache_ttl = ttl).await;
    let b = a.peer(|setup| setup.serve.session_cache_ttl = ttl).await;
    let (_, session) = a.signed_up().await;
    // Both nodes answer from their caches once they have read the session (each cache is
    // bypassed until its node's follower of the log has started).
    let token = &session.token;
    for node in [&a, &b] {
        eventually(Duration::from_secs(20), || async move {
            assert_eq!(node.get("/me", Some(token)).await.status(), StatusCode::OK);
            if node.state.auth.sessions.is_empty() {
                Err("the session was never cached".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
    }
    let logout = a.post("/auth/logout", Some(token), &json!({})).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        a.get("/me", Some(token)).await.status(),
        StatusCode::UNAUTHORIZED,
        "refused at once by the node that signed it out"
    );
    let b = &b;
    eventually(ttl + Duration::from_secs(15), || async move {
        match b.get("/me", Some(token)).await.status() {
            StatusCode::UNAUTHORIZED => Ok(()),
            StatusCode::OK => Err("node b still accepts the signed-out session".to_owned()),
            other => panic!("unexpected {other}"),
        }
    })
    .await;
}

/// A session cached by one node while it is used through another is not refused as idle:
/// the cached last-active time is older than the read model's, so the node reads the
/// session again before refusing it.
async fn a_session_active_on_another_node_is_not_idle_in_a_cache(backend: Backend) {
    let idle = Duration::from_secs(600);
    // A TTL far beyond the test, so the last request would meet the cached row.
    let a = spawn_app_with(backend, |setup| {
        setup.serve.session_idle_timeout = idle;
        setup.serve.session_cache_ttl = Duration::from_secs(600);
    })
    .await;
    let b = a
        .peer(|setup| setup.serve.session_idle_timeout = idle)
        .await;
    let (_, session) = a.signed_up().await;
    let token = &session.token;
    let a = &a;
    eventually(Duration::from_secs(20), || async move {
        assert_eq!(a.get("/me", Some(token)).await.status(), StatusCode::OK);
        if a.state.auth.sessions.is_empty() {
            Err("node a never cached the session".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    // Used through node b nine minutes later; b writes that to the log.
    let nine_minutes = Duration::from_secs(9 * 60);
    a.clock.advance(nine_minutes);
    b.clock.advance(nine_minutes);
    assert_eq!(b.get("/me", Some(token)).await.status(), StatusCode::OK);
    let hash = commands::tokens::hash_token(token);
    let (db, hash, seen_on_b) = (&a.state.core.db, &hash, commands::Clock::now(&*b.clock));
    eventually(Duration::from_secs(20), || async move {
        let row = projections::sessions::find_by_token_hash(db, hash)
            .await
            .unwrap()
            .expect("the session is live");
        if row.last_active_at >= seen_on_b {
            Ok(())
        } else {
            Err("the read model does not show b's activity yet".to_owned())
        }
    })
    .await;
    // Eighteen minutes after node a last saw it, nine after b did: not idle, though a's
    // cached row and a's own activity say eighteen.
    a.clock.advance(nine_minutes);
    assert!(
        !a.state.auth.sessions.is_empty(),
        "a still holds the session"
    );
    assert_eq!(a.get("/me", Some(token)).await.status(), StatusCode::OK);
}

/// An account erased through one node leaves the key cache of every other node.
async fn an_erased_account_key_leaves_every_node(backend: Backend) {
    let a = spawn_app_with(backend, |_| {}).await;
    let b = a.peer(|_| {}).await;
    let account = a.register("olga@example.com").await;
    let session = a.login("olga@example.com", PASSWORD).await;
    let subject = uuid::Uuid::parse_str(&account).unwrap();
    // Node b reads the account (the read models are shared), which caches its key there.
    assert_eq!(
        b.get("/me", Some(&session.token)).await.status(),
        StatusCode::OK
    );
    assert!(
        b.state
            .core
            .codec
            .keys()
            .get(subject)
            .await
            .unwrap()
            .is_some(),
        "b holds the key"
    );
    let deleted = a
        .request(Method::DELETE, "/me", Some(&session.token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let b = &b;
    eventually(Duration::from_secs(10), || async move {
        match b.state.core.codec.keys().get(subject).await.unwrap() {
            Some(_) => Err("node b still opens the erased account's data".to_owned()),
            None => Ok(()),
        }
    })
    .await;
}

on_both_backends!(
    wrong_passwords_spread_over_two_nodes_are_throttled_as_one,
    a_token_rate_limit_holds_across_nodes,
    a_token_revoked_on_one_node_leaves_the_cache_of_another,
    a_secret_rotated_on_one_node_works_at_once_on_another,
    a_new_session_works_at_once_on_either_node,
    an_erased_account_key_leaves_every_node,
    a_session_signed_out_on_one_node_leaves_every_session_cache,
    a_session_active_on_another_node_is_not_idle_in_a_cache,
);
