//! Where the data lives: the event log's and read models' database, the keys, and the
//! blob store (files or S3-compatible object storage).

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Where the data lives. Its `Debug` shows no secret: the master key is left out and
/// database URLs lose their password.
#[derive(Clone, Args)]
pub struct StorageArgs {
    /// Folder for the embedded SQLite file, the generated master key and the mail folder.
    #[arg(long, env = "ACCOUNTS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` selects PostgreSQL; without it the SQLite file in the data dir is used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The master key (32 bytes, base64) wrapping every data key. Without it the key in
    /// `<data-dir>/master.key` is used, created (mode 0600) if missing.
    #[arg(long, env = "ACCOUNTS_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// Where the data keys live, apart from the data they seal, so that a backup of the
    /// data holds no key: `sqlite://…` or `postgres://…`. Default: `<data-dir>/keys.db`
    /// with the embedded SQLite; with PostgreSQL, the same database (a warning says so).
    #[arg(long, env = "ACCOUNTS_KEY_DATABASE_URL", hide_env_values = true)]
    pub key_database_url: Option<String>,

    /// Connections per database pool, and per set of connections kept outside the pools
    /// (the hot reads; on PostgreSQL the log's own).
    #[arg(long, env = "ACCOUNTS_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Keep the event log in KurrentDB: `kurrentdb://[user:password@]host:2113?tls=false`,
    /// `kurrentdb+discover://…` (a cluster found by DNS) or `esdb://…`. Read models, keys
    /// and every other table stay in the database (`--database-url`, else the SQLite file).
    /// Without it the event log is kept in the database too.
    #[arg(long, env = "KURRENTDB_URL", hide_env_values = true)]
    pub event_store: Option<String>,
}

/// Where blobs (avatars) are kept. Its `Debug` shows neither the secret access key nor the
/// access key id.
#[derive(Clone, Args)]
pub struct BlobArgs {
    /// `folder`: files under `<data-dir>/blobs` (one node, or nodes sharing that folder);
    /// `s3`: an S3 bucket (AWS or S3-compatible) every node shares.
    #[arg(long, env = "ACCOUNTS_BLOB_STORE", value_enum, default_value_t = BlobStoreKind::Folder)]
    pub blob_store: BlobStoreKind,

    /// With `--blob-store s3`: the S3 endpoint (`https://s3.eu-central-1.amazonaws.com`,
    /// `http://minio:9000`). Default: AWS S3 in `--blob-s3-region`.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_ENDPOINT")]
    pub blob_s3_endpoint: Option<String>,

    /// With `--blob-store s3`: the region requests are signed for.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_REGION", default_value = "us-east-1")]
    pub blob_s3_region: String,

    /// With `--blob-store s3`: the bucket (it must exist).
    #[arg(long, env = "ACCOUNTS_BLOB_S3_BUCKET")]
    pub blob_s3_bucket: Option<String>,

    /// With `--blob-store s3`: the access key id.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub blob_s3_access_key_id: Option<String>,

    /// With `--blob-store s3`: the secret access key.
    #[arg(
        long,
        env = "ACCOUNTS_BLOB_S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub blob_s3_secret_access_key: Option<String>,

    /// With `--blob-store s3`: address the bucket in the path (`<endpoint>/<bucket>/<key>`)
    /// rather than the host name (`<bucket>.<endpoint host>`), as most self-hosted servers
    /// and endpoints given as an IP address need.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_FORCE_PATH_STYLE")]
    pub blob_s3_force_path_style: bool,

    /// With `--blob-store s3`: the longest one request to S3 may take.
    #[arg(long, env = "ACCOUNTS_BLOB_S3_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub blob_s3_timeout: Duration,
}

impl Default for BlobArgs {
    fn default() -> Self {
        Self {
            blob_store: BlobStoreKind::Folder,
            blob_s3_endpoint: None,
            blob_s3_region: "us-east-1".into(),
            blob_s3_bucket: None,
            blob_s3_access_key_id: None,
            blob_s3_secret_access_key: None,
            blob_s3_force_path_style: false,
            blob_s3_timeout: Duration::from_secs(30),
        }
    }
}

/// `--blob-store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobStoreKind {
    /// Files under `<data-dir>/blobs`.
    Folder,
    /// An S3 bucket.
    S3,
}

impl BlobArgs {
    /// The S3 settings, with `--blob-store s3`; an error names a missing flag.
    pub fn s3_settings(&self) -> anyhow::Result<Option<store::s3::S3Settings>> {
        if self.blob_store != BlobStoreKind::S3 {
            return Ok(None);
        }
        let required = |value: &Option<String>, flag: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--blob-store s3 needs {flag}"))
        };
        Ok(Some(store::s3::S3Settings {
            endpoint: self.blob_s3_endpoint.clone().filter(|e| !e.is_empty()),
            region: self.blob_s3_region.clone(),
            bucket: required(
                &self.blob_s3_bucket,
                "--blob-s3-bucket (ACCOUNTS_BLOB_S3_BUCKET)",
            )?,
            access_key_id: required(
                &self.blob_s3_access_key_id,
                "--blob-s3-access-key-id (ACCOUNTS_BLOB_S3_ACCESS_KEY_ID)",
            )?,
            secret_access_key: required(
                &self.blob_s3_secret_access_key,
                "--blob-s3-secret-access-key (ACCOUNTS_BLOB_S3_SECRET_ACCESS_KEY)",
            )?,
            force_path_style: self.blob_s3_force_path_style,
        }))
    }
}
