//! [`SharedReads`] against a fake log whose queries can be held in flight: who shares a
//! query, what each caller sees, and what happens when a query fails or is cancelled.

use super::SharedReads;
use super::tail::KEPT;
use crate::envelope::{Actor, Metadata};
use crate::{GlobalPosition, RecordedEvent, StoreError};
use domain::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// A log whose events are the positions `1..=head`, and which counts its queries. While
/// `held`, a query reads its snapshot at once, then waits for a permit to answer.
struct FakeLog {
    head: AtomicU64,
    queries: AtomicUsize,
    limits: std::sync::Mutex<Vec<usize>>,
    afters: std::sync::Mutex<Vec<u64>>,
    held: AtomicBool,
    permits: Semaphore,
    fail_next: AtomicBool,
}

impl FakeLog {
    fn with_head(head: u64) -> Arc<Self> {
        Arc::new(Self {
            head: AtomicU64::new(head),
            queries: AtomicUsize::new(0),
            limits: std::sync::Mutex::default(),
            afters: std::sync::Mutex::default(),
            held: AtomicBool::new(false),
            permits: Semaphore::new(0),
            fail_next: AtomicBool::new(false),
        })
    }

    async fn query(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        self.limits.lock().unwrap().push(limit);
        self.afters.lock().unwrap().push(after.0);
        let head = self.head.load(Ordering::SeqCst);
        if self.held.load(Ordering::SeqCst) {
            self.permits.acquire().await.unwrap().forget();
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
        }
        Ok((after.0 + 1..=head).take(limit).map(event_at).collect())
    }

    /// Waits until `queries` queries have started, failing the test after five seconds.
    async fn started(&self, queries: usize) {
        let started = async {
            while self.queries.load(Ordering::SeqCst) < queries {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), started)
            .await
            .is_err()
        {
            panic!(
                "{queries} queries never started, only {}",
                self.queries.load(Ordering::SeqCst)
            );
        }
    }
}

fn event_at(position: u64) -> RecordedEvent {
    RecordedEvent {
        position: GlobalPosition(position),
        // Two streams, alternating, for the filtered reads.
        stream: if position % 2 == 1 {
            "credits-1"
        } else {
            "account-1"
        }
        .into(),
        revision: position - 1,
        event_id: Uuid::from_u128(u128::from(position)),
        event_type: "CreditsHeld".into(),
        schema_version: 1,
        data: serde_json::json!({ "n": position }),
        metadata: Metadata {
            correlation_id: Uuid::from_u128(1),
            causation_id: None,
            actor: Actor::System {
                component: "test".into(),
            },
            occurred_at: Timestamp::from_unix_micros(1_800_000_000_000_000),
            idempotency_key: None,
            data_subject: None,
        },
        recorded_at: Timestamp::from_unix_micros(1_800_000_000_000_000),
    }
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.0).collect()
}

/// Reads after `after` through `reads`, on a task of its own.
fn spawn_read(
    reads: &Arc<SharedReads>,
    log: &Arc<FakeLog>,
    after: u64,
    limit: usize,
) -> tokio::task::JoinHandle<Result<Vec<RecordedEvent>, StoreError>> {
    let (reads, log) = (reads.clone(), log.clone());
    tokio::spawn(async move {
        reads
            .read(GlobalPosition(after), limit, |a, l| log.query(a, l))
            .await
    })
}

#[tokio::test]
async fn callers_arriving_during_a_query_share_the_next_one() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(3));
    log.held.store(true, Ordering::SeqCst);
    let first = spawn_read(&reads, &log, 0, 100);
    log.started(1).await;

    let gathered: Vec<_> = (0..17).map(|_| spawn_read(&reads, &log, 0, 100)).collect();
    // Let all seventeen join before the first query answers.
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.permits.add_permits(2);

    assert_eq!(positions(&first.await.unwrap().unwrap()), [1, 2, 3]);
    for read in gathered {
        assert_eq!(positions(&read.await.unwrap().unwrap()), [1, 2, 3]);
    }
    assert_eq!(
        log.queries.load(Ordering::SeqCst),
        2,
        "one query, then one for all who waited"
    );
    assert_eq!(
        reads.positions_read(),
        0,
        "nothing kept once everyone has read"
    );
}

