//! The schema migrations of each backend, compiled into the binary from
//! `migrations/<backend>/` (applied by [`crate::Database::migrate`]).

use crate::db::Backend;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use std::borrow::Cow;
use std::pin::Pin;

/// The SQL files under `migrations/<backend>/`, compiled into the binary.
#[derive(Debug)]
pub(crate) struct EmbeddedMigrations(pub(crate) Backend);

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "event log",
        include_str!("../../migrations/sqlite/0001_event_log.sql"),
    ),
    (
        2,
        "idempotency owner",
        include_str!("../../migrations/sqlite/0002_idempotency_owner.sql"),
    ),
    (
        3,
        "mail",
        include_str!("../../migrations/sqlite/0003_mail.sql"),
    ),
    (
        4,
        "throttle",
        include_str!("../../migrations/sqlite/0004_throttle.sql"),
    ),
    (
        5,
        "offer claims",
        include_str!("../../migrations/sqlite/0005_offer_claims.sql"),
    ),
    (
        6,
        "idempotency sealed",
        include_str!("../../migrations/sqlite/0006_idempotency_sealed.sql"),
    ),
    (
        7,
        "rate limits",
        include_str!("../../migrations/sqlite/0007_rate_limits.sql"),
    ),
    (
        8,
        "event chain",
        include_str!("../../migrations/sqlite/0008_event_chain.sql"),
    ),
    (
        9,
        "snapshots",
        include_str!("../../migrations/sqlite/0009_snapshots.sql"),
    ),
    (
        10,
        "rebuilds",
        include_str!("../../migrations/sqlite/0010_rebuilds.sql"),
    ),
    (
        11,
        "audit index",
        include_str!("../../migrations/sqlite/0011_audit_index.sql"),
    ),
    (
        12,
        "mail counts",
        include_str!("../../migrations/sqlite/0012_mail_counts.sql"),
    ),
];

const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "event log",
        include_str!("../../migrations/postgres/0001_event_log.sql"),
    ),
    (
        2,
        "idempotency owner",
        include_str!("../../migrations/postgres/0002_idempotency_owner.sql"),
    ),
    (
        3,
        "mail",
        include_str!("../../migrations/postgres/0003_mail.sql"),
    ),
    (
        4,
        "throttle",
        include_str!("../../migrations/postgres/0004_throttle.sql"),
    ),
    (
        5,
        "offer claims",
        include_str!("../../migrations/postgres/0005_offer_claims.sql"),
    ),
    (
        6,
        "idempotency sealed",
        include_str!("../../migrations/postgres/0006_idempotency_sealed.sql"),
    ),
    (
        7,
        "rate limits",
        include_str!("../../migrations/postgres/0007_rate_limits.sql"),
    ),
    (
        8,
        "event chain",
        include_str!("../../migrations/postgres/0008_event_chain.sql"),
    ),
    (
        9,
        "snapshots",
        include_str!("../../migrations/postgres/0009_snapshots.sql"),
    ),
    (
        10,
        "rebuilds",
        include_str!("../../migrations/postgres/0010_rebuilds.sql"),
    ),
    (
        11,
        "audit index",
        include_str!("../../migrations/postgres/0011_audit_index.sql"),
    ),
    (
        12,
        "mail counts",
        include_str!("../../migrations/postgres/0012_mail_counts.sql"),
    ),
];

/// The migrations of `backend`: version, description, SQL.
pub(crate) fn listed(backend: Backend) -> &'static [(i64, &'static str, &'static str)] {
    match backend {
        Backend::Sqlite => SQLITE_MIGRATIONS,
        Backend::Postgres => POSTGRES_MIGRATIONS,
    }
}

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<Migration>, Box<dyn std::error::Error + Send + Sync>>>
                + Send
                + 's,
        >,
    > {
        let migrations = listed(self.0)
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                )
            })
            .collect();
        Box::pin(async move { Ok(migrations) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A migration file that is not listed would silently never run.
    #[test]
    fn every_migration_file_is_embedded_in_order() {
        for (backend, listed) in [
            ("sqlite", SQLITE_MIGRATIONS),
            ("postgres", POSTGRES_MIGRATIONS),
        ] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../migrations")
                .join(backend);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            files.sort();
            assert_eq!(files.len(), listed.len(), "{backend}: {files:?}");
            for (n, (file, (version, _, sql))) in files.iter().zip(listed).enumerate() {
                assert_eq!(*version, n as i64 + 1, "{backend}: {file}");
                assert!(file.starts_with(&format!("{version:04}_")), "{file}");
                let on_disk = std::fs::read_to_string(dir.join(file)).unwrap();
                assert_eq!(on_disk, *sql, "{backend}: {file} is embedded as written");
            }
        }
    }
}
