//! The storage side of the service, opened the same way by `serve` and every other
//! subcommand: the database (migrated), the key store, the log, the codec and the command
//! executor; and the blob store `serve` keeps avatars in.

use crate::config::{BlobArgs, StorageArgs};
use anyhow::Context;
use commands::{EventCodec, Executor};
use projections::{ProjectionRunner, Reactor};
use std::path::Path;
use std::sync::Arc;
use store::s3::S3BlobStore;
use store::{Backend, BlobStore, Database, EventLog, FolderBlobStore, SnapshotStore};
use vault::{DataKeys, FieldSealer, MasterKey};

/// The storage side of the service: database, log, keys, codec, and the executor every
/// command handler shares (one aggregate cache, one set of stream queues).
pub struct Storage {
    /// The database.
    pub db: Database,
    /// The event log: in the database, or in KurrentDB (`--event-store`).
    pub log: Arc<dyn EventLog>,
    /// The codec sealing personal data.
    pub codec: EventCodec,
    /// The master key.
    pub master: MasterKey,
    /// Runs commands.
    pub exec: Executor,
}

impl Storage {
    /// Opens the database, applies migrations and opens the log (in KurrentDB with
    /// `--event-store`, else in the database); read models are not prepared yet.
    #[tracing::instrument(skip_all)]
    pub async fn open(args: &StorageArgs) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&args.data_dir)
            .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
        let db = Database::connect(&args.database(), args.db_max_connections)
            .await
            .context("connecting to the database")?;
        db.migrate().await.context("applying migrations")?;
        let master = match &args.master_key {
            Some(key) => MasterKey::from_base64(key).context("ACCOUNTS_MASTER_KEY")?,
            None => {
                let path = args.data_dir.join("master.key");
                let (key, created) = MasterKey::load_or_create(&path)
                    .with_context(|| format!("master key file {}", path.display()))?;
                if created {
                    tracing::warn!(
                        path = %path.display(),
                        "created a new master key (mode 0600). Back it up: without it the \
                         personal data in the event log cannot be read. In production pass \
                         ACCOUNTS_MASTER_KEY instead."
                    );
                }
                key
            }
        };
        let log = db
            .open_event_log(args.event_store.as_deref())
            .await
            .context("opening the event log")?;
        if args.event_store.is_some() {
            tracing::info!("the event log is kept in KurrentDB; read models in the database");
        }
        workers::notifier::register(&db, &log)
            .await
            .context("registering the notifier")?;
        let keys = open_key_store(args, &db, &master).await?;
        let codec = EventCodec::new(Arc::new(keys));
        let exec = Executor::new(log.clone(), codec.clone())
            .with_snapshots(SnapshotStore::new(db.clone()));
        Ok(Self {
            db,
            log,
            codec,
            master,
            exec,
        })
    }

    /// The read models, plus `reactors`, over this storage (not prepared yet).
    pub fn runner(&self, reactors: Vec<Arc<dyn Reactor>>) -> Arc<ProjectionRunner> {
        Arc::new(
            ProjectionRunner::new(
                self.db.clone(),
                self.log.clone(),
                Arc::new(self.codec.clone()),
                projections::all(&FieldSealer::new(self.codec.keys().clone())),
            )
            .with_reactors(reactors),
        )
    }
}

/// The blob store `args` select: files under `<data_dir>/blobs`, or an S3 bucket every node
/// shares (reached with the service's outbound client: no proxy from the environment, no
/// redirect followed). Nothing is sent to S3 here; `accounts doctor` probes the bucket.
pub fn open_blob_store(args: &BlobArgs, data_dir: &Path) -> anyhow::Result<Arc<dyn BlobStore>> {
    let Some(settings) = args.s3_settings()? else {
        return Ok(Arc::new(FolderBlobStore::new(data_dir.join("blobs"))));
    };
    let store = s3_blob_store(args, &settings)?;
    tracing::info!(bucket = %store.bucket_url(), "blobs are kept in S3");
    Ok(Arc::new(store))
}

/// The S3 store of `settings`, with the timeout of `args`.
pub fn s3_blob_store(
    args: &BlobArgs,
    settings: &store::s3::S3Settings,
) -> anyhow::Result<S3BlobStore> {
    let client = crate::state::outbound_http_client().context("building the S3 client")?;
    Ok(S3BlobStore::new(settings, client)
        .context("--blob-store s3")?
        .with_timeout(args.blob_s3_timeout))
}

/// The data keys, in their own store when one is configured (or, embedded, in
/// `<data-dir>/keys.db`): a backup of the data then holds none of them.
async fn open_key_store(
    args: &StorageArgs,
    db: &Database,
    master: &MasterKey,
) -> anyhow::Result<DataKeys> {
    let Some(url) = args.key_store(db) else {
        tracing::warn!(
            "the data keys are kept in the database they seal, so its backups hold them \
             too; set ACCOUNTS_KEY_DATABASE_URL to a database of their own"
        );
        return Ok(DataKeys::new(db.clone(), master));
    };
    let store = Database::connect(&url, 4)
        .await
        .context("connecting to the key store")?;
    DataKeys::prepare_store(&store)
        .await
        .context("preparing the key store")?;
    let keys = DataKeys::new(store, master);
    let moved = keys
        .adopt_from(db)
        .await
        .context("moving data keys to the key store")?;
    if moved > 0 {
        tracing::info!(moved, "data keys moved to the key store");
    }
    Ok(keys)
}

impl StorageArgs {
    /// The database's URL: `--database-url`, else the SQLite file in the data directory.
    pub fn database(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => Database::sqlite_url(&self.data_dir.join("accounts.db")),
        }
    }

    /// The key store's URL when it is not `db` itself: `--key-database-url`, else
    /// `keys.db` beside the embedded SQLite file.
    pub fn key_store(&self, db: &Database) -> Option<String> {
        let url = match (&self.key_database_url, db.backend()) {
            (Some(url), _) => Some(url.clone()),
            (None, Backend::Sqlite) => Some(Database::sqlite_url(&self.data_dir.join("keys.db"))),
            (None, Backend::Postgres) => None,
        };
        url.filter(|url| url != db.url())
    }
}
