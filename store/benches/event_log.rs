//! Event-log benchmark on PostgreSQL and SQLite (not a test: it prints figures, it asserts
//! nothing).
//!
//! `cargo bench -p store --bench event_log` creates a throw-away database on the test
//! server (`TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! a throw-away SQLite folder, and measures on each, with the same 16-connection pool:
//! - the baseline: plain single-row INSERTs of the same payload into a bare table (on
//!   SQLite through the write gate, `Database::begin_write`, as every writer of the service
//!   writes, in a file of its own);
//! - appends by 16 writers to 16 distinct streams (against the baseline);
//! - appends by 16 writers to one stream, retrying on conflicts, and with
//!   `ExpectedRevision::Any` (against the distinct-stream rate);
//! - reading the whole log in batches (the best of three passes).
//!
//! `BENCH_SECONDS` sets the length of each timed phase (default 5).

use domain::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use store::testkit::TestPostgres;
use store::{
    Actor, Database, EventLog, ExpectedRevision, GlobalPosition, Metadata, NewEvent, StoreError,
};
use uuid::Uuid;

/// The allocator of the `accounts` binary (`api/src/lib.rs`), whose log this is.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITERS: usize = 16;

fn payload() -> serde_json::Value {
    serde_json::json!({
        "session_id": Uuid::new_v4(),
        "token_hash": "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
        "started_at": "2026-11-22T10:00:00Z",
        "$personal": "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ",
    })
}

fn event() -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "SessionStarted".into(),
        schema_version: 1,
        data: payload(),
        metadata: Metadata {
            correlation_id: Uuid::new_v4(),
            causation_id: Some(Uuid::new_v4()),
            actor: Actor::Anonymous,
            occurred_at: Timestamp::from_unix_micros(1_800_000_000_000_000),
            idempotency_key: None,
            data_subject: Some(Uuid::new_v4()),
        },
    }
}