/// Followers woken by the same append are all ready to run at once: the first lets the
/// others join its query before starting it, so they make one query, not two.
#[tokio::test]
async fn callers_woken_together_share_one_query() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(3));
    let woken: Vec<_> = (0..12).map(|_| spawn_read(&reads, &log, 0, 100)).collect();
    for read in woken {
        assert_eq!(positions(&read.await.unwrap().unwrap()), [1, 2, 3]);
    }
    assert_eq!(log.queries.load(Ordering::SeqCst), 1, "one query for all");
}

#[tokio::test]
async fn a_caller_is_never_answered_by_a_query_that_started_before_it_asked() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(1));
    log.held.store(true, Ordering::SeqCst);
    let early = spawn_read(&reads, &log, 0, 100);
    log.started(1).await;

    // An append commits after the first query took its snapshot, then wakes a follower.
    log.head.store(2, Ordering::SeqCst);
    let woken = spawn_read(&reads, &log, 0, 100);
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.permits.add_permits(2);

    assert_eq!(positions(&early.await.unwrap().unwrap()), [1]);
    assert_eq!(
        positions(&woken.await.unwrap().unwrap()),
        [1, 2],
        "the woken follower sees the append that woke it"
    );
}

#[tokio::test]
async fn each_caller_gets_its_own_limit_from_a_query_of_the_largest() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(10));
    log.held.store(true, Ordering::SeqCst);
    let first = spawn_read(&reads, &log, 0, 1);
    log.started(1).await;

    let small = spawn_read(&reads, &log, 0, 2);
    let large = spawn_read(&reads, &log, 0, 5);
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.permits.add_permits(2);

    assert_eq!(positions(&first.await.unwrap().unwrap()), [1]);
    assert_eq!(positions(&small.await.unwrap().unwrap()), [1, 2]);
    assert_eq!(positions(&large.await.unwrap().unwrap()), [1, 2, 3, 4, 5]);
    assert_eq!(*log.limits.lock().unwrap(), [1, 5]);
}

#[tokio::test]
async fn different_positions_do_not_wait_for_each_other() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(10));
    log.held.store(true, Ordering::SeqCst);
    let caught_up = spawn_read(&reads, &log, 8, 100);
    let behind = spawn_read(&reads, &log, 2, 3);
    // Both queries are in flight at once.
    log.started(2).await;
    log.permits.add_permits(2);

    assert_eq!(positions(&caught_up.await.unwrap().unwrap()), [9, 10]);
    assert_eq!(positions(&behind.await.unwrap().unwrap()), [3, 4, 5]);
    assert_eq!(reads.positions_read(), 0);
}

#[tokio::test]
async fn when_the_shared_query_fails_its_first_caller_gets_the_error_and_the_others_read_again() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(2));
    log.held.store(true, Ordering::SeqCst);
    let first = spawn_read(&reads, &log, 0, 100);
    log.started(1).await;
    let second = spawn_read(&reads, &log, 0, 100);
    let third = spawn_read(&reads, &log, 0, 100);
    tokio::time::sleep(Duration::from_millis(20)).await;
    log.permits.add_permits(1);
    assert_eq!(positions(&first.await.unwrap().unwrap()), [1, 2]);

    // The next query, shared by both waiting callers, fails: the caller that ran it gets
    // the error, the other runs a query of its own.
    log.started(2).await;
    log.fail_next.store(true, Ordering::SeqCst);
    log.permits.add_permits(1);
    log.started(3).await;
    log.permits.add_permits(1);
    let (second, third) = (second.await.unwrap(), third.await.unwrap());
    let failed = [&second, &third].iter().filter(|r| r.is_err()).count();
    assert_eq!(
        failed, 1,
        "only the caller whose query failed sees the error"
    );
    for read in [second, third].into_iter().flatten() {
        assert_eq!(positions(&read), [1, 2]);
    }
    assert_eq!(log.queries.load(Ordering::SeqCst), 3);
    assert_eq!(reads.positions_read(), 0);
}

