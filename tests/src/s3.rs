//! A real S3-compatible server for the blob tests, started by the tests themselves (nothing
//! to install): [s3s](https://crates.io/crates/s3s) parses the S3 protocol and checks every
//! request's SigV4 signature against one access key (`SimpleAuth`), so a wrong secret is
//! refused as AWS would (`SignatureDoesNotMatch`); s3s-fs keeps the objects as files in a
//! temporary folder; hyper serves it on `127.0.0.1`, on a free port.
//!
//! Buckets are reached path style (`http://127.0.0.1:<port>/<bucket>/<key>`,
//! [`S3Server::endpoint`]) or virtual-host style (`http://<bucket>.localhost:<port>/<key>`
//! from [`S3Server::virtual_host_endpoint`]); a client from [`S3Server::client_resolving`]
//! resolves `<bucket>.localhost` to the server without asking DNS.
//!
//! One rule is added to s3s-fs through s3s's access hook: a request for an object of a
//! bucket that does not exist is refused with `NoSuchBucket`, as S3 refuses it (s3s-fs
//! alone would create the bucket's folder on the first PUT).

use hyper_util::rt::TokioIo;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::host::MultiDomain;
use s3s::path::S3Path;
use s3s::service::S3ServiceBuilder;
use s3s::{S3Result, s3_error};
use std::net::SocketAddr;
use std::path::PathBuf;
use store::s3::S3Settings;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The region the server's clients sign for (s3s accepts any).
pub const REGION: &str = "us-east-1";

/// A running S3-compatible server with one bucket; stopped (and its folder removed) when
/// dropped.
pub struct S3Server {
    /// Where it listens.
    pub address: SocketAddr,
    /// The one access key id it knows.
    pub access_key_id: String,
    /// That key's secret.
    pub secret_access_key: String,
    /// The bucket created at start.
    pub bucket: String,
    root: tempfile::TempDir,
    accept: JoinHandle<()>,
}

impl S3Server {
    /// Starts a server with a bucket of a random name and a random key pair.
    pub async fn start() -> S3Server {
        let root = tempfile::tempdir().expect("a folder for the objects");
        let bucket = format!("blobs-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        std::fs::create_dir(root.path().join(&bucket)).expect("the bucket's folder");
        let access_key_id = format!("AKTEST{}", &uuid::Uuid::new_v4().simple().to_string()[..14])
            .to_ascii_uppercase();
        let secret_access_key = format!("secret-{}", uuid::Uuid::new_v4().simple());

        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let address = listener.local_addr().expect("local address");
        let port = address.port();

        let fs = s3s_fs::FileSystem::new(root.path()).expect("the object folder");
        let mut service = S3ServiceBuilder::new(fs);
        service.set_auth(SimpleAuth::from_single(
            access_key_id.clone(),
            secret_access_key.clone(),
        ));
        service.set_access(ExistingBuckets {
            root: root.path().to_owned(),
        });
        // `Host: 127.0.0.1:<port>` or `localhost:<port>` is path style;
        // `<bucket>.localhost:<port>` names the bucket.
        service.set_host(
            MultiDomain::new([format!("localhost:{port}"), format!("127.0.0.1:{port}")])
                .expect("valid domains"),
        );
        let service = service.build();

        let accept = tokio::spawn(async move {
            // Dropped with this task, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
                // Forget connections that ended.
                while connections.try_join_next().is_some() {}
            }
        });

        S3Server {
            address,
            access_key_id,
            secret_access_key,
            bucket,
            root,
            accept,
        }
    }

    /// The path-style endpoint: `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The endpoint virtual-host addressing appends bucket names to:
    /// `http://localhost:<port>` (buckets at `<bucket>.localhost:<port>`).
    pub fn virtual_host_endpoint(&self) -> String {
        format!("http://localhost:{}", self.address.port())
    }

    /// Settings for the bucket, path style, with the server's key.
    pub fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint()),
            region: REGION.to_owned(),
            bucket: self.bucket.clone(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            force_path_style: true,
        }
    }

    /// Settings for the bucket, virtual-host style (use with [`Self::client_resolving`]).
    pub fn virtual_host_settings(&self) -> S3Settings {
        S3Settings {
            endpoint: Some(self.virtual_host_endpoint()),
            force_path_style: false,
            ..self.settings()
        }
    }

    /// A client that reaches `<bucket>.localhost` at this server for each of `buckets`
    /// (and `localhost` itself), whatever DNS would say.
    pub fn client_resolving(&self, buckets: &[&str]) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .resolve("localhost", self.address);
        for bucket in buckets {
            builder = builder.resolve(&format!("{bucket}.localhost"), self.address);
        }
        builder.build().expect("an HTTP client")
    }

    /// Points `serve`'s blob store at this server's bucket (path style).
    pub fn configure(&self, serve: &mut api::ServeArgs) {
        serve.blobs = api::config::BlobArgs {
            blob_store: api::config::BlobStoreKind::S3,
            blob_s3_endpoint: Some(self.endpoint()),
            blob_s3_region: REGION.to_owned(),
            blob_s3_bucket: Some(self.bucket.clone()),
            blob_s3_access_key_id: Some(self.access_key_id.clone()),
            blob_s3_secret_access_key: Some(self.secret_access_key.clone()),
            blob_s3_force_path_style: true,
            blob_s3_timeout: std::time::Duration::from_secs(10),
        };
    }

    /// The same as command-line flags.
    pub fn flags(&self) -> Vec<String> {
        [
            "--blob-store",
            "s3",
            "--blob-s3-endpoint",
            &self.endpoint(),
            "--blob-s3-bucket",
            &self.bucket,
            "--blob-s3-access-key-id",
            &self.access_key_id,
            "--blob-s3-secret-access-key",
            &self.secret_access_key,
            "--blob-s3-force-path-style",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Where the server keeps the object `key` of its bucket: tests look at the files to
    /// see what the server really holds.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(&self.bucket).join(key)
    }

    /// Every object of the bucket, as keys, sorted (s3s-fs keeps its bookkeeping beside the
    /// bucket's folder, not in it).
    pub fn objects(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, prefix: &str, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = format!("{prefix}{name}");
                if entry.path().is_dir() {
                    walk(&entry.path(), &format!("{key}/"), out);
                } else {
                    out.push(key);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.path().join(&self.bucket), "", &mut out);
        out.sort();
        out
    }
}

/// Signed requests only, and objects only in buckets that exist (checked after the
/// signature: a wrong secret is still `SignatureDoesNotMatch`).
struct ExistingBuckets {
    root: PathBuf,
}

#[async_trait::async_trait]
impl S3Access for ExistingBuckets {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_none() {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        }
        if let S3Path::Object { bucket, .. } = cx.s3_path()
            && !self.root.join(&**bucket).is_dir()
        {
            return Err(s3_error!(
                NoSuchBucket,
                "The specified bucket does not exist"
            ));
        }
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
