//! Snapshots in the executor: a cold load of a stream whose aggregate keeps snapshots
//! starts from the latest one, and a command whose events cross a multiple of
//! [`SNAPSHOT_EVERY`] saves a new one in the background.

use super::{Executor, SNAPSHOT_EVERY};
use crate::metrics::SNAPSHOTS_SAVED;
use domain::Aggregate;
use store::Snapshot;

impl Executor {
    /// The state a snapshot of `stream` holds and how many events it covers, if the
    /// aggregate keeps snapshots and a readable one of its version is there. A snapshot that
    /// cannot be read is only a slower load: the stream is folded from its first event.
    pub(super) async fn load_snapshot<A: Aggregate>(&self, stream: &str) -> Option<(A, u64)> {
        let (store, version) = (self.snapshots.as_ref()?, A::SNAPSHOT_VERSION?);
        let snapshot = match store.load(stream, aggregate_name::<A>(), version).await {
            Ok(snapshot) => snapshot?,
            Err(error) => {
                tracing::warn!(%error, stream, "could not read a snapshot; folding the stream");
                return None;
            }
        };
        Some((A::from_snapshot(snapshot.state)?, snapshot.event_count))
    }

    /// Saves a snapshot of `state` (covering `after` events) in the background when the
    /// command that led to it crossed a multiple of [`SNAPSHOT_EVERY`] from `before`.
    pub(super) fn snapshot_if_due<A: Aggregate>(
        &self,
        stream: &str,
        state: &A,
        before: u64,
        after: u64,
    ) {
        let (Some(store), Some(version)) = (&self.snapshots, A::SNAPSHOT_VERSION) else {
            return;
        };
        if before / SNAPSHOT_EVERY == after / SNAPSHOT_EVERY {
            return;
        }
        let Some(state) = state.to_snapshot() else {
            return;
        };
        let snapshot = Snapshot {
            aggregate: aggregate_name::<A>().to_owned(),
            version,
            event_count: after,
            state,
        };
        let (store, stream) = (store.clone(), stream.to_owned());
        tokio::spawn(async move {
            match store.save(&stream, &snapshot).await {
                Ok(()) => metrics::counter!(SNAPSHOTS_SAVED).increment(1),
                // Only a slower cold load later; the log is unaffected.
                Err(error) => tracing::warn!(%error, stream, "could not save a snapshot"),
            }
        });
    }
}

/// The name snapshots of `A` are filed under: its type's name without the module path.
fn aggregate_name<A>() -> &'static str {
    let name = std::any::type_name::<A>();
    name.rsplit("::").next().unwrap_or(name)
}
