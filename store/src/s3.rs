//! Blobs in an S3 bucket: AWS S3 or any S3-compatible server (MinIO, Ceph, Garage, R2…), so
//! that several API nodes share one store.
//!
//! [`S3BlobStore`] implements [`BlobStore`] with three requests, PUT, GET and DELETE of an
//! object, each signed with AWS Signature Version 4 by [`rusty_s3`] (a sans-IO signer: it
//! builds a presigned URL, valid for a few minutes, and sends nothing) and sent by the
//! `reqwest::Client` the caller gives, with a timeout on every request. Buckets are
//! addressed virtual-host style (`https://<bucket>.<endpoint host>/<key>`) or, with
//! [`S3Settings::force_path_style`], path style (`https://<endpoint host>/<bucket>/<key>`,
//! what most self-hosted servers and endpoints given as an IP address need).
//!
//! An error answer of S3 is reported by its XML `<Code>` and `<Message>`
//! (`SignatureDoesNotMatch: The request signature we calculated does not match…`); no
//! error, `Debug` output or log line ever holds the secret access key, nor a signed URL.
//!
//! [`probe`] checks that settings work end to end (write, read back, delete a sentinel
//! object) and says which step failed, for a user configuring a bucket of their own.

use crate::blobs::{BlobStore, valid_key};
use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::time::Duration;

/// How long one request to S3 may take, body included, unless [`S3BlobStore::with_timeout`]
/// says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest object a GET reads, unless [`S3BlobStore::with_max_object_bytes`] says
/// otherwise: a misbehaving endpoint cannot make the service buffer more than this.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 64 * 1024 * 1024;

/// The most of an error answer's body that is read (S3's error documents are a few hundred
/// bytes).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;

/// The folder of the sentinel objects [`probe`] writes (and deletes).
pub const PROBE_PREFIX: &str = ".accounts-probe/";

/// Where and how to reach a bucket. Its `Debug` shows everything but the secret access key.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The service's base URL (`https://s3.eu-central-1.amazonaws.com`,
    /// `http://minio:9000`); `None` for AWS S3 in `region`
    /// (`https://s3.<region>.amazonaws.com`). A path is kept as a prefix of every URL.
    pub endpoint: Option<String>,
    /// The region requests are signed for (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key: it signs requests and is never sent nor shown.
    pub secret_access_key: String,
    /// Address the bucket in the path (`<endpoint>/<bucket>/<key>`) rather than in the host
    /// name (`<bucket>.<endpoint host>/<key>`).
    pub force_path_style: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            endpoint,
            region,
            bucket,
            access_key_id,
            secret_access_key: _,
            force_path_style,
        } = self;
        f.debug_struct("S3Settings")
            .field("endpoint", endpoint)
            .field("region", region)
            .field("bucket", bucket)
            .field("access_key_id", access_key_id)
            .field("secret_access_key", &"<hidden>")
            .field("force_path_style", force_path_style)
            .finish()
    }
}

impl S3Settings {
    /// The endpoint as a URL: the one given, else AWS S3's for the region.
    pub fn endpoint_url(&self) -> Result<Url, S3Error> {
        let text = match &self.endpoint {
            Some(endpoint) => endpoint.trim().to_owned(),
            None if self.region.trim().is_empty() => {
                return Err(S3Error::Settings(
                    "give an endpoint, or a region for AWS S3".into(),
                ));
            }
            None => format!("https://s3.{}.amazonaws.com", self.region.trim()),
        };
        let url = Url::parse(&text)
            .map_err(|e| S3Error::Settings(format!("the endpoint is not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(S3Error::Settings(
                "the endpoint must not carry credentials; give the access key instead".into(),
            ));
        }
        Ok(url)
    }
}

