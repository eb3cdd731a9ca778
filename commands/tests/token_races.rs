//! A token created while the owner changes the password with `revoke_tokens`: the change
//! committed between the token's two appends (counted on the account, then recorded on its
//! own stream) stopped counting it and revoked only the tokens the read model had then.
//! The creation sees it, revokes the token and hands out no secret.

use commands::access_tokens::{AccessTokens, NewAccessToken};
use commands::accounts::{Accounts, ChangePassword, RegisterAccount, SessionPolicy, SignIn};
use commands::passwords::Passwords;
use commands::{CommandContext, CommandError, EventCodec, Executor, SystemClock};
use domain::access_token::{AccessToken, TokenKind};
use domain::session::SessionOrigin;
use std::sync::Arc;
use std::time::Duration;
use store::Database;
use store::testkit::{ProbedLog, TestSqlite};
use vault::{DataKeys, EmailIndex, MasterKey};

const PASSWORD: &str = "correct-horse-7-battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_created_across_a_password_change_that_revokes_tokens_is_revoked() {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let master = MasterKey::generate();
    let codec = EventCodec::new(Arc::new(DataKeys::new(db.clone(), &master)));
    let accounts = Accounts::new(
        Executor::new(log.clone(), codec.clone()),
        EmailIndex::new(&master),
        Passwords::new(2),
        Arc::new(store::FolderBlobStore::new(
            std::env::temp_dir().join("blobs-test"),
        )),
        Arc::new(SystemClock),
        SessionPolicy::default(),
    );
    let probed = ProbedLog::new(log.clone());
    let tokens = AccessTokens::new(
        Executor::new(probed.clone(), codec.clone()),
        Arc::new(SystemClock),
    );
    let ctx = CommandContext::system("test");
    let register = RegisterAccount {
        email: "ada@example.com".into(),
        password: PASSWORD.into(),
        display_name: "Ada".into(),
    };
    let (account, _) = accounts.register(&ctx, register).await.unwrap();
    let sign_in = SignIn {
        email: "ada@example.com".into(),
        password: PASSWORD.into(),
        second_factor: None,
        origin: SessionOrigin::default(),
    };
    let session = accounts.sign_in(&ctx, sign_in).await.unwrap().session_id;

    let new = || NewAccessToken {
        kind: TokenKind::CliDevice,
        label: "laptop".into(),
        scopes: vec![],
        expires_in_days: None,
    };
    // A token created without a race: its secret is handed out, never printed.
    let plain = tokens.create(&ctx, account, session, new()).await.unwrap();
    assert!(!format!("{plain:?}").contains(&plain.token));

    probed.streams_read.lock().unwrap().clear();
    // The token is counted on the account; its own stream's append is held.
    *probed.hold_stream.lock().unwrap() = Some("accesstoken-".into());
    let creating = {
        let (tokens, ctx) = (tokens.clone(), ctx.clone());
        tokio::spawn(async move { tokens.create(&ctx, account, session, new()).await })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while probed.hold_stream.lock().unwrap().is_some() {
        assert!(tokio::time::Instant::now() < deadline, "never held");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let change = ChangePassword {
        current_password: PASSWORD.into(),
        new_password: "another-horse-8-staple".into(),
        sign_out_other_sessions: false,
        revoke_tokens: true,
    };
    accounts
        .change_password(&ctx, account, session, change)
        .await
        .unwrap();
    probed.gate.add_permits(1);

    let refused = creating.await.unwrap();
    assert!(
        matches!(refused, Err(CommandError::ReauthenticationRequired)),
        "no secret handed out: {refused:?}"
    );
    // The token's stream records its revocation.
    let streams = probed.streams_read.lock().unwrap().clone();
    let token_stream = streams
        .iter()
        .find(|s| s.starts_with("accesstoken-"))
        .expect("the token's stream");
    let token = Executor::new(log, codec)
        .load::<AccessToken>(token_stream)
        .await
        .unwrap()
        .state;
    assert!(token.revoked, "revoked on its stream");
}
