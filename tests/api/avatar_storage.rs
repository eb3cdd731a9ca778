//! Where avatars are kept: sealed with the account's data key (so destroying the key
//! erases every copy, a backup's or an orphan's), one blob per account however uploads
//! race, and avatars stored before sealing still served.

use crate::profile::{avatar_bytes, picture, put_avatar};
use image::ImageFormat;
use reqwest::StatusCode;
use std::path::PathBuf;
use store::Backend;
use tests::{Session, TestApp, json_body, spawn_app};

/// The blob files of `session`'s account.
async fn avatar_files(app: &TestApp, session: &Session) -> Vec<PathBuf> {
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    let folder = app
        .data_dir()
        .join("blobs/avatars")
        .join(me["account_id"].as_str().unwrap());
    match std::fs::read_dir(&folder) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

async fn avatars_are_sealed_and_one_blob_survives_racing_uploads(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    let uploaded = put_avatar(
        &app,
        &session,
        "image/png",
        picture(64, 64, ImageFormat::Png),
    )
    .await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let served = avatar_bytes(&app, &session).await.expect("an avatar");
    assert!(served.starts_with(b"\x89PNG"));
    let files = avatar_files(&app, &session).await;
    assert_eq!(files.len(), 1, "{files:?}");
    let stored = std::fs::read(&files[0]).unwrap();
    assert!(
        !stored.windows(4).any(|w| w == b"IDAT") && !stored.starts_with(b"\x89PNG"),
        "the stored blob is no PNG in the clear"
    );

    // An avatar stored before blobs were sealed (the PNG itself) is served as it is.
    std::fs::write(&files[0], &served).unwrap();
    assert_eq!(avatar_bytes(&app, &session).await, Some(served.clone()));

    // Two uploads at once: each replaces the avatar the other one's decision saw, so one
    // blob remains, the avatar's.
    for round in 0..3 {
        let (a, b) = tokio::join!(
            put_avatar(
                &app,
                &session,
                "image/png",
                picture(40 + round, 40, ImageFormat::Png)
            ),
            put_avatar(
                &app,
                &session,
                "image/png",
                picture(48, 48 + round, ImageFormat::Png)
            ),
        );
        assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
        let files = avatar_files(&app, &session).await;
        assert_eq!(files.len(), 1, "round {round}: {files:?}");
        assert!(avatar_bytes(&app, &session).await.is_some());
    }

    let removed = app.delete("/me/avatar", Some(&session.token)).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(avatar_files(&app, &session).await, Vec::<PathBuf>::new());
}

on_both_backends!(avatars_are_sealed_and_one_blob_survives_racing_uploads);