/// Runs `WRITERS` copies of `work` for `seconds`; returns operations per second.
async fn timed<F, Fut>(seconds: Duration, work: F) -> f64
where
    F: Fn(usize, Arc<AtomicU64>, Instant) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + seconds;
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| tokio::spawn(work(i, done.clone(), deadline)))
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn line(label: &str, rate: f64, note: &str) {
    let mut out = std::io::stdout().lock();
    let _ = std::io::Write::write_fmt(
        &mut out,
        format_args!("{label:<52} {rate:>12.0}/s  {note}\n"),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    postgres(seconds).await?;
    sqlite(seconds).await?;
    Ok(())
}

async fn postgres(seconds: Duration) -> anyhow::Result<()> {
    let server = TestPostgres::create().await;
    let db = Database::connect(&server.url, WRITERS as u32).await?;
    db.migrate().await?;
    let log = db.event_log().await?;
    let pg = db.pg_pool().expect("PostgreSQL").clone();
    sqlx::query("CREATE TABLE bench_baseline (id BIGSERIAL PRIMARY KEY, data JSONB NOT NULL)")
        .execute(&pg)
        .await?;
    header(&format!(
        "event log on PostgreSQL, {WRITERS} connections, {} s per phase",
        seconds.as_secs()
    ));

    // Warm the pool up so that connecting is not measured.
    let _ = timed(Duration::from_millis(500), |_, _, deadline| {
        let pg = pg.clone();
        async move {
            while Instant::now() < deadline {
                let _ = sqlx::query("SELECT 1").execute(&pg).await;
            }
        }
    })
    .await;

    let baseline = timed(seconds, |_, done, deadline| {
        let pg = pg.clone();
        async move {
            while Instant::now() < deadline {
                // The same bytes an append stores: the payload and the envelope metadata.
                let event = event();
                let row = serde_json::json!({"data": event.data, "metadata": event.metadata});
                sqlx::query("INSERT INTO bench_baseline (data) VALUES ($1)")
                    .bind(row)
                    .execute(&pg)
                    .await
                    .expect("baseline insert");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    line(
        "baseline: single-row INSERTs into a bare table",
        baseline,
        "(1.00x)",
    );
    appends(&log, seconds, baseline).await;
    read_figure(log.as_ref()).await?;
    drop(log);
    db.close().await;
    Ok(())
}

async fn sqlite(seconds: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::connect(
        &Database::sqlite_url(&dir.path().join("log.db")),
        WRITERS as u32,
    )
    .await?;
    db.migrate().await?;
    let log = db.event_log().await?;
    // The baseline writes to a file of its own, so that the log's file is as fresh as on
    // PostgreSQL.
    let bare = Database::connect(
        &Database::sqlite_url(&dir.path().join("baseline.db")),
        WRITERS as u32,
    )
    .await?;
    sqlx::query(
        "CREATE TABLE bench_baseline (id INTEGER PRIMARY KEY AUTOINCREMENT, data TEXT NOT NULL)",
    )
    .execute(bare.pool())
    .await?;
    header(&format!(
        "event log on SQLite (WAL, synchronous = FULL), {WRITERS} connections, {} s per phase",
        seconds.as_secs()
    ));

    let baseline = timed(seconds, |_, done, deadline| {
        let bare = bare.clone();
        async move {
            while Instant::now() < deadline {
                let event = event();
                let row = serde_json::json!({"data": event.data, "metadata": event.metadata});
                // One transaction per row, through the write gate, as the service writes.
                let mut w = bare.begin_write().await.expect("begin");
                sqlx::query("INSERT INTO bench_baseline (data) VALUES ($1)")
                    .bind(row.to_string())
                    .execute(&mut **w)
                    .await
                    .expect("baseline insert");
                w.commit().await.expect("commit");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    line(
        "baseline: single-row INSERTs into a bare table",
        baseline,
        "(1.00x)",
    );
    appends(&log, seconds, baseline).await;
    read_figure(log.as_ref()).await?;
    drop(log);
    db.close().await;
    bare.close().await;
    Ok(())
}

fn header(text: &str) {
    let _ = std::io::Write::write_fmt(&mut std::io::stdout().lock(), format_args!("{text}\n"));
}

/// The append figures of one log, each beside `baseline`.
async fn appends(log: &Arc<dyn EventLog>, seconds: Duration, baseline: f64) {
    let distinct = timed(seconds, |i, done, deadline| {
        let log = log.clone();
        async move {
            let stream = format!("bench-{i}-{}", Uuid::new_v4().simple());
            let mut expected = ExpectedRevision::NoStream;
            while Instant::now() < deadline {
                let appended = log
                    .append(&stream, expected, vec![event()])
                    .await
                    .expect("append");
                expected = appended.next_expected;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    line(
        "appends, 16 writers, distinct streams",
        distinct,
        &format!("({:.2}x baseline; target >= 1.50x)", distinct / baseline),
    );

    let conflicts = Arc::new(AtomicU64::new(0));
    let shared = format!("bench-shared-{}", Uuid::new_v4().simple());
    let contended = timed(seconds, |_, done, deadline| {
        let (log, stream, conflicts) = (log.clone(), shared.clone(), conflicts.clone());
        async move {
            let mut expected = ExpectedRevision::Any;
            while Instant::now() < deadline {
                // A command handler would reload and decide again; the conflict tells
                // the actual revision, which is what a reload would find.
                match log.append(&stream, expected, vec![event()]).await {
                    Ok(appended) => {
                        expected = appended.next_expected;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(StoreError::WrongExpectedRevision { actual, .. }) => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                        expected =
                            actual.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
                    }
                    Err(other) => panic!("append failed: {other}"),
                }
            }
        }
    })
    .await;
    line(
        "appends, 16 writers, one stream (retrying conflicts)",
        contended,
        &format!(
            "({:.2}x distinct, {:.2}x baseline; {} conflicts retried)",
            contended / distinct,
            contended / baseline,
            conflicts.load(Ordering::Relaxed)
        ),
    );

    let shared = format!("bench-any-{}", Uuid::new_v4().simple());
    let any = timed(seconds, |_, done, deadline| {
        let (log, stream) = (log.clone(), shared.clone());
        async move {
            while Instant::now() < deadline {
                log.append(&stream, ExpectedRevision::Any, vec![event()])
                    .await
                    .expect("append");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
    .await;
    line(
        "appends, 16 writers, one stream (ExpectedRevision::Any)",
        any,
        &format!(
            "({:.2}x distinct, {:.2}x baseline; target >= 0.50x distinct)",
            any / distinct,
            any / baseline
        ),
    );
}

/// Reads the whole log once to warm the caches, then three timed times, and prints the
/// best: a read of a few thousand events lasts tens of milliseconds, which a busy 2-core
/// machine can stretch several times over.
async fn read_figure(log: &dyn EventLog) -> Result<(), StoreError> {
    // On PostgreSQL a write transaction open anywhere on the server (another database's
    // too) hides later commits from readers for a while: wait until every append is
    // visible, so that each pass reads the same events.
    let committed = log.committed_head().await?;
    while log.head().await? < committed {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total = read_everything(log, GlobalPosition::START).await?;
    let mut best = 0.0_f64;
    for _ in 0..3 {
        let started = Instant::now();
        let read = read_everything(log, GlobalPosition::START).await?;
        best = best.max(read as f64 / started.elapsed().as_secs_f64());
        assert_eq!(read, total);
    }
    line(
        &format!("read the whole log ({total} events, batches of 1000, best of 3)"),
        best,
        "(target >= 150000/s)",
    );
    Ok(())
}

async fn read_everything(log: &dyn EventLog, from: GlobalPosition) -> Result<u64, StoreError> {
    let mut position = from;
    let mut count = 0;
    loop {
        let batch = log.read_all(position, 1000).await?;
        let Some(last) = batch.last() else {
            return Ok(count);
        };
        position = last.position;
        count += batch.len() as u64;
    }
}
