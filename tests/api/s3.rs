//! Blobs in S3, against a real S3-compatible server the tests start (`tests::s3::S3Server`:
//! s3s, which checks every request's signature, over s3s-fs): the store on its own, path
//! style and virtual-host style; the probe; and two service nodes sharing one bucket.

use image::{ImageFormat, RgbImage};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::io::Cursor;
use std::time::Duration;
use store::s3::{ProbeStep, S3BlobStore, S3Error, S3Settings, probe};
use store::{Backend, BlobStore};
use tests::s3::S3Server;
use tests::{PASSWORD, Session, TestApp, eventually, spawn_app_with};

fn store(settings: &S3Settings, client: reqwest::Client) -> S3BlobStore {
    S3BlobStore::new(settings, client)
        .expect("valid settings")
        .with_timeout(Duration::from_secs(10))
}

/// Put, read back, replace, delete, and the answers for a missing object, each checked
/// against the files the server really holds.
async fn stores_reads_replaces_and_deletes(server: &S3Server, blobs: &S3BlobStore) {
    let key = "avatars/0f3a/b7.png";
    assert_eq!(blobs.get(key).await.unwrap(), None, "nothing there yet");
    blobs.put(key, b"first".to_vec()).await.unwrap();
    assert_eq!(std::fs::read(server.object_file(key)).unwrap(), b"first");
    assert_eq!(blobs.get(key).await.unwrap(), Some(b"first".to_vec()));

    blobs.put(key, b"second".to_vec()).await.unwrap();
    assert_eq!(blobs.get(key).await.unwrap(), Some(b"second".to_vec()));
    blobs.put("avatars/empty", Vec::new()).await.unwrap();
    assert_eq!(blobs.get("avatars/empty").await.unwrap(), Some(Vec::new()));
    assert_eq!(server.objects(), ["avatars/0f3a/b7.png", "avatars/empty"]);

    blobs.delete(key).await.unwrap();
    assert!(!server.object_file(key).exists());
    blobs
        .delete(key)
        .await
        .expect("deleting a missing blob is fine");
    assert_eq!(blobs.get(key).await.unwrap(), None);
    assert_eq!(blobs.get("avatars/never-written").await.unwrap(), None);
    blobs.delete("avatars/empty").await.unwrap();
    assert!(server.objects().is_empty());
}

#[tokio::test]
async fn path_style_stores_reads_and_deletes() {
    let server = S3Server::start().await;
    let blobs = store(&server.settings(), reqwest::Client::new());
    assert_eq!(
        blobs.bucket_url().as_str(),
        format!("{}/{}/", server.endpoint(), server.bucket)
    );
    stores_reads_replaces_and_deletes(&server, &blobs).await;

    // A GET reads no more than the store allows.
    blobs.put("avatars/big", vec![7; 10]).await.unwrap();
    let small = blobs.clone().with_max_object_bytes(4);
    assert!(matches!(
        small.get_object("avatars/big").await,
        Err(S3Error::TooLarge(4))
    ));
    assert_eq!(blobs.get("avatars/big").await.unwrap(), Some(vec![7; 10]));
}

#[tokio::test]
async fn virtual_host_style_stores_reads_and_deletes() {
    let server = S3Server::start().await;
    let blobs = store(
        &server.virtual_host_settings(),
        server.client_resolving(&[&server.bucket]),
    );
    // The bucket is in the host name, not the path: the server must read it from `Host`.
    assert_eq!(
        blobs.bucket_url().as_str(),
        format!(
            "http://{}.localhost:{}/",
            server.bucket,
            server.address.port()
        )
    );
    stores_reads_replaces_and_deletes(&server, &blobs).await;
}

#[tokio::test]
async fn the_probe_passes_with_the_right_secret_and_leaves_nothing_behind() {
    let server = S3Server::start().await;
    probe(&store(&server.settings(), reqwest::Client::new()))
        .await
        .expect("path style");
    probe(&store(
        &server.virtual_host_settings(),
        server.client_resolving(&[&server.bucket]),
    ))
    .await
    .expect("virtual-host style");
    assert!(server.objects().is_empty(), "{:?}", server.objects());
}

