//! Following the log: read models from real commands, a rebuild ending with the same rows,
//! atomic batches and checkpoints, one application per event even with two runners,
//! read-your-writes waits, and a new projector version rebuilt at start.

pub use super::batch_cases::*;
pub use super::reads::*;
use super::*;

pub async fn read_models_follow_the_commands(f: Fixture) {
    let last = f.history().await;
    let runner = f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone())));
    runner.prepare().await.unwrap();
    caught_up(&f, &runner, Follower::Accounts).await;
    caught_up(&f, &runner, Follower::Sessions).await;
    assert!(runner.checkpoint(Follower::Sessions).await.unwrap() >= last);
    let accounts = dump(&f.db, "accounts", "account_id").await;
    assert_eq!(accounts.len(), 3);
    let sessions = dump(&f.db, "sessions", "session_id").await;
    assert_eq!(
        sessions.len(),
        3,
        "one of each account's two sessions was revoked"
    );
    assert!(
        sessions.iter().all(|row| !row
            .iter()
            .any(|c| c.as_deref().is_some_and(|c| c.contains("Firefox")))),
        "the origin is sealed"
    );
    let view = opened(&f).await;
    assert!(
        view.iter()
            .all(|(_, sessions)| sessions.len() == 1 && sessions[0].origin.device == "Firefox"),
        "and opens: {view:?}"
    );
    // Read together (a mailer's batch), the accounts are those read one at a time; an
    // unknown id is absent.
    let sealer = FieldSealer::new(f.codec.keys().clone());
    let mut ids: Vec<AccountId> = view.iter().map(|(account, _)| account.account_id).collect();
    ids.push(AccountId(uuid::Uuid::new_v4()));
    let together = projections::accounts::find_many(&f.db, &sealer, &ids)
        .await
        .unwrap();
    assert_eq!(together.len(), 3);
    for (account, _) in &view {
        assert_eq!(together.get(&account.account_id), Some(account));
    }
}

pub async fn a_rebuild_ends_with_the_same_rows(f: Fixture) {
    f.history().await;
    let runner = f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone())));
    runner.prepare().await.unwrap();
    for name in runner.names() {
        caught_up(&f, &runner, name).await;
    }
    let before = opened(&f).await;
    let checkpoint = runner.checkpoint(Follower::Sessions).await.unwrap();

    // Damage the live tables: the rebuild must not depend on them.
    sqlx::query("DELETE FROM sessions")
        .execute(f.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET display_name = 'tampered'")
        .execute(f.db.pool())
        .await
        .unwrap();

    for name in runner.names() {
        let report = runner.rebuild(name).await.unwrap();
        assert_eq!(report.position, checkpoint);
    }
    assert_eq!(before, opened(&f).await);
    // The rebuilt tables keep working: new events land in them.
    f.history().await;
    caught_up(&f, &runner, Follower::Sessions).await;
    assert_eq!(dump(&f.db, "sessions", "session_id").await.len(), 6);
    // And a second rebuild finds no leftover names in its way.
    runner.rebuild(Follower::Sessions).await.unwrap();
    assert_eq!(dump(&f.db, "sessions", "session_id").await.len(), 6);
}

pub async fn a_failed_batch_changes_nothing_and_is_applied_once_later(f: Fixture) {
    f.history().await;
    // The failing batch must be read, not hidden for a moment behind another test's
    // transaction (which would make the catch-up find nothing and succeed).
    settled(&f).await;
    let fail = Arc::new(AtomicBool::new(true));
    let runner = f.runner(vec![Arc::new(Counting::all(fail.clone()))]);
    runner.prepare().await.unwrap();
    assert!(runner.catch_up(COUNTING).await.is_err());
    assert_eq!(
        runner.checkpoint(COUNTING).await.unwrap(),
        GlobalPosition::START
    );
    assert!(
        dump(&f.db, "applied", "event_id").await.is_empty(),
        "the batch was rolled back"
    );

    fail.store(false, Ordering::SeqCst);
    caught_up(&f, &runner, COUNTING).await;
    each_event_applied_once(&f).await;
}

/// Every event of the log has exactly one row in the counting projector's table.
async fn each_event_applied_once(f: &Fixture) {
    let rows = dump(&f.db, "applied", "event_id").await;
    let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
    assert_eq!(rows.len(), events.len());
    assert!(
        rows.iter().all(|row| row[1].as_deref() == Some("1")),
        "each event applied once"
    );
}

pub async fn two_runners_never_apply_an_event_twice(f: Fixture) {
    f.history().await;
    let fail = Arc::new(AtomicBool::new(false));
    let a = Arc::new(f.runner(vec![Arc::new(Counting::all(fail.clone()))]));
    let b = Arc::new(f.runner(vec![Arc::new(Counting::all(fail))]));
    a.prepare().await.unwrap();
    b.prepare().await.unwrap();
    let (ra, rb) = tokio::join!(a.catch_up(COUNTING), b.catch_up(COUNTING));
    ra.unwrap();
    rb.unwrap();
    caught_up(&f, &a, COUNTING).await;
    each_event_applied_once(&f).await;
}