#[tokio::test]
async fn a_cancelled_caller_leaves_the_others_a_query_and_no_leftovers() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(2));
    log.held.store(true, Ordering::SeqCst);
    let first = spawn_read(&reads, &log, 0, 100);
    log.started(1).await;
    let waiting = spawn_read(&reads, &log, 0, 100);
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The follower running the query shuts down mid-read.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    log.permits.add_permits(1);
    assert_eq!(positions(&waiting.await.unwrap().unwrap()), [1, 2]);
    assert_eq!(reads.positions_read(), 0);
}

/// Each caller of a shared page gets the events of the streams it keeps, and the page's
/// length and end whatever it kept: a follower reads past what it does not keep, and a
/// short page still tells it the log ended there.
#[tokio::test]
async fn filtered_callers_share_a_page_and_keep_their_own_streams() {
    let (reads, log) = (Arc::new(SharedReads::default()), FakeLog::with_head(5));
    log.held.store(true, Ordering::SeqCst);
    let first = spawn_read(&reads, &log, 0, 100);
    log.started(1).await;
    let filtered = |stream: &'static str, limit: usize| {
        let (reads, log) = (reads.clone(), log.clone());
        tokio::spawn(async move {
            let keep = move |s: &str| s == stream;
            reads
                .read_where(GlobalPosition(0), limit, |a, l| log.query(a, l), &keep)
                .await
        })
    };
    let credits = filtered("credits-1", 100);
    let accounts = filtered("account-1", 3);
    let nothing = filtered("billing-1", 100);
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.permits.add_permits(2);

    assert_eq!(positions(&first.await.unwrap().unwrap()), [1, 2, 3, 4, 5]);
    let credits = credits.await.unwrap().unwrap();
    assert_eq!(positions(&credits.events), [1, 3, 5]);
    assert_eq!((credits.read, credits.last), (5, Some(GlobalPosition(5))));
    let accounts = accounts.await.unwrap().unwrap();
    assert_eq!(
        positions(&accounts.events),
        [2],
        "cut to its limit of 3 first"
    );
    assert_eq!((accounts.read, accounts.last), (3, Some(GlobalPosition(3))));
    let nothing = nothing.await.unwrap().unwrap();
    assert!(nothing.events.is_empty());
    assert_eq!((nothing.read, nothing.last), (5, Some(GlobalPosition(5))));
    assert_eq!(
        log.queries.load(Ordering::SeqCst),
        2,
        "one query, then one for all three"
    );

    // Alone on its query, and past the end of the log.
    log.held.store(false, Ordering::SeqCst);
    let keep = |s: &str| s == "account-1";
    let alone = reads
        .read_where(GlobalPosition(1), 100, |a, l| log.query(a, l), &keep)
        .await
        .unwrap();
    assert_eq!(positions(&alone.events), [2, 4]);
    assert_eq!((alone.read, alone.last), (4, Some(GlobalPosition(5))));
    let past = reads
        .read_where(GlobalPosition(5), 100, |a, l| log.query(a, l), &keep)
        .await
        .unwrap();
    assert_eq!((past.read, past.last, past.events.len()), (0, None, 0));
}

/// Reads after `after` at once (no query held), as a follower does (from the tail where
/// it can), keeping every stream.
async fn read_now(
    reads: &SharedReads,
    log: &Arc<FakeLog>,
    after: u64,
    limit: usize,
) -> Vec<RecordedEvent> {
    reads
        .read_where(
            GlobalPosition(after),
            limit,
            |a, l| log.query(a, l),
            &|_| true,
        )
        .await
        .unwrap()
        .events
}