/// What went wrong talking to S3. Its text never holds the secret access key nor a signed
/// URL.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The settings cannot work (no endpoint, a bucket name that cannot be a host name…).
    #[error("invalid S3 settings: {0}")]
    Settings(String),
    /// The key is not one blobs may have (see [`crate::FolderBlobStore`]).
    #[error("invalid blob key")]
    InvalidKey,
    /// S3 answered with an error.
    #[error("{}", service_error_text(*.status, .code.as_deref(), .message.as_deref()))]
    Service {
        /// The HTTP status.
        status: u16,
        /// S3's `<Code>` (`NoSuchBucket`, `SignatureDoesNotMatch`, `AccessDenied`…), if the
        /// answer had one.
        code: Option<String>,
        /// S3's `<Message>`, if the answer had one.
        message: Option<String>,
    },
    /// No complete answer within the timeout.
    #[error("S3 did not answer within {0:?}")]
    Timeout(Duration),
    /// The object is larger than the store reads.
    #[error("the object is larger than {0} bytes")]
    TooLarge(usize),
    /// The request could not be sent or its answer read (connection refused, TLS, DNS…).
    #[error("S3 request failed: {0}")]
    Transport(String),
}

fn service_error_text(status: u16, code: Option<&str>, message: Option<&str>) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|reason| format!(" {reason}"))
        .unwrap_or_default();
    match (code, message) {
        (Some(code), Some(message)) => format!("{code}: {message} (HTTP {status})"),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        (None, _) => format!("HTTP {status}{reason} without an S3 error code"),
    }
}

impl S3Error {
    /// S3's error code, if the error is S3's answer and had one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    fn transport(error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            return Self::Timeout(timeout);
        }
        // Without its URL: a presigned URL is a credential for a few minutes.
        let error = error.without_url();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Transport(text)
    }
}

impl From<S3Error> for io::Error {
    fn from(error: S3Error) -> Self {
        let kind = match &error {
            S3Error::InvalidKey | S3Error::Settings(_) => io::ErrorKind::InvalidInput,
            S3Error::Timeout(_) => io::ErrorKind::TimedOut,
            S3Error::Service { status: 403, .. } => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// Blobs as objects of an S3 bucket; keys are the same as [`crate::FolderBlobStore`]'s.
#[derive(Clone)]
pub struct S3BlobStore {
    bucket: Bucket,
    credentials: Credentials,
    client: reqwest::Client,
    timeout: Duration,
    max_object_bytes: usize,
}

impl fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("bucket_url", &self.bucket.base_url().as_str())
            .field("region", &self.bucket.region())
            .field("credentials", &self.credentials)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl S3BlobStore {
    /// The bucket `settings` name, reached with `client` (which decides TLS roots, proxies,
    /// redirects and name resolution; give it no redirect policy: a redirect is S3 saying
    /// the region or endpoint is wrong, and is reported as such).
    pub fn new(settings: &S3Settings, client: reqwest::Client) -> Result<Self, S3Error> {
        let endpoint = settings.endpoint_url()?;
        if !valid_bucket_name(&settings.bucket) {
            return Err(S3Error::Settings(
                "a bucket name is 3 to 63 letters, digits, dots, hyphens or underscores, \
                 starting and ending with a letter or digit"
                    .into(),
            ));
        }
        if settings.access_key_id.is_empty() || settings.secret_access_key.is_empty() {
            return Err(S3Error::Settings(
                "the access key id and the secret access key are both needed".into(),
            ));
        }
        let region = match settings.region.trim() {
            "" => "us-east-1".to_owned(),
            region => region.to_owned(),
        };
        let style = if settings.force_path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket =
            Bucket::new(endpoint, style, settings.bucket.clone(), region).map_err(|e| {
                let hint = if settings.force_path_style {
                    ""
                } else {
                    " (virtual-host addressing needs a host name and a bucket name valid in \
                     one; an endpoint given as an IP address needs path style)"
                };
                S3Error::Settings(format!("no URL for the bucket: {e}{hint}"))
            })?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(
                settings.access_key_id.clone(),
                settings.secret_access_key.clone(),
            ),
            client,
            timeout: DEFAULT_TIMEOUT,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        })
    }

    /// The same store, its requests limited to `timeout` each.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same store, reading objects of at most `bytes`.
    pub fn with_max_object_bytes(mut self, bytes: usize) -> Self {
        self.max_object_bytes = bytes;
        self
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }

    /// The bucket's base URL (objects are under it), unsigned.
    pub fn bucket_url(&self) -> &Url {
        self.bucket.base_url()
    }

    /// How long a presigned URL stays valid: long enough for a request that starts now and
    /// takes its whole timeout.
    fn expires_in(&self) -> Duration {
        self.timeout + Duration::from_secs(60)
    }

    fn check(key: &str) -> Result<(), S3Error> {
        if valid_key(key) {
            Ok(())
        } else {
            Err(S3Error::InvalidKey)
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, S3Error> {
        request
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| S3Error::transport(e, self.timeout))
    }

    /// Stores `bytes` under `key` (PutObject), replacing what was there.
    pub async fn put_object(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        Self::check(key)?;
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(self.expires_in());
        let length = bytes.len();
        let response = self
            .send(
                self.client
                    .put(url)
                    // reqwest leaves it out of an empty body; S3 wants it on every PUT.
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .body(bytes),
            )
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.error(response).await)
    }

    /// The object under `key` (GetObject), or `None` when S3 says there is none
    /// (`NoSuchKey`; a missing bucket is an error).
    pub async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        Self::check(key)?;
        let url = self
            .bucket
            .get_object(Some(&self.credentials), key)
            .sign(self.expires_in());
        let response = self.send(self.client.get(url)).await?;
        let status = response.status();
        if status.is_success() {
            return self
                .read_limited(response, self.max_object_bytes)
                .await
                .map(Some);
        }
        match self.error(response).await {
            S3Error::Service {
                status: 404,
                code: Some(code),
                ..
            } if code == "NoSuchKey" => Ok(None),
            error => Err(error),
        }
    }