#[tokio::test]
async fn a_wrong_secret_fails_the_probe_at_put_with_the_signature_error() {
    let server = S3Server::start().await;
    let wrong_secret = "not-the-secret-7f3b9c";
    for (settings, client) in [
        (server.settings(), reqwest::Client::new()),
        (
            server.virtual_host_settings(),
            server.client_resolving(&[&server.bucket]),
        ),
    ] {
        let settings = S3Settings {
            secret_access_key: wrong_secret.to_owned(),
            ..settings
        };
        let failure = probe(&store(&settings, client)).await.unwrap_err();
        assert_eq!(failure.step, ProbeStep::Put, "{failure}");
        assert!(
            failure.message.starts_with("SignatureDoesNotMatch: "),
            "{failure}"
        );
        assert!(failure.message.contains("secret access key"), "{failure}");
        assert!(failure.message.contains("HTTP 403"), "{failure}");
        for secret in [wrong_secret, &server.secret_access_key] {
            assert!(!failure.message.contains(secret), "{failure}");
        }
    }
    assert!(server.objects().is_empty());

    // Reads are signed too: an object there is not served to a wrong secret.
    let right = store(&server.settings(), reqwest::Client::new());
    right.put("avatars/kept", b"kept".to_vec()).await.unwrap();
    let wrong = store(
        &S3Settings {
            secret_access_key: wrong_secret.to_owned(),
            ..server.settings()
        },
        reqwest::Client::new(),
    );
    let error = wrong.get_object("avatars/kept").await.unwrap_err();
    assert_eq!(error.code(), Some("SignatureDoesNotMatch"), "{error}");
    let error = wrong.delete_object("avatars/kept").await.unwrap_err();
    assert_eq!(error.code(), Some("SignatureDoesNotMatch"), "{error}");
    assert_eq!(server.objects(), ["avatars/kept"]);
}

#[tokio::test]
async fn a_wrong_bucket_fails_clearly_and_is_never_taken_for_a_missing_object() {
    let server = S3Server::start().await;
    let missing = "no-such-bucket-4d2e";
    for (settings, client) in [
        (server.settings(), reqwest::Client::new()),
        (
            server.virtual_host_settings(),
            server.client_resolving(&[missing]),
        ),
    ] {
        let blobs = store(
            &S3Settings {
                bucket: missing.to_owned(),
                ..settings
            },
            client,
        );
        let failure = probe(&blobs).await.unwrap_err();
        assert_eq!(failure.step, ProbeStep::Put, "{failure}");
        assert!(
            failure
                .message
                .starts_with("NoSuchBucket: The specified bucket does not exist"),
            "{failure}"
        );
        // A GET in a missing bucket is an error, not "no such blob".
        let error = blobs.get("avatars/x").await.unwrap_err();
        assert!(error.to_string().starts_with("NoSuchBucket"), "{error}");
        assert!(blobs.delete("avatars/x").await.is_err());
    }
}

#[tokio::test]
async fn an_unknown_access_key_and_a_stopped_server_fail_at_put() {
    let server = S3Server::start().await;
    let unknown = S3Settings {
        access_key_id: "AKUNKNOWN000".to_owned(),
        ..server.settings()
    };
    let failure = probe(&store(&unknown, reqwest::Client::new()))
        .await
        .unwrap_err();
    assert_eq!(failure.step, ProbeStep::Put, "{failure}");
    assert!(failure.message.contains("HTTP 403"), "{failure}");

    let settings = server.settings();
    drop(server);
    let blobs = store(&settings, reqwest::Client::new());
    let error = blobs.put_object("avatars/x", vec![1]).await.unwrap_err();
    assert!(
        matches!(error, S3Error::Transport(_) | S3Error::Timeout(_)),
        "{error}"
    );
    assert!(!error.to_string().contains("X-Amz-Signature"), "{error}");
}

/// A colourful test picture as PNG.
fn picture(width: u32, height: u32, shade: u8) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, shade])
    });
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encode");
    bytes.into_inner()
}

