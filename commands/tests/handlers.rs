//! Command handlers against a real (SQLite) log: sealing personal data, uniqueness of
//! e-mail addresses under concurrency (and across a change of address), sign-in,
//! idempotency keys and activity flushing.

use commands::Payload;
use commands::accounts::{Accounts, RegisterAccount, SessionPolicy, SignIn};
use commands::codec::{EventCodec, SEALED_FIELD};
use commands::idempotency::{Claim, IdempotencyStore, StoredResponse};
use commands::passwords::Passwords;
use commands::{Clock, CommandContext, CommandError, Executor, SystemClock};
use domain::account::AccountEvent;
use domain::session::SessionOrigin;
use domain::{AccountId, DomainEvent, SessionId};
use std::sync::Arc;
use store::testkit::TestSqlite;
use store::{Actor, Database, EventLog, GlobalPosition};
use vault::{AccountLinkSet, DataKeys, EmailIndex, FieldSealer, MasterKey};

#[path = "handlers/email_change.rs"]
mod email_change;

struct Fixture {
    accounts: Accounts,
    codec: EventCodec,
    log: Arc<dyn EventLog>,
    db: Database,
    email_index: EmailIndex,
    links: AccountLinkSet,
    _file: TestSqlite,
}

async fn fixture() -> Fixture {
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
    )
    .with_account_links(AccountLinkSet::new(&master));
    Fixture {
        accounts,
        codec,
        log,
        db,
        email_index: EmailIndex::new(&master),
        links: AccountLinkSet::new(&master),
        _file: file,
    }
}

fn ctx() -> CommandContext {
    CommandContext {
        correlation_id: uuid::Uuid::new_v4(),
        causation_id: None,
        actor: Actor::Anonymous,
        idempotency_key: None,
    }
}

fn registration(email: &str) -> RegisterAccount {
    RegisterAccount {
        email: email.into(),
        password: "correct-horse-7-battery".into(),
        display_name: "Ada Lovelace".into(),
    }
}

#[tokio::test]
async fn personal_fields_are_sealed_in_the_log_and_unreadable_once_the_key_is_destroyed() {
    let f = fixture().await;
    let (account_id, _) = f
        .accounts
        .register(&ctx(), registration("ada@example.com"))
        .await
        .unwrap();
    let stream = format!("account-{account_id}");
    let raw = f.log.read_stream_to_end(&stream).await.unwrap();
    // The registration, and the verification link sent to the address.
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[1].event_type, "EmailVerificationRequested");
    for event in &raw {
        let text = event.data.to_string();
        assert!(event.data.get(SEALED_FIELD).is_some());
        for secret in ["ada@example.com", "Ada Lovelace", "argon2id"] {
            assert!(!text.contains(secret), "{secret} stored in clear: {text}");
        }
    }

    let decoded = f.codec.decode(raw[0].clone()).await.unwrap();
    let Payload::Event(DomainEvent::Account(AccountEvent::AccountRegistered {
        email,
        display_name,
        ..
    })) = decoded.payload
    else {
        panic!("decodes back to the registration: {decoded:?}")
    };
    assert_eq!(email.as_str(), "ada@example.com");
    assert_eq!(display_name.as_str(), "Ada Lovelace");

    f.codec
        .keys()
        .destroy(account_id.0, SystemClock.now())
        .await
        .unwrap();
    // A fresh codec (as after a restart) must not find the key either.
    let master = MasterKey::generate();
    let fresh = EventCodec::new(Arc::new(DataKeys::new(f.db.clone(), &master)));
    for codec in [&fresh, &f.codec] {
        let decoded = codec.decode(raw[0].clone()).await.unwrap();
        assert!(decoded.event().is_none());
        // What it still says, without the address or the name.
        let Some(DomainEvent::Account(AccountEvent::AccountRegistered {
            account_id: redacted_id,
            email,
            display_name,
            ..
        })) = decoded.redacted()
        else {
            panic!("erased, with what it still says: {:?}", decoded.payload);
        };
        assert_eq!(*redacted_id, account_id);
        assert!(email.as_str().is_empty() && display_name.as_str().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_registers_once_however_many_try_at_the_same_time() {
    let f = Arc::new(fixture().await);
    let tasks: Vec<_> = [
        "Bob@example.com",
        "bob@example.com",
        "BOB@EXAMPLE.COM",
        "bob@Example.com",
    ]
    .into_iter()
    .map(|email| {
        let f = f.clone();
        tokio::spawn(async move { f.accounts.register(&ctx(), registration(email)).await })
    })
    .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(CommandError::EmailTaken) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    // Only the winner's account stream exists.
    let events = f.log.read_all(GlobalPosition::START, 100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "AccountRegistered")
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event_type == "EmailReserved")
            .count(),
        1
    );
}