    /// Deletes the object under `key` (DeleteObject); deleting a missing object is fine.
    pub async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        Self::check(key)?;
        let url = self
            .bucket
            .delete_object(Some(&self.credentials), key)
            .sign(self.expires_in());
        let response = self.send(self.client.delete(url)).await?;
        if response.status().is_success() {
            return Ok(());
        }
        match self.error(response).await {
            // S3 answers 204 for a missing object; some compatible servers say NoSuchKey.
            S3Error::Service {
                status: 404,
                code: Some(code),
                ..
            } if code == "NoSuchKey" => Ok(()),
            error => Err(error),
        }
    }

    /// The body of `response`, at most `limit` bytes (more is an error).
    async fn read_limited(
        &self,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, S3Error> {
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(S3Error::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| S3Error::transport(e, self.timeout))?
        {
            if body.len() + chunk.len() > limit {
                return Err(S3Error::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The error an unsuccessful `response` reports.
    async fn error(&self, response: reqwest::Response) -> S3Error {
        let status = response.status().as_u16();
        // A body too large or cut short still leaves the status to report.
        let body = self
            .read_limited(response, MAX_ERROR_BODY_BYTES)
            .await
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&body);
        let (code, message) = parse_error_body(&body);
        let message = message.or_else(|| code.as_deref().and_then(hint).map(str::to_owned));
        S3Error::Service {
            status,
            code,
            message,
        }
    }
}

/// Whether `name` can be a bucket's (S3's rules, with the upper case and underscores of
/// legacy and self-hosted buckets allowed): never a path segment such as `..` that would
/// move a URL out of the bucket.
fn valid_bucket_name(name: &str) -> bool {
    let edges_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && edges_ok(name.chars().next())
        && edges_ok(name.chars().last())
}

/// S3's `<Error><Code>…</Code><Message>…</Message></Error>`: the code and message, if the
/// body has them (a message is cut at 500 characters and kept on one line).
fn parse_error_body(body: &str) -> (Option<String>, Option<String>) {
    fn element(body: &str, name: &str) -> Option<String> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = start + body[start..].find(&close)?;
        let text = unescape(&body[start..end]);
        let text: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(500)
            .collect();
        (!text.is_empty()).then_some(text)
    }
    (element(body, "Code"), element(body, "Message"))
}

/// What a well-known error code means, for servers that send the code without a message.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "SignatureDoesNotMatch" => {
            "the request's signature does not match: check the secret access key"
        }
        "InvalidAccessKeyId" | "NotSignedUp" => "the access key id is not known there",
        "NoSuchBucket" => "the bucket does not exist",
        "AccessDenied" => "the key is not allowed to do this",
        "RequestTimeTooSkewed" => "this machine's clock is too far from the server's",
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => {
            "the bucket is in another region or behind another endpoint"
        }
        _ => return None,
    })
}

/// The text of XML character data: the five predefined entities and numeric references.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        Ok(self.put_object(key, bytes).await?)
    }

    async fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.get_object(key).await?)
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        Ok(self.delete_object(key).await?)
    }
}