/// A follower is handed only the events of its streams; it reads past the others
/// without writing, and a catch-up stores its checkpoint once it runs out of events.
pub async fn a_follower_sees_only_its_streams_and_stores_its_checkpoint_when_idle(f: Fixture) {
    let counted = |events: &[store::RecordedEvent]| {
        events
            .iter()
            .filter(|e| StreamCategory::of_stream(&e.stream) == Some(StreamCategory::Email))
            .count()
    };
    let last = f.history().await;
    let runner = f.runner(vec![Arc::new(Counting {
        fail: Arc::new(AtomicBool::new(false)),
        categories: &[StreamCategory::Email],
        independent: false,
        registrations_only: false,
    })]);
    runner.prepare().await.unwrap();
    caught_up(&f, &runner, COUNTING).await;
    assert!(runner.checkpoint(COUNTING).await.unwrap() >= last);
    f.history().await;
    caught_up(&f, &runner, COUNTING).await;

    let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
    let ours = counted(&events);
    assert!(
        ours > 0 && ours < events.len(),
        "{ours} of {}",
        events.len()
    );
    let rows = dump(&f.db, "applied", "event_id").await;
    assert_eq!(rows.len(), ours, "only the e-mail streams' events");
    assert!(rows.iter().all(|row| row[1].as_deref() == Some("1")));
    assert_eq!(
        runner.checkpoint(COUNTING).await.unwrap(),
        events.last().unwrap().position,
        "stored at the last event read, though it concerns another stream"
    );
}

/// Events of its streams that a follower says change none of its rows are read past as
/// other streams' events are: it is not handed them, and its checkpoint still ends at the
/// last event read.
pub async fn a_follower_is_handed_only_the_events_that_concern_it(f: Fixture) {
    let runner = f.runner(vec![Arc::new(Counting {
        fail: Arc::new(AtomicBool::new(false)),
        categories: &[StreamCategory::Account],
        independent: false,
        registrations_only: true,
    })]);
    runner.prepare().await.unwrap();
    f.history().await;
    caught_up(&f, &runner, COUNTING).await;

    let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
    let of_accounts = events
        .iter()
        .filter(|e| StreamCategory::of_stream(&e.stream) == Some(StreamCategory::Account));
    let registrations: Vec<String> = of_accounts
        .clone()
        .filter(|e| e.event_type == "AccountRegistered")
        .map(|e| e.event_id.to_string())
        .collect();
    assert!(
        !registrations.is_empty() && registrations.len() < of_accounts.count(),
        "the history holds other account events (its sign-ins)"
    );
    let applied: Vec<String> = dump(&f.db, "applied", "event_id")
        .await
        .into_iter()
        .filter_map(|row| row[0].clone())
        .collect();
    let mut expected = registrations;
    expected.sort();
    let mut applied = applied;
    applied.sort();
    assert_eq!(applied, expected, "only the registrations were applied");
    assert_eq!(
        runner.checkpoint(COUNTING).await.unwrap(),
        events.last().unwrap().position
    );
}

/// A running follower that read past events of other streams stores how far it read
/// once idle, without another append to wake it (its loop wakes for the store).
pub async fn a_running_follower_stores_what_it_read_past_once_idle(f: Fixture) {
    let runner = Arc::new(f.runner(vec![Arc::new(Counting {
        fail: Arc::new(AtomicBool::new(false)),
        categories: &[StreamCategory::Email],
        independent: false,
        registrations_only: false,
    })]));
    runner.prepare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = runner.spawn(stopped);
    let last = f.history().await;
    // On PostgreSQL a read stops short of events whose transactions may still be open to
    // it (the running follower's own): read until the history's end is in sight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
        if events.last().is_some_and(|e| e.position >= last) {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history never read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_ne!(
        StreamCategory::of_stream(&events.last().unwrap().stream),
        Some(StreamCategory::Email),
        "the history ends with events the follower reads past"
    );
    // Nothing is appended from here on.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while runner.checkpoint(COUNTING).await.unwrap() < last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the idle follower never stored how far it read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(runner.checkpoint(COUNTING).await.unwrap(), last);
    stop_all(&stop, tasks).await;
}

pub async fn waits_until_a_running_projection_has_applied_a_position(f: Fixture) {
    let runner = Arc::new(f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone()))));
    runner.prepare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = runner.spawn(stopped);
    let last = f.history().await;
    runner
        .wait_for(
            &[Follower::Sessions, Follower::Accounts],
            last,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert!(runner.checkpoint(Follower::Sessions).await.unwrap() >= last);
    let lagging = runner
        .wait_for(
            &[Follower::Sessions],
            GlobalPosition(u64::MAX / 2),
            Duration::from_millis(300),
        )
        .await;
    assert!(matches!(lagging, Err(ProjectionError::Lagging { .. })));
    stop_all(&stop, tasks).await;
}

pub async fn a_new_projector_version_rebuilds_at_start(f: Fixture) {
    f.history().await;
    let runner = f.runner(projections::all(&FieldSealer::new(f.codec.keys().clone())));
    runner.prepare().await.unwrap();
    caught_up(&f, &runner, Follower::Accounts).await;
    sqlx::query("UPDATE projection_checkpoints SET version = 0 WHERE name = 'accounts'")
        .execute(f.db.pool())
        .await
        .unwrap();
    sqlx::query("DELETE FROM accounts")
        .execute(f.db.pool())
        .await
        .unwrap();
    runner.prepare().await.unwrap();
    assert_eq!(dump(&f.db, "accounts", "account_id").await.len(), 3);
}