#[tokio::test]
async fn registration_refuses_bad_input_and_writes_nothing() {
    let f = fixture().await;
    let weak = RegisterAccount {
        password: "password".into(),
        ..registration("c@example.com")
    };
    assert!(matches!(
        f.accounts.register(&ctx(), weak).await,
        Err(CommandError::WeakPassword(_))
    ));
    let bad_email = registration("not-an-email");
    assert!(matches!(
        f.accounts.register(&ctx(), bad_email).await,
        Err(CommandError::Invalid { field: "email", .. })
    ));
    let bad_name = RegisterAccount {
        display_name: " ".into(),
        ..registration("c@example.com")
    };
    assert!(matches!(
        f.accounts.register(&ctx(), bad_name).await,
        Err(CommandError::Invalid {
            field: "display_name",
            ..
        })
    ));
    assert_eq!(f.log.head().await.unwrap(), GlobalPosition::START);
}

#[tokio::test]
async fn sign_in_needs_the_right_password_and_says_the_same_for_unknown_addresses() {
    let f = fixture().await;
    let (account_id, _) = f
        .accounts
        .register(&ctx(), registration("dee@example.com"))
        .await
        .unwrap();
    let attempt = |email: &str, password: &str| SignIn {
        email: email.into(),
        password: password.into(),
        second_factor: None,
        origin: SessionOrigin::default(),
    };
    for (email, password) in [
        ("dee@example.com", "wrong-horse-7-battery"),
        ("nobody@example.com", "correct-horse-7-battery"),
        ("garbage", "correct-horse-7-battery"),
    ] {
        let refused = f.accounts.sign_in(&ctx(), attempt(email, password)).await;
        assert!(
            matches!(refused, Err(CommandError::InvalidCredentials)),
            "{email}: {refused:?}"
        );
    }
    let signed_in = f
        .accounts
        .sign_in(
            &ctx(),
            attempt("DEE@example.com", "correct-horse-7-battery"),
        )
        .await
        .unwrap();
    assert_eq!(signed_in.account_id, account_id);
    assert!(signed_in.token.starts_with("ses_"));
    assert!(
        !format!("{signed_in:?}").contains(&signed_in.token),
        "never printed"
    );
    let raw = f.log.read_all(GlobalPosition::START, 100).await.unwrap();
    assert!(
        !raw.iter()
            .any(|e| e.data.to_string().contains(&signed_in.token)),
        "token never stored"
    );
}