/// A step of [`probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStep {
    /// Writing the sentinel object.
    Put,
    /// Reading it back.
    Get,
    /// Comparing what was read with what was written.
    Verify,
    /// Deleting it.
    Delete,
}

impl ProbeStep {
    /// The step's name as it serialises: `put`, `get`, `verify`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
            Self::Verify => "verify",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for ProbeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`probe`] failed: the step, and what the store said (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("the storage probe failed at {step}: {message}")]
pub struct ProbeFailure {
    /// The step that failed.
    pub step: ProbeStep,
    /// The store's error (`SignatureDoesNotMatch: …`, `NoSuchBucket: …`), or what differed.
    pub message: String,
}

impl ProbeFailure {
    fn new(step: ProbeStep, message: impl ToString) -> Self {
        Self {
            step,
            message: message.to_string(),
        }
    }
}

/// Checks that `store` works end to end: writes a small sentinel object under a random key
/// in [`PROBE_PREFIX`] (`.accounts-probe/<uuid>`), reads it back, checks the bytes are the
/// ones written, and deletes it. The first step that fails is the answer, with the store's
/// error: a wrong secret fails at [`ProbeStep::Put`] with `SignatureDoesNotMatch`, a
/// missing bucket with `NoSuchBucket`, a key allowed to write but not read at
/// [`ProbeStep::Get`] with `AccessDenied`. After a failed read or comparison the sentinel is
/// deleted all the same (as far as the store lets it be); a failed delete leaves it behind,
/// under the prefix.
///
/// Each request is bounded by the store's timeout, so a probe takes at most three of them.
pub async fn probe(store: &S3BlobStore) -> Result<(), ProbeFailure> {
    let id = uuid::Uuid::new_v4();
    let key = format!("{PROBE_PREFIX}{}", id.simple());
    let sentinel = format!("accounts storage probe {id}").into_bytes();
    store
        .put_object(&key, sentinel.clone())
        .await
        .map_err(|e| ProbeFailure::new(ProbeStep::Put, e))?;
    let checked = match store.get_object(&key).await {
        Err(error) => Err(ProbeFailure::new(ProbeStep::Get, error)),
        Ok(None) => Err(ProbeFailure::new(
            ProbeStep::Verify,
            "the object just written is not there",
        )),
        Ok(Some(bytes)) if bytes != sentinel => Err(ProbeFailure::new(
            ProbeStep::Verify,
            format!(
                "read back {} bytes that differ from the {} written",
                bytes.len(),
                sentinel.len()
            ),
        )),
        Ok(Some(_)) => Ok(()),
    };
    let deleted = store
        .delete_object(&key)
        .await
        .map_err(|e| ProbeFailure::new(ProbeStep::Delete, e));
    checked.and(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> S3Settings {
        S3Settings {
            endpoint: Some("http://s3.example.test:9000".into()),
            region: "eu-west-1".into(),
            bucket: "avatars".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "s3-secret-value".into(),
            force_path_style: false,
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let settings = settings();
        let store = S3BlobStore::new(&settings, reqwest::Client::new()).unwrap();
        let shown = format!("{settings:?} {settings:#?} {store:?} {store:#?}");
        assert!(!shown.contains("s3-secret-value"), "{shown}");
        assert!(shown.contains("AKIAEXAMPLE"), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }

    #[test]
    fn buckets_are_addressed_by_host_or_by_path() {
        let mut settings = settings();
        let store = S3BlobStore::new(&settings, reqwest::Client::new()).unwrap();
        assert_eq!(
            store.bucket_url().as_str(),
            "http://avatars.s3.example.test:9000/"
        );
        settings.force_path_style = true;
        settings.endpoint = Some("http://127.0.0.1:9000/prefix".into());
        let store = S3BlobStore::new(&settings, reqwest::Client::new()).unwrap();
        assert_eq!(
            store.bucket_url().as_str(),
            "http://127.0.0.1:9000/prefix/avatars/"
        );
        settings.endpoint = None;
        let store = S3BlobStore::new(&settings, reqwest::Client::new()).unwrap();
        assert_eq!(
            store.bucket_url().as_str(),
            "https://s3.eu-west-1.amazonaws.com/avatars/"
        );
    }

    #[test]
    fn unusable_settings_are_refused_clearly() {
        let mut ip = settings();
        ip.endpoint = Some("http://127.0.0.1:9000".into());
        let error = S3BlobStore::new(&ip, reqwest::Client::new()).unwrap_err();
        assert!(error.to_string().contains("path style"), "{error}");

        let mut credentials_in_url = settings();
        credentials_in_url.endpoint = Some("http://user:pass@s3.example.test".into());
        let error = S3BlobStore::new(&credentials_in_url, reqwest::Client::new()).unwrap_err();
        assert!(error.to_string().contains("credentials"), "{error}");
        assert!(!error.to_string().contains("pass"), "{error}");

        let mut nowhere = settings();
        nowhere.endpoint = None;
        nowhere.region = String::new();
        assert!(S3BlobStore::new(&nowhere, reqwest::Client::new()).is_err());

        for bucket in [
            "", "..", "a", "a/b", "-avatars", "avatars.", "ava tars", "%2e%2e",
        ] {
            let mut bad = settings();
            bad.bucket = bucket.into();
            bad.force_path_style = true;
            let error = S3BlobStore::new(&bad, reqwest::Client::new()).unwrap_err();
            assert!(
                error.to_string().contains("bucket name"),
                "{bucket}: {error}"
            );
        }

        let mut not_a_url = settings();
        not_a_url.endpoint = Some("s3.example.test".into());
        assert!(S3BlobStore::new(&not_a_url, reqwest::Client::new()).is_err());
    }

    #[tokio::test]
    async fn keys_that_could_leave_the_bucket_path_are_refused_before_any_request() {
        let mut settings = settings();
        // Nothing listens there: a request would fail differently.
        settings.endpoint = Some("http://127.0.0.1:9".into());
        settings.force_path_style = true;
        let store = S3BlobStore::new(&settings, reqwest::Client::new()).unwrap();
        for bad in [
            "",
            "../other-bucket/x",
            "/abs",
            "a//b",
            "a/./b",
            "sp ace",
            "a?b",
        ] {
            assert!(
                matches!(store.get_object(bad).await, Err(S3Error::InvalidKey)),
                "{bad}"
            );
        }
    }

    #[test]
    fn s3_error_documents_become_code_and_message() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided. Check your key &amp; signing method.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"#;
        let (code, message) = parse_error_body(body);
        assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(
            message.as_deref(),
            Some(
                "The request signature we calculated does not match the signature you \
                 provided. Check your key & signing method."
            )
        );
        let error = S3Error::Service {
            status: 403,
            code,
            message,
        };
        assert!(
            error
                .to_string()
                .starts_with("SignatureDoesNotMatch: The request signature"),
            "{error}"
        );
        assert_eq!(parse_error_body("<html>Bad gateway</html>"), (None, None));
        let bare = S3Error::Service {
            status: 502,
            code: None,
            message: None,
        };
        assert_eq!(
            bare.to_string(),
            "HTTP 502 Bad Gateway without an S3 error code"
        );
        assert_eq!(
            unescape("a &lt;b&gt; &#65;&#x42; & c &bogus;"),
            "a <b> AB & c &bogus;"
        );
    }

    #[test]
    fn probe_steps_serialise_in_lower_case() {
        let failure = ProbeFailure::new(ProbeStep::Verify, "differs");
        assert_eq!(
            serde_json::to_value(&failure).unwrap(),
            serde_json::json!({"step": "verify", "message": "differs"})
        );
        for step in [
            ProbeStep::Put,
            ProbeStep::Get,
            ProbeStep::Verify,
            ProbeStep::Delete,
        ] {
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                serde_json::json!(step.as_str())
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_fails_the_probe_at_put_without_the_signed_url() {
        let mut settings = settings();
        settings.endpoint = Some("http://127.0.0.1:9".into());
        settings.force_path_style = true;
        let store = S3BlobStore::new(&settings, reqwest::Client::new())
            .unwrap()
            .with_timeout(Duration::from_secs(5));
        let failure = probe(&store).await.unwrap_err();
        assert_eq!(failure.step, ProbeStep::Put);
        assert!(
            !failure.message.contains("X-Amz-Signature"),
            "{}",
            failure.message
        );
        assert!(!failure.message.contains("s3-secret-value"));
    }
}
