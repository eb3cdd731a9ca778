//! Settlements still being written. A finished attempt's forgiveness (or the taking back of
//! its count) is stored after the attempt has been answered, so the answer does not wait
//! for a write transaction that changes nothing the caller sees. The next attempt on the
//! same counters in this process waits for it instead: a client that tries again at once
//! is judged as if the settlement had been stored before the first answer left.
//!
//! Another node does not know of a settlement in flight here; for the few milliseconds it
//! takes, that node may still see the attempt counted, which errs on the side of caution,
//! as does a settlement abandoned when the process stops or one that fails to be stored
//! (logged): the attempt then stays counted as a failure.

use super::store::Key;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// The counter keys whose settlement is being written, with how many settlements each.
#[derive(Debug, Default)]
pub(super) struct Settling {
    keys: Mutex<HashMap<String, usize>>,
    settled: Notify,
}

impl Settling {
    /// Marks `keys` as settling until the returned hold is dropped.
    pub fn hold(self: &Arc<Self>, keys: &[Key]) -> Held {
        let mut held = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            *held.entry(key.key.clone()).or_default() += 1;
        }
        Held {
            settling: self.clone(),
            keys: keys.iter().map(|key| key.key.clone()).collect(),
        }
    }

    /// Returns once none of `keys` is settling.
    pub async fn wait_for(&self, keys: &[Key]) {
        loop {
            // Registered before the check, so a settlement ending in between still wakes it.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if !self.any(keys) {
                return;
            }
            settled.await;
        }
    }

    fn any(&self, keys: &[Key]) -> bool {
        let held = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.iter().any(|key| held.contains_key(&key.key))
    }
}

/// Keys marked as settling; dropping it (the settlement stored, failed or abandoned)
/// releases them.
#[derive(Debug)]
pub(super) struct Held {
    settling: Arc<Settling>,
    keys: Vec<String>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self
            .settling
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for key in &self.keys {
            if let Some(count) = held.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    held.remove(key);
                }
            }
        }
        drop(held);
        self.settling.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::counters::Scope;
    use std::future::Future;
    use std::task::{Context, Waker};

    fn key(name: &str) -> Key {
        Key {
            scope: Scope::Pair,
            key: name.to_owned(),
        }
    }

    /// Whether `future` is still waiting, polled once.
    fn pending(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> bool {
        future
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    }

    #[tokio::test]
    async fn an_attempt_waits_for_the_settlements_of_its_keys_only() {
        let settling = Arc::new(Settling::default());
        let (a, b) = (key("a"), key("b"));
        let first = settling.hold(std::slice::from_ref(&a));
        let second = settling.hold(std::slice::from_ref(&a));
        let both = [b.clone(), a.clone()];
        let other = std::pin::pin!(settling.wait_for(std::slice::from_ref(&b)));
        assert!(!pending(other), "another key does not wait");
        let mut waiting = Box::pin(settling.wait_for(&both));
        assert!(pending(waiting.as_mut()), "a is settling");
        drop(first);
        assert!(pending(waiting.as_mut()), "a is still settling once more");
        drop(second);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the last settlement of a releases the wait");
        assert!(settling.keys.lock().unwrap().is_empty(), "nothing is left");
    }
}
