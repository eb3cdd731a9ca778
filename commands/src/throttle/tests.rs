//! The throttle against a real database: what its pure rules ([`super::counters`]) cannot
//! show alone.

use super::*;
use crate::clock::SystemClock;
use ::store::Database;
use ::store::testkit::TestSqlite;

async fn throttle() -> (TestSqlite, Throttle) {
    let file = TestSqlite::create();
    let db = Database::connect(&file.url, 4).await.unwrap();
    db.migrate().await.unwrap();
    let policy = ThrottlePolicy::default();
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
