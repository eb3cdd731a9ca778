//! `accounts doctor`: checks the configuration it is given — the database reachable and
//! migrated, the key store, the master key present and opening the stored data keys, the
//! broker and the SMTP server reachable when configured, the S3 bucket of the blobs
//! working, the public URL set — and says what to fix. It changes nothing: no migration, no
//! key, no queue (the S3 probe writes a sentinel object and deletes it).

use crate::config::ServeArgs;
use std::fmt::Write;
use std::time::Duration;
use store::{Backend, Database};
use vault::{DataKeys, MasterKey};
use workers::mail::rabbit::RabbitConfig;
use workers::mail::transport::SmtpMailTransport;

/// How long a check of a remote service may take.
const REACHABLE_WITHIN: Duration = Duration::from_secs(5);

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Fine.
    Ok(String),
    /// Works, but deserves a look.
    Warning(String),
    /// Broken; the service will not work until it is fixed.
    Problem(String),
}

/// Every check, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// What was found.
    pub findings: Vec<Finding>,
}

impl Report {
    fn ok(&mut self, text: impl Into<String>) {
        self.findings.push(Finding::Ok(text.into()));
    }
    fn warn(&mut self, text: impl Into<String>) {
        self.findings.push(Finding::Warning(text.into()));
    }
    fn problem(&mut self, text: impl Into<String>) {
        self.findings.push(Finding::Problem(text.into()));
    }

    /// Whether any problem was found.
    pub fn failed(&self) -> bool {
        self.findings
            .iter()
            .any(|f| matches!(f, Finding::Problem(_)))
    }

    /// The report as printed: a line per check, then a summary.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            let (tag, text) = match finding {
                Finding::Ok(text) => ("ok     ", text),
                Finding::Warning(text) => ("warning", text),
                Finding::Problem(text) => ("PROBLEM", text),
            };
            let _ = writeln!(out, "{tag}  {text}");
        }
        let problems = self
            .findings
            .iter()
            .filter(|f| matches!(f, Finding::Problem(_)))
            .count();
        let _ = match problems {
            0 => writeln!(out, "\nNo problem found."),
            n => writeln!(
                out,
                "\n{n} problem(s): fix them and run `accounts doctor` again."
            ),
        };
        out
    }
}

/// Shows a URL without the password it may carry.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            format!("{}{user}:…{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Runs every check against the configuration `args`.
pub async fn check(args: &ServeArgs) -> Report {
    let mut report = Report::default();
    let storage = &args.storage;
    let url = storage.database();
    let db = match Database::connect(&url, 2).await {
        Ok(db) => {
            report.ok(format!("database {} answers", redacted(&url)));
            Some(db)
        }
        Err(error) => {
            let fix = if url.starts_with("postgres") {
                "start PostgreSQL (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or correct DATABASE_URL"
            } else {
                "check that --data-dir can be written"
            };
            report.problem(format!(
                "database {} does not answer ({error}): {fix}",
                redacted(&url)
            ));
            None
        }
    };
    let Some(db) = db else {
        return finish(report, args).await;
    };
    match db.pending_migrations().await {
        Ok(0) => report.ok("migrations: all applied"),
        Ok(n) => report.warn(format!(
            "migrations: {n} not applied yet; `accounts serve` applies them at start, \
             `accounts migrate` does now"
        )),
        Err(error) => report.problem(format!("migrations: cannot tell ({error})")),
    }
    event_store(&mut report, args).await;
    master_key(&mut report, args, &db).await;
    db.close().await;
    finish(report, args).await
}

/// The KurrentDB event log, when `--event-store` puts the log there.
async fn event_store(report: &mut Report, args: &ServeArgs) {
    let Some(url) = &args.storage.event_store else {
        return;
    };
    match store::kurrentdb::KurrentLog::connect(url).await {
        Ok(_) => report.ok(format!("event store {} answers", redacted(url))),
        Err(error) => report.problem(format!(
            "event store {} does not answer ({error}): start KurrentDB or correct KURRENTDB_URL \
             (e.g. kurrentdb://127.0.0.1:2113?tls=false)",
            redacted(url)
        )),
    }
}