/// A follower a few events behind the others takes them from the tail the others' reads
/// left, and reads only after its end, where the others read: one query position for all.
#[tokio::test]
async fn a_follower_behind_reads_the_tail_from_memory_and_the_log_after_its_end() {
    let (reads, log) = (SharedReads::default(), FakeLog::with_head(5));
    assert_eq!(
        positions(&read_now(&reads, &log, 0, 100).await),
        [1, 2, 3, 4, 5]
    );

    log.head.store(7, Ordering::SeqCst);
    assert_eq!(
        positions(&read_now(&reads, &log, 2, 100).await),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(
        *log.afters.lock().unwrap(),
        [0, 5],
        "the log read after 5, not 2"
    );

    // A page the tail fills needs no query; a short one still ends with one, which sees
    // what was appended since.
    assert_eq!(positions(&read_now(&reads, &log, 4, 2).await), [5, 6]);
    assert_eq!(log.queries.load(Ordering::SeqCst), 2);
    log.head.store(8, Ordering::SeqCst);
    let keep = |s: &str| s == "account-1";
    let page = reads
        .read_where(GlobalPosition(3), 100, |a, l| log.query(a, l), &keep)
        .await
        .unwrap();
    assert_eq!(positions(&page.events), [4, 6, 8]);
    assert_eq!((page.read, page.last), (5, Some(GlobalPosition(8))));
    assert_eq!(*log.afters.lock().unwrap(), [0, 5, 7]);
    assert_eq!(reads.positions_read(), 0);
}

/// A full page read far behind (a rebuild, a follower catching up) does not move the tail;
/// a read before the tail's start queries its own position.
#[tokio::test]
async fn pages_read_far_behind_stay_out_of_the_tail() {
    let (reads, log) = (SharedReads::default(), FakeLog::with_head(10));
    assert_eq!(positions(&read_now(&reads, &log, 0, 3).await), [1, 2, 3]);
    assert_eq!(read_now(&reads, &log, 1, 100).await.len(), 9);
    assert_eq!(read_now(&reads, &log, 0, 2).await.len(), 2);
    assert_eq!(*log.afters.lock().unwrap(), [0, 1, 0]);
    // The short page after 1 is the tail now.
    assert_eq!(positions(&read_now(&reads, &log, 5, 2).await), [6, 7]);
    assert_eq!(log.queries.load(Ordering::SeqCst), 3);
}

/// The tail keeps its latest [`KEPT`] events, whole pages at a time: a follower behind
/// them reads the log at its own position.
#[tokio::test]
async fn the_tail_keeps_only_the_latest_events() {
    let (reads, log) = (SharedReads::default(), FakeLog::with_head(0));
    let page = 100;
    for n in 0..20 {
        log.head.store((n + 1) * page, Ordering::SeqCst);
        read_now(&reads, &log, n * page, 1000).await;
    }
    let queries = log.queries.load(Ordering::SeqCst);
    let kept = (KEPT as u64 / page) * page;
    let start = 20 * page - kept;
    assert_eq!(
        positions(&read_now(&reads, &log, start, 3).await),
        [start + 1, start + 2, start + 3]
    );
    assert_eq!(log.queries.load(Ordering::SeqCst), queries, "from memory");
    read_now(&reads, &log, start - 1, 3).await;
    assert_eq!(log.afters.lock().unwrap().last(), Some(&(start - 1)));
}

/// A read of the log as stored (`EventLog::read_all`, what the chain's verification reads)
/// queries its own position, whatever the tail holds; its page still feeds the tail.
#[tokio::test]
async fn a_read_of_the_stored_log_never_comes_from_the_tail() {
    let (reads, log) = (SharedReads::default(), FakeLog::with_head(5));
    assert_eq!(read_now(&reads, &log, 0, 100).await.len(), 5);
    let stored = reads
        .read(GlobalPosition(2), 2, |a, l| log.query(a, l))
        .await
        .unwrap();
    assert_eq!(positions(&stored), [3, 4]);
    assert_eq!(*log.afters.lock().unwrap(), [0, 2]);

    log.head.store(6, Ordering::SeqCst);
    let stored = reads
        .read(GlobalPosition(5), 100, |a, l| log.query(a, l))
        .await
        .unwrap();
    assert_eq!(positions(&stored), [6]);
    assert_eq!(
        positions(&read_now(&reads, &log, 4, 2).await),
        [5, 6],
        "from the tail the stored read extended"
    );
    assert_eq!(log.queries.load(Ordering::SeqCst), 3);
}
