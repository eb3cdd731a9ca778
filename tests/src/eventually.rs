//! Waiting for what the service does in the background (a read model catching up, an
//! e-mail written, a cache forgetting a token), with a deadline that fails the test.

use std::time::Duration;

/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(50);

/// Checks `check` every 50 ms until it gives a value, and returns it. If `within` passes
/// first, fails the test with the check's last complaint.
pub async fn eventually<T, Check, Checking>(within: Duration, mut check: Check) -> T
where
    Check: FnMut() -> Checking,
    Checking: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(complaint) => assert!(
                tokio::time::Instant::now() < deadline,
                "not within {within:?}: {complaint}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}