#[tokio::test]
async fn revoking_a_session_of_another_account_is_not_found() {
    let f = fixture().await;
    let (a, _) = f
        .accounts
        .register(&ctx(), registration("a@example.com"))
        .await
        .unwrap();
    let (_b, _) = f
        .accounts
        .register(&ctx(), registration("b@example.com"))
        .await
        .unwrap();
    let b_session = f
        .accounts
        .sign_in(
            &ctx(),
            SignIn {
                email: "b@example.com".into(),
                password: "correct-horse-7-battery".into(),
                second_factor: None,
                origin: SessionOrigin::default(),
            },
        )
        .await
        .unwrap();
    let refused = f
        .accounts
        .revoke_session(
            &ctx(),
            a,
            b_session.session_id,
            domain::session::RevocationReason::Revoked,
        )
        .await;
    assert!(matches!(refused, Err(CommandError::SessionNotFound)));
    let missing = f
        .accounts
        .revoke_session(
            &ctx(),
            AccountId(uuid::Uuid::new_v4()),
            SessionId(uuid::Uuid::new_v4()),
            domain::session::RevocationReason::Revoked,
        )
        .await;
    assert!(matches!(missing, Err(CommandError::AccountNotFound)));
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_mismatches_and_expire_leases() {
    let f = fixture().await;
    let store = IdempotencyStore::new(
        f.db.clone(),
        FieldSealer::new(f.codec.keys().clone()),
        [7; 32],
    );
    let now = SystemClock.now();
    assert_eq!(
        store.claim("scope-1", "hash-a", now).await.unwrap(),
        Claim::Run
    );
    assert_eq!(
        store.claim("scope-1", "hash-a", now).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(
        store.claim("scope-1", "hash-b", now).await.unwrap(),
        Claim::Mismatch
    );
    let response = StoredResponse {
        status: 201,
        content_type: Some("application/json".into()),
        body: b"{\"ok\":true}".to_vec(),
    };
    store
        .complete("scope-1", &response, None, now)
        .await
        .unwrap();
    assert_eq!(
        store.claim("scope-1", "hash-a", now).await.unwrap(),
        Claim::Replay(response)
    );
    assert_eq!(
        store.claim("scope-1", "hash-b", now).await.unwrap(),
        Claim::Mismatch
    );

    // A claim whose request died is taken over after the lease.
    assert_eq!(
        store.claim("scope-2", "hash-a", now).await.unwrap(),
        Claim::Run
    );
    let later = now.plus(std::time::Duration::from_secs(61));
    assert_eq!(
        store.claim("scope-2", "hash-a", later).await.unwrap(),
        Claim::Run
    );
    // A released claim runs again at once.
    store.release("scope-2").await.unwrap();
    assert_eq!(
        store.claim("scope-2", "hash-a", later).await.unwrap(),
        Claim::Run
    );

    // An account's response is stored sealed, replays opened, and is gone with the key.
    let account = AccountId(uuid::Uuid::new_v4());
    f.codec.keys().create(account.0, now).await.unwrap();
    let secret = StoredResponse {
        status: 201,
        content_type: Some("application/json".into()),
        body: b"{\"token\":\"vsk_sealed_probe\"}".to_vec(),
    };
    assert_eq!(
        store.claim("scope-3", "hash-a", now).await.unwrap(),
        Claim::Run
    );
    store
        .complete("scope-3", &secret, Some(account), now)
        .await
        .unwrap();
    let stored: Vec<u8> =
        sqlx::query_scalar("SELECT body FROM idempotency_keys WHERE scope = 'scope-3'")
            .fetch_one(f.db.pool())
            .await
            .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("vsk_sealed_probe"));
    assert_eq!(
        store.claim("scope-3", "hash-a", now).await.unwrap(),
        Claim::Replay(secret)
    );
    f.codec.keys().destroy(account.0, now).await.unwrap();
    assert_eq!(
        store.claim("scope-3", "hash-a", now).await.unwrap(),
        Claim::Run,
        "erased with the key"
    );
}

#[tokio::test]
async fn activity_is_flushed_as_one_event_per_account() {
    let f = fixture().await;
    let activity = commands::activity::SessionActivity::new(f.log.clone(), f.codec.clone());
    let (a, b) = (
        AccountId(uuid::Uuid::new_v4()),
        AccountId(uuid::Uuid::new_v4()),
    );
    let now = SystemClock.now();
    for i in 0..50 {
        activity.touch(
            a,
            SessionId(uuid::Uuid::from_u128(1)),
            now.plus(std::time::Duration::from_secs(i)),
        );
        activity.touch(a, SessionId(uuid::Uuid::from_u128(2)), now);
        activity.touch(b, SessionId(uuid::Uuid::from_u128(3)), now);
    }
    assert_eq!(activity.flush(now).await.unwrap(), 2);
    assert_eq!(
        activity.flush(now).await.unwrap(),
        0,
        "nothing new to flush"
    );
    let events = f.log.read_all(GlobalPosition::START, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    let last_a = activity
        .last_seen(SessionId(uuid::Uuid::from_u128(1)))
        .unwrap();
    assert_eq!(last_a, now.plus(std::time::Duration::from_secs(49)));
}

#[tokio::test]
async fn two_nodes_with_their_own_caches_see_each_others_appends() {
    let f = fixture().await;
    let master = MasterKey::generate();
    let node = |log: Arc<dyn EventLog>| {
        Accounts::new(
            Executor::new(log, f.codec.clone()),
            EmailIndex::new(&master),
            Passwords::new(1),
            Arc::new(store::FolderBlobStore::new(
                std::env::temp_dir().join("blobs-test"),
            )),
            Arc::new(SystemClock),
            SessionPolicy::default(),
        )
    };
    let (a, b) = (node(f.log.clone()), node(f.log.clone()));
    let (account_id, _) = a
        .register(&ctx(), registration("nodes@example.com"))
        .await
        .unwrap();
    let sign_in = || SignIn {
        email: "nodes@example.com".into(),
        password: "correct-horse-7-battery".into(),
        second_factor: None,
        origin: SessionOrigin::default(),
    };
    let on_b = b.sign_in(&ctx(), sign_in()).await.unwrap();
    let on_a = a.sign_in(&ctx(), sign_in()).await.unwrap();
    // Node A cached the account at registration; it must still see B's session.
    let changed = a
        .revoke_other_sessions(&ctx(), account_id, on_a.session_id)
        .await
        .unwrap();
    assert_eq!(changed.sessions_revoked, 1);
    let again = b
        .revoke_session(
            &ctx(),
            account_id,
            on_b.session_id,
            domain::session::RevocationReason::Logout,
        )
        .await
        .unwrap();
    assert_eq!(
        again.sessions_revoked, 0,
        "B sees A's revocation: nothing left to do"
    );
}

/// The executor counts a conflict and the retry it causes and times the command, under the
/// command's name. The figures go to a recorder local to the test's thread, which runs the
/// whole command (the overtaking one too, in `block_in_place`); appends run on a task of
/// their own (commands queued on a stream share them), so their sizes are not seen here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_counted_and_retried_in_the_metrics() {
    use domain::Aggregate;
    use domain::account::{Account, AccountCommand};
    use domain::email::DisplayName;
    let f = fixture().await;
    let (account_id, _) = f
        .accounts
        .register(&ctx(), registration("race@example.com"))
        .await
        .unwrap();
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let _local = metrics::set_default_local_recorder(&recorder);
    let rename = |name: &str| AccountCommand::UpdateProfile {
        display_name: Some(DisplayName::parse(name).unwrap()),
        bio: None,
        public_profile: None,
        at: SystemClock.now(),
    };
    let stream = format!("account-{account_id}");
    // Two nodes: their own caches and queues, one log.
    let (node, other) = (
        Executor::new(f.log.clone(), f.codec.clone()),
        Executor::new(f.log.clone(), f.codec.clone()),
    );
    let mut overtaken = false;
    let executed = node
        .execute::<Account, _>(
            &stream,
            &ctx(),
            Some(account_id.0),
            SystemClock.now(),
            |account| {
                if !overtaken {
                    overtaken = true;
                    // The other node appends after this decision's load: a conflict.
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(other.execute::<Account, _>(
                            &stream,
                            &ctx(),
                            Some(account_id.0),
                            SystemClock.now(),
                            |account| Ok(account.decide(&rename("Overtaker"))?),
                        ))
                    })
                    .unwrap();
                }
                Ok(account.decide(&rename("Winner"))?)
            },
        )
        .await
        .unwrap();
    assert_eq!(executed.events.len(), 1);
    assert_eq!(node.conflicts(), 1);
    let text = recorder.handle().render();
    let name = "command=\"account.a_conflict_is_counted_and_retried_in_the_metrics\"";
    for line in [
        format!("accounts_command_conflicts_total{{{name}}} 1"),
        format!("accounts_command_retries_total{{{name}}} 1"),
        // The node's command and the overtaking one, each timed once.
        format!("accounts_command_duration_seconds_count{{{name}}} 2"),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in\n{text}"
        );
    }
}

