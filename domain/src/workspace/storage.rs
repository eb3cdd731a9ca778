//! The object storage a workspace uses, as its events tell it.

use super::ExternalStorage;
use crate::Timestamp;

/// How the external storage fared at its last probe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StorageHealth {
    /// Working (or not probed since it was configured, which it was only after a probe).
    #[default]
    Working,
    /// Failing since `since`, with the reason.
    Misconfigured {
        /// The probe's failure.
        problem: String,
        /// Since when.
        since: Timestamp,
    },
}

/// The storage in force.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageSettings {
    /// External settings; `None` is the managed storage.
    pub external: Option<ExternalStorage>,
    /// The last probe's outcome.
    pub health: StorageHealth,
    /// When it was last probed (or configured).
    pub last_checked_at: Option<Timestamp>,
}
