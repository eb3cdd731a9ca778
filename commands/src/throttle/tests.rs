//! The throttle against a real database: what its pure rules ([`super::counters`]) cannot
//! show alone.

use super::*;
use crate::clock::SystemClock;
use ::store::Database;
use ::store::testkit::TestSqlite;

async fn throttle() -> (TestSqlite, Throttle) {
    throttle_with(ThrottlePolicy::default()).await
}

async fn throttle_with(policy: ThrottlePolicy) -> (TestSqlite, Throttle) {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let throttle = Throttle::new(
        ThrottleKind::Password,
        policy,
        db,
        [7; 32],
        Arc::new(SystemClock),
    );
    (file, throttle)
}

/// A success's forgiveness is stored after its answer, yet the next attempt on the same
/// counters is judged as if it had been stored first: it waits for it.
#[tokio::test]
async fn an_attempt_right_after_a_success_finds_it_forgiven() {
    let (_file, throttle) = throttle().await;
    let ip = Some("203.0.113.9".parse().unwrap());
    for _ in 0..4 {
        drop(throttle.begin("ada", ip).await.expect("a free attempt"));
    }
    // The fifth attempt, counted as a failure until it is forgiven, would make the next
    // one wait a second.
    let right = throttle.begin("ada", ip).await.expect("the fifth attempt");
    throttle.succeeded(right);
    for n in 1..=5 {
        let attempt = throttle.begin("ada", ip).await;
        drop(attempt.unwrap_or_else(|e| panic!("attempt {n} after the success: {e}")));
    }
    assert!(
        matches!(throttle.begin("ada", ip).await, Err(ThrottleError::Wait(_))),
        "five failures after the success, the back-off starts again"
    );
}

/// Failures from many IPs lock the account, but not for an IP that signed in to it before:
/// the owner's device is asked about only once the account's lock would refuse it.
#[tokio::test]
async fn an_account_locked_from_many_ips_still_admits_its_owners_device() {
    let (_file, throttle) = throttle_with(ThrottlePolicy {
        max_failures_per_account: 3,
        ..ThrottlePolicy::default()
    })
    .await;
    let ip = |last: u8| Some(IpAddr::from([203, 0, 113, last]));
    let owner = throttle.begin("ada", ip(1)).await.expect("the owner");
    throttle.succeeded(owner);
    for guesser in 2..=4 {
        drop(
            throttle
                .begin("ada", ip(guesser))
                .await
                .expect("a free guess"),
        );
    }
    assert!(
        matches!(
            throttle.begin("ada", ip(5)).await,
            Err(ThrottleError::Wait(_))
        ),
        "the account is locked for other IPs"
    );
    let owner = throttle.begin("ada", ip(1)).await;
    throttle.succeeded(owner.expect("the owner's device is not locked out"));
}

/// A settlement, written after the answer, takes its turn at SQLite's write gate as a
/// background write: a request's write queued after it still goes first, so requests and
/// the read models they wait for do not queue behind settlements.
#[tokio::test]
async fn a_settlement_lets_a_requests_write_go_first() {
    let (_file, throttle) = throttle().await;
    let known_devices = "SELECT count(*) FROM throttle_known_devices";
    let attempt = throttle
        .begin("ada", Some("203.0.113.9".parse().unwrap()))
        .await
        .expect("an attempt");
    let keys = attempt.keys.clone();
    let background = throttle.db.begin_background_write().await.unwrap();
    throttle.succeeded(attempt);
    // The settlement is queued by now; the request's write comes after it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let db = throttle.db.clone();
    let request = tokio::spawn(async move { db.begin_write().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    background.commit().await.unwrap();
    let mut request = request.await.unwrap();
    let seen: i64 = sqlx::query_scalar(known_devices)
        .fetch_one(&mut *request.tx)
        .await
        .unwrap();
    assert_eq!(
        seen, 0,
        "the settlement was written before the request's write"
    );
    request.commit().await.unwrap();
    throttle.settling.wait_for(&keys).await;
    let stored: i64 = sqlx::query_scalar(known_devices)
        .fetch_one(throttle.db.pool())
        .await
        .unwrap();
    assert_eq!(
        stored, 1,
        "the settlement is stored once the request's write ends"
    );
}
