//! The hash chain against SQLite and PostgreSQL: two chainers link every event once, in
//! batches, exactly as the pure fold does; verification pages through a log longer than a
//! page, counts what is not chained yet, and names each kind of broken link.

use projections::chain::{self, Anchor, BrokenReason, ChainHash, Chainer};
use serde_json::json;
use std::sync::Arc;
use store::testkit::{ProbedLog, TestPostgres, TestSqlite};
use store::{
    Actor, Backend, Database, EventLog, ExpectedRevision, GlobalPosition, Metadata, NewEvent,
};
use uuid::Uuid;

struct Fixture {
    db: Database,
    log: Arc<dyn EventLog>,
    _guards: (Option<TestSqlite>, Option<TestPostgres>),
}

async fn fixture(backend: Backend) -> Fixture {
    let (url, guards) = match backend {
        Backend::Sqlite => {
            let sqlite = TestSqlite::create();
            (sqlite.url.clone(), (Some(sqlite), None))
        }
        Backend::Postgres => {
            let postgres = TestPostgres::create().await;
            (postgres.url.clone(), (None, Some(postgres)))
        }
    };
    let db = Database::connect(&url, 8).await.unwrap();
    db.migrate().await.unwrap();
    let log = db.event_log().await.unwrap();
    Fixture {
        db,
        log,
        _guards: guards,
    }
}

fn new_event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "Tested".into(),
        schema_version: 1,
        data: json!({"n": n, "sealed": "v1:abcdef", "nested": {"b": [1, 2], "a": null}}),
        metadata: Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: "chain-test".into(),
            },
            occurred_at: domain::Timestamp::from_unix_micros(1_700_000_000_000_000),
            idempotency_key: None,
            data_subject: None,
        },
    }
}

impl Fixture {
    /// Appends `count` events over three streams, some appends carrying many events.
    async fn append(&self, count: usize) {
        let mut n = 0;
        while n < count {
            let size = (count - n).min(if n % 2 == 0 { 1 } else { 300 });
            let stream = format!("test-{}", n % 3);
            let events = (n..n + size).map(new_event).collect();
            self.log
                .append(&stream, ExpectedRevision::Any, events)
                .await
                .unwrap();
            n += size;
        }
    }

    /// Waits until readers of the whole log see every committed event (on PostgreSQL a
    /// transaction of another test, open on the same server, holds them back a moment).
    async fn settled(&self) {
        for _ in 0..200 {
            if self.log.head().await.unwrap() == self.log.committed_head().await.unwrap() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("committed events stayed out of sight");
    }

    async fn positions(&self) -> Vec<i64> {
        sqlx::query_scalar("SELECT global_position FROM events ORDER BY global_position")
            .fetch_all(self.db.pool())
            .await
            .unwrap()
    }

    async fn links(&self) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT global_position, hash FROM event_chain ORDER BY global_position")
            .fetch_all(self.db.pool())
            .await
            .unwrap()
    }

    async fn execute(&self, sql: &str, position: i64) {
        sqlx::query(sql)
            .bind(position)
            .execute(self.db.pool())
            .await
            .unwrap();
    }
}

async fn two_chainers_link_every_event_once_as_the_fold_does(backend: Backend) {
    let f = fixture(backend).await;
    f.append(1_200).await;
    f.settled().await;
    let one = Chainer::new(f.db.clone(), f.log.clone());
    let two = Chainer::new(f.db.clone(), f.log.clone());
    let (a, b) = tokio::join!(one.catch_up(), two.catch_up());
    a.unwrap();
    b.unwrap();

    let events = f.log.read_all(GlobalPosition::START, 10_000).await.unwrap();
    assert_eq!(events.len(), 1_200);
    let expected: Vec<(i64, String)> = chain::fold(ChainHash::GENESIS, &events)
        .into_iter()
        .map(|(p, h)| (p.0 as i64, h.to_hex()))
        .collect();
    assert_eq!(f.links().await, expected);
    let head = chain::head(&f.db).await.unwrap();
    assert_eq!(head.position, expected.last().unwrap().0 as u64);
    assert_eq!(
        head.hash.as_deref(),
        Some(expected.last().unwrap().1.as_str())
    );

    let report = chain::verify(&f.db, f.log.as_ref(), None).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events_checked, 1_200);
    assert_eq!(report.unchained, Some(0));

    // Appended since: counted, not failed, until chained.
    f.append(7).await;
    f.settled().await;
    let report = chain::verify(&f.db, f.log.as_ref(), None).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!((report.events_checked, report.unchained), (1_200, Some(7)));
    one.catch_up().await.unwrap();
    let report = chain::verify(&f.db, f.log.as_ref(), None).await.unwrap();
    assert_eq!((report.events_checked, report.unchained), (1_207, Some(0)));

    // Each chainer remembers the head it committed last; `two`'s is stale now (`one`
    // linked the 7), and then `one`'s: each loses one batch, reads the stored head, and
    // links on from it.
    for (chainer, appended, checked) in [(&two, 5, 1_212), (&one, 3, 1_215)] {
        f.append(appended).await;
        f.settled().await;
        chainer.catch_up().await.unwrap();
        let report = chain::verify(&f.db, f.log.as_ref(), None).await.unwrap();
        assert!(report.ok, "{report:?}");
        assert_eq!(
            (report.events_checked, report.unchained),
            (checked, Some(0))
        );
    }

    // A published head: the right one matches, a later rewrite would not.
    let anchor: Anchor = format!("{}:{}", head.position, head.hash.unwrap())
        .parse()
        .unwrap();
    let report = chain::verify(&f.db, f.log.as_ref(), Some(anchor))
        .await
        .unwrap();
    assert!(report.ok && report.anchor.unwrap().matches);
    let forged = Anchor {
        hash: ChainHash([7; 32]),
        ..anchor
    };
    let report = chain::verify(&f.db, f.log.as_ref(), Some(forged))
        .await
        .unwrap();
    assert!(!report.ok && report.first_broken.is_none());
}