/// A password hashed with earlier parameters is hashed again with the current ones at the
/// next sign-in (in the background): checking it then costs what the decoy of an unknown
/// address costs. The password, its version and every session stay as they were.
#[tokio::test]
async fn a_password_of_earlier_parameters_is_rehashed_at_sign_in() {
    use commands::passwords::Passwords;
    use domain::account::Account;
    // "correct horse battery staple" at 19 MiB and 2 passes (the parameters before).
    const EARLIER: &str = "$argon2id$v=19$m=19456,t=2,p=1$a25vd24tYW5zd2VyLXNhbHQ$eBLOJsDGEa0FOShFosIQGeIVHV1wptjmXxad6TLNCms";
    const PASSWORD: &str = "correct horse battery staple";
    let f = fixture().await;
    let (account_id, _) = f
        .accounts
        .register(&ctx(), registration("old@example.com"))
        .await
        .unwrap();
    let stream = format!("account-{account_id}");
    let exec = Executor::new(f.log.clone(), f.codec.clone());
    exec.execute::<Account, _>(
        &stream,
        &ctx(),
        Some(account_id.0),
        SystemClock.now(),
        |_| {
            Ok(vec![AccountEvent::PasswordChanged {
                password_hash: EARLIER.into(),
                changed_at: SystemClock.now(),
                changed_by_session: None,
                tokens_revoked: false,
                reset_link: None,
                second_factor: None,
            }])
        },
    )
    .await
    .unwrap();
    let sign_in = || SignIn {
        email: "old@example.com".into(),
        password: PASSWORD.into(),
        second_factor: None,
        origin: SessionOrigin::default(),
    };
    f.accounts.sign_in(&ctx(), sign_in()).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let account = loop {
        let account = exec.load::<Account>(&stream).await.unwrap().state;
        if account.password_hash.as_deref() != Some(EARLIER) {
            break account;
        }
        assert!(std::time::Instant::now() < deadline, "never rehashed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let hash = account.password_hash.clone().unwrap();
    assert!(Passwords::is_current(&hash), "{hash}");
    assert_eq!(account.password_version, 1, "the password did not change");
    f.accounts.sign_in(&ctx(), sign_in()).await.unwrap();
    // The new hash is sealed in its event, as every password hash is.
    let raw = f.log.read_stream_to_end(&stream).await.unwrap();
    let rehashed = raw
        .iter()
        .find(|e| e.event_type == "PasswordRehashed")
        .expect("recorded");
    assert!(!rehashed.data.to_string().contains("argon2id"));
}
