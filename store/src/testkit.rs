//! Throw-away databases for tests and benchmarks.
//!
//! PostgreSQL tests connect to `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), create a database of their own and drop
//! it when done. When the server is not reachable they fail, saying how to start it: a
//! test never passes because a service is missing.

mod probed_log;

pub use probed_log::ProbedLog;
use sqlx::{Connection, Executor, PgConnection};
use std::path::PathBuf;

/// The server tests use unless `TEST_DATABASE_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The administrative URL of the test server.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let prefix = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{prefix}/{database}?{query}"),
        None => format!("{prefix}/{database}"),
    }
}

/// A PostgreSQL database that exists for the life of this value.
#[derive(Debug)]
pub struct TestPostgres {
    /// Connect here.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestPostgres {
    /// Creates an empty database on the test server.
    ///
    /// # Panics
    /// When the server cannot be reached or refuses, with instructions.
    pub async fn create() -> Self {
        let admin_url = postgres_admin_url();
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}\n\
                 Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                 or point TEST_DATABASE_URL at a server where this user may create databases."
            )
        });
        let name = format!("accounts_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("could not create test database {name}: {e}"));
        let _ = admin.close().await;
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime that is shutting down: use a thread of our own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await?;
                admin.close().await?;
                Ok::<_, sqlx::Error>(())
            })?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            tracing::warn!(database = %self.name, "could not drop test database");
        }
    }
}

/// A SQLite file in a temporary folder that exists for the life of this value.
#[derive(Debug)]
pub struct TestSqlite {
    /// Connect here.
    pub url: String,
    /// The folder, usable as the service's data directory.
    pub dir: PathBuf,
    _keep: TempDir,
}

/// An empty temporary folder, removed with everything in it when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<temp>/accounts-test-<uuid>`.
    pub fn create() -> Self {
        let dir =
            std::env::temp_dir().join(format!("accounts-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a temporary folder");
        Self(dir)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A service still winding down (its mailer, say) may write into the folder while it
        // is removed, and a subfolder that gained a file fails the removal, which left the
        // folder behind. Moved aside first, it is out of such a writer's reach (which never
        // creates the folder itself); a write already under way is removed by trying again.
        let mut aside = self.0.clone().into_os_string();
        aside.push(".removing");
        let aside = PathBuf::from(aside);
        let doomed = match std::fs::rename(&self.0, &aside) {
            Ok(()) => &aside,
            Err(_) => &self.0,
        };
        for _ in 0..50 {
            match std::fs::remove_dir_all(doomed) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                _ => return,
            }
        }
    }
}

impl TestSqlite {
    /// Creates an empty folder for a SQLite file.
    pub fn create() -> Self {
        let keep = TempDir::create();
        let dir = keep.path().to_path_buf();
        Self {
            url: crate::Database::sqlite_url(&dir.join("accounts.db")),
            dir,
            _keep: keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TempDir, with_database};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A folder removed while something still writes into a subfolder of it (as a test
    /// service's mailer may, the test over) is removed all the same.
    #[test]
    fn a_folder_written_into_while_removed_is_removed() {
        for _ in 0..20 {
            let dir = TempDir::create();
            let (root, stop) = (dir.path().to_path_buf(), Arc::new(AtomicBool::new(false)));
            let writer = {
                let (root, stop) = (root.clone(), stop.clone());
                std::thread::spawn(move || {
                    // Like the mail folder's writer: it creates its subfolders, never the
                    // folder that holds them.
                    let mail = root.join("mail");
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let _ = std::fs::create_dir(&mail);
                        let _ = std::fs::write(mail.join(format!("{n}.eml")), b"x");
                        n += 1;
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                })
            };
            std::thread::sleep(std::time::Duration::from_millis(5));
            drop(dir);
            stop.store(true, Ordering::Relaxed);
            writer.join().unwrap();
            assert!(!root.exists(), "{} left behind", root.display());
            let aside = format!("{}.removing", root.display());
            assert!(
                !std::path::Path::new(&aside).exists(),
                "{aside} left behind"
            );
        }
    }

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "y"),
            "postgres://u:p@h/y?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "z"),
            "postgres://h:5432/z"
        );
    }
}