/// The master key: given or on file, well formed, and opening the stored data keys.
async fn master_key(report: &mut Report, args: &ServeArgs, db: &Database) {
    let storage = &args.storage;
    let master = match &storage.master_key {
        Some(text) => match MasterKey::from_base64(text) {
            Ok(key) => key,
            Err(_) => {
                return report.problem(
                    "master key: ACCOUNTS_MASTER_KEY is not 32 bytes of base64 \
                     (make one with `head -c32 /dev/urandom | base64`)",
                );
            }
        },
        None => {
            let path = storage.data_dir.join("master.key");
            match std::fs::read_to_string(&path).map(|text| MasterKey::from_base64(&text)) {
                Ok(Ok(key)) => key,
                Ok(Err(_)) => {
                    return report.problem(format!(
                        "master key: {} is not 32 bytes of base64",
                        path.display()
                    ));
                }
                Err(_) if db.backend() == Backend::Sqlite => {
                    return report.warn(format!(
                        "master key: none yet; `accounts serve` creates {} at first start \
                         (back it up)",
                        path.display()
                    ));
                }
                Err(_) => {
                    return report.problem(
                        "master key: none given; set ACCOUNTS_MASTER_KEY (every node the same)",
                    );
                }
            }
        }
    };
    let key_store = match storage.key_store(db) {
        Some(url) => match Database::connect(&url, 2).await {
            Ok(store) => store,
            Err(error) => {
                return report.problem(format!(
                    "key store {} does not answer ({error}): correct ACCOUNTS_KEY_DATABASE_URL",
                    redacted(&url)
                ));
            }
        },
        None => {
            report.warn(
                "key store: the data keys live in the database they seal, so its backups \
                 hold them; set ACCOUNTS_KEY_DATABASE_URL to a database of their own",
            );
            db.clone()
        }
    };
    match DataKeys::new(key_store, &master).master_opens_keys().await {
        Ok(Some(true)) => report.ok("master key opens the stored data keys"),
        Ok(Some(false)) => report.problem(
            "master key does not open the stored data keys: this is not the key the data \
             was written with; give the right ACCOUNTS_MASTER_KEY",
        ),
        Ok(None) => report.ok("master key present (no data key stored yet)"),
        // A key store not created yet holds no key.
        Err(_) => report.ok("master key present (no key store yet)"),
    }
}

/// The blob store: with `--blob-store s3`, a probe of the bucket (write, read back,
/// delete a sentinel object).
async fn blobs(report: &mut Report, args: &ServeArgs) {
    let settings = match args.blobs.s3_settings() {
        Ok(Some(settings)) => settings,
        Ok(None) => {
            return report.ok(format!(
                "blobs: files in {} (--blob-store folder; several nodes need a shared \
                 folder or --blob-store s3)",
                args.storage.data_dir.join("blobs").display()
            ));
        }
        Err(error) => return report.problem(format!("blobs: {error}")),
    };
    let store = match crate::storage::s3_blob_store(&args.blobs, &settings) {
        Ok(store) => store,
        Err(error) => return report.problem(format!("blobs: {error:#}")),
    };
    let bucket = store.bucket_url().to_string();
    match store::s3::probe(&store).await {
        Ok(()) => report.ok(format!(
            "blobs: S3 bucket {bucket} stores, returns and deletes objects"
        )),
        Err(failure) => report.problem(format!(
            "blobs: S3 bucket {bucket} failed at {} ({}): check the --blob-s3-* flags and \
             the key's permissions (PutObject, GetObject, DeleteObject)",
            failure.step, failure.message
        )),
    }
}

/// The checks that need no database: blobs, broker, SMTP, public URL.
async fn finish(mut report: Report, args: &ServeArgs) -> Report {
    blobs(&mut report, args).await;
    let mail = &args.mail;
    if let Some(url) = &mail.amqp_url {
        let config = RabbitConfig {
            url: url.clone(),
            prefix: mail.amqp_prefix.clone(),
        };
        match tokio::time::timeout(REACHABLE_WITHIN, config.reachable()).await {
            Ok(Ok(())) => report.ok(format!("RabbitMQ {} answers", redacted(url))),
            Ok(Err(error)) => report.problem(format!(
                "RabbitMQ {} refuses ({error}): start it (`rabbitmq-server -detached`) or \
                 correct AMQP_URL",
                redacted(url)
            )),
            Err(_) => report.problem(format!(
                "RabbitMQ {} does not answer within {}s: check AMQP_URL",
                redacted(url),
                REACHABLE_WITHIN.as_secs()
            )),
        }
    } else {
        report.ok("mail queue: in the database (no --amqp-url)");
    }
    if let Some(url) = &mail.smtp_url {
        let reachable = match SmtpMailTransport::from_url(url) {
            Ok(transport) => tokio::time::timeout(REACHABLE_WITHIN, transport.reachable())
                .await
                .unwrap_or_else(|_| Err("no answer".into())),
            Err(error) => Err(error),
        };
        match reachable {
            Ok(()) => report.ok(format!("SMTP {} answers", redacted(url))),
            Err(error) => report.problem(format!(
                "SMTP {} is not usable ({error}): correct SMTP_URL",
                redacted(url)
            )),
        }
    } else {
        report.ok("mail: written as files into <data-dir>/mail (no --smtp-url)");
    }
    match &args.public_url {
        Some(url) => report.ok(format!("public URL {url}")),
        None => report.warn(
            "public URL not set: links built for clients use the request's Host header; \
             set --public-url (ACCOUNTS_PUBLIC_URL) to the address clients use",
        ),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/accounts"),
            "postgres://app:…@db:5432/accounts"
        );
        assert_eq!(
            redacted("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:…@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redacted("sqlite:///data/accounts.db"),
            "sqlite:///data/accounts.db"
        );
    }
}
