//! Hot streams and snapshots in the executor, against a real (SQLite) log: commands queued
//! on one stream share one append; a batch refused because another node moved the stream
//! on takes the batches decided on top of it down too, and every command decides again
//! without losing an update; a long stream's cold load starts at its snapshot.

use commands::{Clock, CommandContext, EventCodec, Executor, SystemClock};
use domain::Aggregate;
use domain::credits::{CreditLedger, CreditsCommand, CreditsEvent, SourceKind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use store::testkit::{ProbedLog, TestSqlite};
use store::{Database, EventLog, ExpectedRevision, GlobalPosition, Snapshot, SnapshotStore};
use tokio::task::JoinHandle;
use uuid::Uuid;
use vault::{DataKeys, MasterKey};

struct Fixture {
    db: Database,
    log: Arc<dyn EventLog>,
    codec: EventCodec,
    _file: TestSqlite,
}

async fn fixture() -> Fixture {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    let codec = EventCodec::new(Arc::new(DataKeys::new(db.clone(), &MasterKey::generate())));
    Fixture {
        db,
        log,
        codec,
        _file: file,
    }
}

fn grant(key: &str) -> CreditsCommand {
    CreditsCommand::Grant {
        lot_id: Uuid::new_v4(),
        grant_key: key.to_owned(),
        amount: 10,
        source: SourceKind::Purchase,
        expires_at: None,
        at: SystemClock.now(),
    }
}

async fn run_grant(exec: &Executor, stream: &str, key: &str) -> Option<GlobalPosition> {
    let command = grant(key);
    exec.execute::<CreditLedger, _>(
        stream,
        &CommandContext::system("test"),
        None,
        SystemClock.now(),
        |ledger| Ok(ledger.decide(&command)?),
    )
    .await
    .expect("grant")
    .position
}

/// A node whose calls to the log are counted, another node on the same log (each with its
/// own cache and queues), and a new credits stream.
fn two_nodes(f: &Fixture) -> (Arc<ProbedLog>, Executor, Executor, String) {
    let probed = ProbedLog::new(f.log.clone());
    let node = Executor::new(probed.clone(), f.codec.clone());
    let elsewhere = Executor::new(f.log.clone(), f.codec.clone());
    (
        probed,
        node,
        elsewhere,
        format!("credits-{}", Uuid::new_v4()),
    )
}

/// Polls until `done` holds (a generous deadline: this waits for tasks, it times nothing).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Starts `n` grants on `stream` (keys `<prefix>0`, `<prefix>1`…) through `exec`: the first
/// one's append is held by `probed`, and this returns once the other `n - 1` have decided
/// on top of it and wait in one batch. Let the append through with `probed.gate`.
async fn queue_behind_a_held_append(
    probed: &ProbedLog,
    exec: &Executor,
    stream: &str,
    prefix: &str,
    n: usize,
) -> Vec<JoinHandle<Option<GlobalPosition>>> {
    probed.hold_next.store(true, Ordering::SeqCst);
    let spawn = |i: usize| {
        let (exec, stream, key) = (exec.clone(), stream.to_owned(), format!("{prefix}{i}"));
        tokio::spawn(async move { run_grant(&exec, &stream, &key).await })
    };
    let mut tasks = vec![spawn(0)];
    until("the first append is held", || {
        probed.appends.load(Ordering::SeqCst) == 1
    })
    .await;
    tasks.extend((1..n).map(spawn));
    until("the other commands queue behind the held commit", || {
        exec.queued_commands(stream) == n - 1
    })
    .await;
    tasks
}

fn granted_keys(ledger: &CreditLedger) -> Vec<String> {
    let mut keys: Vec<String> = ledger.grants.keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_queued_on_a_hot_stream_while_a_commit_runs_share_the_next_append() {
    let f = fixture().await;
    let probed = ProbedLog::new(f.log.clone());
    let exec = Executor::new(probed.clone(), f.codec.clone());
    let stream = format!("credits-{}", Uuid::new_v4());
    run_grant(&exec, &stream, "first").await;
    probed.appends.store(0, Ordering::SeqCst);

    // One command's append is held; the other 63 decide on top of it and wait together.
    let tasks = queue_behind_a_held_append(&probed, &exec, &stream, "k", 64).await;
    assert_eq!(probed.appends.load(Ordering::SeqCst), 1);
    probed.gate.add_permits(1);
    let mut positions = Vec::new();
    for task in tasks {
        positions.push(task.await.unwrap().expect("a position"));
    }

    assert_eq!(
        probed.appends.load(Ordering::SeqCst),
        2,
        "64 commands, two appends"
    );
    assert_eq!(exec.conflicts(), 0);
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), 64, "each command has its own event");
    // The log, read by another node, holds all 65 grants once each.
    let other = Executor::new(f.log.clone(), f.codec.clone());
    let ledger = other.load::<CreditLedger>(&stream).await.unwrap().state;
    assert_eq!(ledger.grants.len(), 65);
    assert_eq!(
        ledger,
        exec.load::<CreditLedger>(&stream).await.unwrap().state
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_refused_for_another_nodes_append_takes_the_batches_on_top_of_it_down_and_nothing_is_lost()
 {
    let f = fixture().await;
    let (probed, node, elsewhere, stream) = two_nodes(&f);
    run_grant(&node, &stream, "first").await;
    probed.appends.store(0, Ordering::SeqCst);

    let tasks = queue_behind_a_held_append(&probed, &node, &stream, "n", 9).await;
    // Another node appends meanwhile: the held batch's expected revision is stale, and
    // the queued batch was decided on top of it.
    run_grant(&elsewhere, &stream, "elsewhere").await;
    probed.gate.add_permits(1);
    for task in tasks {
        assert!(task.await.unwrap().is_some());
    }

    assert!(
        node.conflicts() >= 9,
        "every command of both batches decided again, got {}",
        node.conflicts()
    );
    let ledger = elsewhere.load::<CreditLedger>(&stream).await.unwrap().state;
    let mut expected: Vec<String> = (0..9).map(|i| format!("n{i}")).collect();
    expected.extend(["elsewhere".to_owned(), "first".to_owned()]);
    expected.sort();
    assert_eq!(granted_keys(&ledger), expected);
    assert_eq!(ledger.lots.len(), 11, "each grant once");
}

/// Appends `n` grants to `stream` in one command.
async fn grant_many(exec: &Executor, stream: &str, from: usize, n: usize) {
    exec.execute::<CreditLedger, _>(
        stream,
        &CommandContext::system("test"),
        None,
        SystemClock.now(),
        |ledger| {
            let mut ledger = ledger.clone();
            let mut events: Vec<CreditsEvent> = Vec::new();
            for i in from..from + n {
                for event in ledger.decide(&grant(&format!("g{i:05}")))? {
                    ledger.evolve(&event);
                    events.push(event);
                }
            }
            Ok(events)
        },
    )
    .await
    .expect("grants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_load_of_a_long_stream_reads_its_snapshot_and_the_tail_only() {
    let f = fixture().await;
    let snapshots = SnapshotStore::new(f.db.clone());
    let exec = Executor::new(f.log.clone(), f.codec.clone()).with_snapshots(snapshots.clone());
    let stream = format!("credits-{}", Uuid::new_v4());
    grant_many(&exec, &stream, 0, 600).await;
    assert!(
        snapshots
            .load(&stream, "CreditLedger", 1)
            .await
            .unwrap()
            .is_none(),
        "no snapshot before the 1000th event"
    );
    grant_many(&exec, &stream, 600, 600).await;
    let mut saved = None;
    for _ in 0..400 {
        saved = snapshots.load(&stream, "CreditLedger", 1).await.unwrap();
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let saved = saved.expect("a snapshot once the stream passed 1000 events");
    assert_eq!(saved.event_count, 1_200);
    grant_many(&exec, &stream, 1_200, 300).await;

    let full = Executor::new(f.log.clone(), f.codec.clone())
        .load::<CreditLedger>(&stream)
        .await
        .unwrap();
    assert_eq!(full.state.grants.len(), 1_500);

    let probed = ProbedLog::new(f.log.clone());
    let cold = Executor::new(probed.clone(), f.codec.clone()).with_snapshots(snapshots.clone());
    let loaded = cold.load::<CreditLedger>(&stream).await.unwrap();
    assert_eq!(loaded.state, full.state);
    assert_eq!(loaded.expected, ExpectedRevision::Exact(1_499));
    assert_eq!(
        probed.stream_events_read.load(Ordering::SeqCst),
        300,
        "only the events after the snapshot"
    );

    // A snapshot of another shape version is not used: the stream is folded in full.
    snapshots
        .save(
            &stream,
            &Snapshot {
                aggregate: "CreditLedger".into(),
                version: 99,
                event_count: 1_499,
                state: serde_json::json!({"not": "a ledger"}),
            },
        )
        .await
        .unwrap();
    let probed = ProbedLog::new(f.log.clone());
    let cold = Executor::new(probed.clone(), f.codec.clone()).with_snapshots(snapshots);
    let loaded = cold.load::<CreditLedger>(&stream).await.unwrap();
    assert_eq!(loaded.state, full.state);
    assert_eq!(probed.stream_events_read.load(Ordering::SeqCst), 1_500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_decision_made_while_the_last_batch_committed_joins_without_a_retry() {
    let f = fixture().await;
    let probed = ProbedLog::new(f.log.clone());
    let exec = Executor::new(probed.clone(), f.codec.clone());
    let stream = format!("credits-{}", Uuid::new_v4());
    run_grant(&exec, &stream, "first").await;
    probed.appends.store(0, Ordering::SeqCst);

    probed.hold_next.store(true, Ordering::SeqCst);
    let first = {
        let (exec, stream) = (exec.clone(), stream.clone());
        tokio::spawn(async move { run_grant(&exec, &stream, "held").await })
    };
    until("the first append is held", || {
        probed.appends.load(Ordering::SeqCst) == 1
    })
    .await;
    let command = grant("late");
    let mut first = Some(first);
    let executed = exec
        .execute::<CreditLedger, _>(
            &stream,
            &CommandContext::system("test"),
            None,
            SystemClock.now(),
            |ledger| {
                // Decided against the tip holding the held grant; that grant commits and the
                // stream goes idle before this decision joins.
                assert!(ledger.grants.contains_key("held"));
                if let Some(first) = first.take() {
                    probed.gate.add_permits(1);
                    tokio::task::block_in_place(|| {
                        tokio::runtime::Handle::current().block_on(first)
                    })
                    .unwrap()
                    .expect("the held grant committed");
                }
                Ok(ledger.decide(&command)?)
            },
        )
        .await
        .unwrap();
    assert!(executed.position.is_some());
    assert_eq!(exec.conflicts(), 0, "the decision was not stale");
    assert_eq!(probed.appends.load(Ordering::SeqCst), 2);
}

/// A token rotation of a token this process knows reads nothing of the token's stream
/// before its append (the append's expected revision checks the remembered state), only the
/// account's tail for the session's recent proof; the family check rides on the decision;
/// a refusal, which no append checks, reads the token stream's tail once.
#[tokio::test]
async fn a_token_rotation_reads_nothing_and_a_refusal_reads_the_tail_once() {
    use commands::access_tokens::{AccessTokens, TokenFamily};
    use domain::access_token::{AccessToken, AccessTokenCommand, Scope, TokenKind};
    use domain::account::{Account, AccountEvent};
    use domain::email::{DisplayName, EmailAddress};
    use domain::session::SessionOrigin;
    use domain::{AccountId, SessionId};
    let f = fixture().await;
    let probed = ProbedLog::new(f.log.clone());
    let exec = Executor::new(probed.clone(), f.codec.clone());
    let (account, token) = (AccountId(Uuid::new_v4()), Uuid::new_v4());
    let session = SessionId(Uuid::new_v4());
    let now = SystemClock.now();
    // Its personal fields (the address, the token's label) are sealed with its key.
    f.codec.keys().create(account.0, now).await.unwrap();
    let signed_in = vec![
        AccountEvent::AccountRegistered {
            account_id: account,
            email: EmailAddress::parse("rotator@example.com").unwrap(),
            display_name: DisplayName::parse("Rotator").unwrap(),
            password_hash: "hash".into(),
            registered_at: now,
        },
        AccountEvent::SessionStarted {
            session_id: session,
            token_hash: "b".repeat(64),
            started_at: now,
            expires_at: now.plus(Duration::from_secs(3_600)),
            origin: SessionOrigin::default(),
            second_factor: None,
        },
    ];
    let account_stream = domain::StreamCategory::Account.stream(account);
    exec.execute::<Account, _>(
        &account_stream,
        &CommandContext::system("test"),
        Some(account.0),
        now,
        |_| Ok(signed_in.clone()),
    )
    .await
    .unwrap();
    let create = AccessTokenCommand::Create {
        account_id: account,
        kind: TokenKind::Api,
        label: "ci".into(),
        scopes: vec![Scope::CreditsRead],
        token_hash: "a".repeat(64),
        hint: "hint".into(),
        expires_at: None,
        at: SystemClock.now(),
    };
    let stream = domain::StreamCategory::AccessToken.stream(token);
    exec.execute::<AccessToken, _>(
        &stream,
        &CommandContext::system("test"),
        Some(account.0),
        SystemClock.now(),
        |t| Ok(t.decide(&create)?),
    )
    .await
    .unwrap();
    let tokens = AccessTokens::new(exec, Arc::new(SystemClock));
    let ctx = CommandContext::system("test");
    let reads = || std::mem::take(&mut *probed.streams_read.lock().unwrap());

    reads();
    tokens
        .rotate(
            &ctx,
            account,
            session,
            token,
            TokenFamily::Api,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(reads(), std::slice::from_ref(&account_stream));

    let refused = tokens
        .rotate(
            &ctx,
            account,
            session,
            token,
            TokenFamily::Cli,
            Duration::ZERO,
        )
        .await
        .unwrap_err();
    assert_eq!(reads(), [account_stream, stream]);
    assert!(refused.to_string().contains("no such token"), "{refused}");
}

fn hold(generation: &str, amount: u64) -> CreditsCommand {
    let at = SystemClock.now();
    CreditsCommand::Hold {
        generation_id: generation.to_owned(),
        feature: domain::credits::Feature::Generation,
        amount,
        hold_expires_at: at.plus(Duration::from_secs(3_600)),
        max_open_holds: 100,
        api_token_id: None,
        at,
    }
}

/// A node decides on the state it remembers of a stream without reading the stream first;
/// when another node appended meanwhile, the append is refused, counted once, and the
/// command decides again on the log's state (read once): nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_on_a_remembered_state_another_node_moved_past_is_decided_again() {
    let f = fixture().await;
    let (probed, node, elsewhere, stream) = two_nodes(&f);
    run_grant(&node, &stream, "first").await;
    run_grant(&node, &stream, "second").await;
    let (reads, appends) = (
        probed.stream_reads.load(Ordering::SeqCst),
        probed.appends.load(Ordering::SeqCst),
    );
    assert_eq!((reads, appends), (1, 2), "the second grant read nothing");

    run_grant(&elsewhere, &stream, "elsewhere").await;
    run_grant(&node, &stream, "third").await;
    assert_eq!(node.conflicts(), 1);
    assert_eq!(probed.appends.load(Ordering::SeqCst), appends + 2);
    assert_eq!(probed.stream_reads.load(Ordering::SeqCst), reads + 1);
    let ledger = elsewhere.load::<CreditLedger>(&stream).await.unwrap().state;
    assert_eq!(
        granted_keys(&ledger),
        ["elsewhere", "first", "second", "third"]
    );
}

/// A refusal decided on a remembered state is not given until the log confirms it: here
/// the remembered balance is short, another node's grant covers the hold, and the hold
/// goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_on_a_remembered_state_is_checked_against_the_log() {
    let f = fixture().await;
    let (_, node, elsewhere, stream) = two_nodes(&f);
    run_grant(&node, &stream, "first").await;
    run_grant(&elsewhere, &stream, "elsewhere").await;

    let command = hold("g-1", 15);
    let executed = node
        .execute::<CreditLedger, _>(
            &stream,
            &CommandContext::system("test"),
            None,
            SystemClock.now(),
            |ledger| Ok(ledger.decide(&command)?),
        )
        .await
        .expect("the hold is covered by both grants");
    assert!(matches!(
        executed.events.as_slice(),
        [CreditsEvent::CreditsHeld { amount: 15, .. }]
    ));
    assert_eq!(
        node.conflicts(),
        0,
        "a refusal is checked by reading, not appending"
    );
}

/// A refusal decided on the tip of a batch still in flight stands only once that batch
/// commits. Here the batch is refused (another node moved the stream on) in the moment
/// between the decision and the wait for it: the command decides again on the log, and is
/// not refused on a balance that never existed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusal_on_a_batch_refused_meanwhile_is_decided_again() {
    let f = fixture().await;
    let (probed, node, elsewhere, stream) = two_nodes(&f);
    run_grant(&node, &stream, "first").await;
    probed.hold_next.store(true, Ordering::SeqCst);
    let ctx = CommandContext::system("test");
    let first_hold = {
        let (node, stream, ctx) = (node.clone(), stream.clone(), ctx.clone());
        tokio::spawn(async move {
            let command = hold("g-1", 10);
            node.execute::<CreditLedger, _>(&stream, &ctx, None, SystemClock.now(), |ledger| {
                Ok(ledger.decide(&command)?)
            })
            .await
        })
    };
    until("the first hold's append is held", || {
        probed.appends.load(Ordering::SeqCst) == 2
    })
    .await;
    // The log now holds 20 credits; this node's batch was decided on 10.
    run_grant(&elsewhere, &stream, "elsewhere").await;

    let command = hold("g-2", 10);
    let mut first_decision = true;
    let second = node
        .execute::<CreditLedger, _>(&stream, &ctx, None, SystemClock.now(), |ledger| {
            if std::mem::take(&mut first_decision) {
                // Decided on the tip (nothing left): the batch is let go, and is refused
                // and finished before this decision's answer waits on it.
                probed.gate.add_permits(1);
                tokio::task::block_in_place(|| {
                    while node.conflicts() == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
            }
            Ok(ledger.decide(&command)?)
        })
        .await;
    assert!(second.is_ok(), "{second:?}");
    first_hold
        .await
        .unwrap()
        .expect("the first hold, decided again");
    let ledger = elsewhere.load::<CreditLedger>(&stream).await.unwrap().state;
    assert_eq!(ledger.held(), 20, "both holds, once each");
    assert!(ledger.holds.contains_key("g-1") && ledger.holds.contains_key("g-2"));
}