async fn each_kind_of_broken_link_is_named(backend: Backend) {
    let f = fixture(backend).await;
    f.append(40).await;
    f.settled().await;
    let chainer = Chainer::new(f.db.clone(), f.log.clone());
    chainer.catch_up().await.unwrap();
    let positions = f.positions().await;
    let links = f.links().await;

    // A link rewritten (not its event): a mismatch at that position.
    let tenth = positions[10];
    sqlx::query("UPDATE event_chain SET hash = $1 WHERE global_position = $2")
        .bind("0".repeat(64))
        .bind(tenth)
        .execute(f.db.pool())
        .await
        .unwrap();
    let report = chain::verify(&f.db, f.log.as_ref(), None).await.unwrap();
    let broken = report.first_broken.unwrap();
    assert_eq!(
        (broken.position, broken.reason),
        (tenth as u64, BrokenReason::HashMismatch)
    );
    assert_eq!(report.events_checked, 10);
    assert_eq!(report.unchained, None);
    sqlx::query("UPDATE event_chain SET hash = $1 WHERE global_position = $2")
        .bind(&links[10].1)
        .bind(tenth)
        .execute(f.db.pool())
        .await
        .unwrap();
    assert!(chain::verify(&f.db, f.log.as_ref(), None).await.unwrap().ok);

    // A link deleted (as for an event inserted after chaining): a missing link, named by
    // its event.
    let twentieth = positions[20];
    f.execute(
        "DELETE FROM event_chain WHERE global_position = $1",
        twentieth,
    )
    .await;
    let broken = chain::verify(&f.db, f.log.as_ref(), None)
        .await
        .unwrap()
        .first_broken
        .unwrap();
    assert_eq!(
        (broken.position, broken.reason),
        (twentieth as u64, BrokenReason::MissingLink)
    );
    assert!(broken.stream.unwrap().starts_with("test-"));
    sqlx::query("INSERT INTO event_chain (global_position, hash) VALUES ($1, $2)")
        .bind(twentieth)
        .bind(&links[20].1)
        .execute(f.db.pool())
        .await
        .unwrap();
    assert!(chain::verify(&f.db, f.log.as_ref(), None).await.unwrap().ok);

    // An event deleted: its link names a position the log no longer holds.
    let thirtieth = positions[30];
    f.execute("DELETE FROM events WHERE global_position = $1", thirtieth)
        .await;
    let broken = chain::verify(&f.db, f.log.as_ref(), None)
        .await
        .unwrap()
        .first_broken
        .unwrap();
    assert_eq!(
        (broken.position, broken.reason, broken.stream),
        (thirtieth as u64, BrokenReason::MissingEvent, None)
    );

    // The head's own event and link both gone: still reported, and a chainer started
    // since (another node, a restart) stops rather than continue a chain it cannot vouch
    // for. (One running all along links on from the head it committed itself; verify
    // reports the gap either way.)
    let f = fixture(backend).await;
    f.append(5).await;
    f.settled().await;
    let chainer = Chainer::new(f.db.clone(), f.log.clone());
    chainer.catch_up().await.unwrap();
    let last = *f.positions().await.last().unwrap();
    f.execute("DELETE FROM events WHERE global_position = $1", last)
        .await;
    f.execute("DELETE FROM event_chain WHERE global_position = $1", last)
        .await;
    let report = chain::verify(&f.db, f.log.as_ref(), None).await.unwrap();
    let broken = report.first_broken.unwrap();
    assert_eq!(
        (broken.position, broken.reason),
        (last as u64, BrokenReason::MissingLink)
    );
    assert_eq!(report.head.hash, None);
    f.append(1).await;
    let chainer = Chainer::new(f.db.clone(), f.log.clone());
    assert!(matches!(
        chainer.step().await,
        Err(chain::ChainError::HeadMissing(_))
    ));
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(store::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(store::Backend::Postgres).await;
            })*
        }
    };
}

/// A running chainer that has caught up reads the log once per append: a page shorter
/// than it asked for ends where the log ended for that read, so it waits for the next
/// append instead of reading again to find nothing.
async fn a_running_chainer_reads_the_log_once_per_append(backend: Backend) {
    let f = fixture(backend).await;
    let log = ProbedLog::new(f.log.clone());
    let chainer = Arc::new(Chainer::new(f.db.clone(), log.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(chainer.run(stopped));
    let appends = 10;
    for n in 0..appends {
        let appended = f
            .log
            .append("test-0", ExpectedRevision::Any, vec![new_event(n)])
            .await
            .unwrap();
        let linked = appended.last_position().0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while chain::head(&f.db).await.unwrap().position < linked {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{linked} never linked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        // Room for a read after the page before the next append, were there one.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let reads = log.log_reads.load(std::sync::atomic::Ordering::SeqCst);
    stop.send(true).unwrap();
    running.await.unwrap();
    // One read at start and one per append; reading again after every page would make it
    // 21.
    assert!(
        reads <= appends as u64 + 4,
        "{reads} reads of the log for {appends} appends"
    );
}

on_both_backends!(
    two_chainers_link_every_event_once_as_the_fold_does,
    each_kind_of_broken_link_is_named,
);

/// Read counts are exact on SQLite only: on PostgreSQL, transactions of other tests on the
/// same server hide events now and then, and each wake-up that follows is one more read
/// (the wake-up itself is tested in `store/tests/contract.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_chainer_reads_the_log_once_per_append_on_sqlite() {
    a_running_chainer_reads_the_log_once_per_append(Backend::Sqlite).await;
}