async fn upload_avatar(app: &TestApp, session: &Session, png: Vec<u8>) {
    let uploaded = app
        .request(Method::PUT, "/me/avatar", Some(&session.token))
        .header(CONTENT_TYPE, "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK, "avatar upload");
}

async fn avatar(app: &TestApp, session: &Session) -> Vec<u8> {
    let response = app.get("/me/avatar", Some(&session.token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.unwrap().to_vec()
}

/// Waits until the bucket holds exactly `expected` (erasure runs in the background).
async fn wait_for_objects(server: &S3Server, expected: &[String]) {
    eventually(Duration::from_secs(20), || async move {
        let objects = server.objects();
        if objects == expected {
            Ok(())
        } else {
            Err(format!("the bucket holds {objects:?}, not {expected:?}"))
        }
    })
    .await;
}

/// Two nodes on one bucket: an avatar uploaded through one (sealed in the bucket) is served
/// by the other, a replaced one leaves the bucket, and deleting the account deletes the blob from S3.
async fn two_nodes_share_avatars_through_one_bucket(backend: Backend) {
    let server = S3Server::start().await;
    let a = spawn_app_with(backend, |setup| server.configure(&mut setup.serve)).await;
    let b = a.peer(|setup| server.configure(&mut setup.serve)).await;
    let (_, session) = a.signed_up().await;
    let me = tests::json_body(a.get("/me", Some(&session.token)).await).await;
    let account = me["account_id"].as_str().unwrap().to_owned();

    upload_avatar(&a, &session, picture(300, 200, 40)).await;
    let objects = server.objects();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(
        objects[0].starts_with(&format!("avatars/{account}/")),
        "{objects:?}"
    );
    // The object is sealed; both nodes serve the same PNG from it.
    let stored = std::fs::read(server.object_file(&objects[0])).unwrap();
    assert!(stored.starts_with(b"accounts.sealed-blob.v1\n"));
    let served = avatar(&b, &session).await;
    assert!(served.starts_with(b"\x89PNG"), "node b serves the avatar");
    assert_eq!(avatar(&a, &session).await, served);
    // Nothing went to the nodes' (shared) data folder.
    assert!(!a.data_dir().join("blobs").exists());

    // A new avatar through node b replaces the first in the bucket.
    upload_avatar(&b, &session, picture(200, 300, 200)).await;
    let replaced = server.objects();
    assert_eq!(replaced.len(), 1, "{replaced:?}");
    assert_ne!(replaced, objects);
    let new = avatar(&a, &session).await;
    assert!(
        new.starts_with(b"\x89PNG") && new != served,
        "node a serves the new one"
    );
    assert_eq!(avatar(&b, &session).await, new);

    let deleted = b
        .request(Method::DELETE, "/me", Some(&session.token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    wait_for_objects(&server, &[]).await;
}

/// `accounts doctor` probes the bucket and names the step and S3's error.
async fn the_doctor_probes_the_bucket(backend: Backend) {
    let server = S3Server::start().await;
    let app = spawn_app_with(backend, |setup| server.configure(&mut setup.serve)).await;
    let doctor = |extra: Vec<String>| {
        let mut args = vec!["accounts".to_owned(), "doctor".to_owned()];
        args.extend(app.storage_args.clone());
        args.extend(extra);
        async move { api::cli::run_from(args).await.expect("doctor runs") }
    };
    let healthy = doctor(server.flags()).await;
    assert_eq!(healthy.exit_code, 0, "{}", healthy.stdout);
    assert!(
        healthy
            .stdout
            .contains("stores, returns and deletes objects"),
        "{}",
        healthy.stdout
    );

    let mut wrong = server.flags();
    let at = wrong
        .iter()
        .position(|f| f == "--blob-s3-secret-access-key")
        .unwrap();
    wrong[at + 1] = "wrong-secret-e41c".to_owned();
    let refused = doctor(wrong).await;
    assert_eq!(refused.exit_code, 1, "{}", refused.stdout);
    assert!(
        refused
            .stdout
            .contains("failed at put (SignatureDoesNotMatch: "),
        "{}",
        refused.stdout
    );
    assert!(!refused.stdout.contains("wrong-secret-e41c"));
    assert!(server.objects().is_empty());
}

on_both_backends!(
    two_nodes_share_avatars_through_one_bucket,
    the_doctor_probes_the_bucket,
);
