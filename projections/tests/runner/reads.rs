//! How often a follower reads the log: once per append once it has caught up.

use super::*;
use store::testkit::ProbedLog;
use store::{ExpectedRevision, Metadata, NewEvent};

/// An event of a stream no read model follows.
fn unfollowed(n: u32) -> NewEvent {
    NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: "ProbeRecorded".into(),
        schema_version: 1,
        data: serde_json::json!({ "n": n }),
        metadata: Metadata {
            correlation_id: uuid::Uuid::new_v4(),
            causation_id: None,
            actor: Actor::System {
                component: "test".into(),
            },
            occurred_at: Timestamp::from_unix_micros(1_800_000_000_000_000),
            idempotency_key: None,
            data_subject: None,
        },
    }
}

/// A follower that has caught up reads the log once per append, not twice: a page shorter
/// than it asked for ends where the log ended for that read, so it waits for the next
/// append instead of reading again to find nothing. (Every append wakes every follower of
/// the process, eighteen in the service.)
pub async fn a_caught_up_follower_reads_the_log_once_per_append(f: Fixture) {
    let log = ProbedLog::new(f.log.clone());
    let runner = Arc::new(ProjectionRunner::new(
        f.db.clone(),
        log.clone(),
        Arc::new(f.codec.clone()),
        vec![Arc::new(Counting {
            fail: Arc::new(AtomicBool::new(false)),
            categories: &[StreamCategory::Email],
            independent: false,
            registrations_only: false,
        })],
    ));
    runner.prepare().await.unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = runner.spawn(stopped);
    let appends = 10;
    for n in 0..appends {
        let appended = f
            .log
            .append("probe-1", ExpectedRevision::Any, vec![unfollowed(n)])
            .await
            .unwrap();
        runner
            .wait_for(
                &[COUNTING],
                appended.last_position(),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        // Room for a read after the page before the next append, were there one.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for any read that would follow the last page.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reads = log.log_reads.load(Ordering::SeqCst);
    stop_all(&stop, tasks).await;
    // One read at start and one per append; a few more are allowed for a checkpoint
    // store coming due. Reading again after every page would make it 21.
    assert!(
        reads <= u64::from(appends) + 4,
        "{reads} reads of the log for {appends} appends"
    );
}
