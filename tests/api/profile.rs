//! The profile: display name, bio, the public creator page, and the avatar upload.

use image::{ImageFormat, RgbImage};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Cursor;
use store::Backend;
use tests::{Session, TestApp, error_code, json_body, spawn_app};

async fn patch(app: &TestApp, session: &Session, body: Value) -> reqwest::Response {
    app.request(Method::PATCH, "/me/profile", Some(&session.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn put_avatar(
    app: &TestApp,
    session: &Session,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.request(Method::PUT, "/me/avatar", Some(&session.token))
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A colourful test picture, encoded as `format`.
pub(crate) fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode");
    bytes.into_inner()
}

/// A JPEG carrying an EXIF segment with a camera location in it.
fn jpeg_with_exif(marker: &str) -> Vec<u8> {
    let jpeg = picture(300, 200, ImageFormat::Jpeg);
    let mut payload = b"Exif\0\0MM\0*\0\0\0\x08\0\0".to_vec();
    payload.extend_from_slice(marker.as_bytes());
    let length = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1, length[0], length[1]]);
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    chunk
}

/// A tiny, well-formed PNG whose header claims `width` x `height` pixels: the shape of a
/// decompression bomb, refused before any pixel is decoded.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut header = width.to_be_bytes().to_vec();
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit greyscale
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &header));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

pub(crate) async fn avatar_bytes(app: &TestApp, session: &Session) -> Option<Vec<u8>> {
    let response = app.get("/me/avatar", Some(&session.token)).await;
    match response.status() {
        StatusCode::OK => {
            assert_eq!(response.headers()[CONTENT_TYPE], "image/png");
            Some(response.bytes().await.unwrap().to_vec())
        }
        StatusCode::NOT_FOUND => None,
        other => panic!("GET /me/avatar answered {other}"),
    }
}

async fn the_profile_is_validated_and_public_only_on_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, session) = app.signed_up().await;
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    let account_id = me["account_id"].as_str().unwrap().to_owned();
    let public = format!("/profiles/{account_id}");

    // A bio counts characters people see, not bytes: 160 clapperboards fit.
    let bio = "🎬".repeat(160);
    let updated = patch(
        &app,
        &session,
        json!({"display_name": "Ada Director", "bio": bio}),
    )
    .await;
    assert_eq!(updated.status(), StatusCode::OK);
    let updated = json_body(updated).await;
    assert_eq!(updated["display_name"], "Ada Director");
    assert_eq!(updated["bio"], bio.as_str());

    for (body, field) in [
        (json!({"bio": "🎬".repeat(161)}), "bio"),
        (json!({"display_name": ""}), "display_name"),
        (json!({"display_name": "x".repeat(65)}), "display_name"),
        (json!({"public_profile": "yes"}), "public_profile"),
        // serde would read the struct from an array of its fields in order.
        (json!([null, null, null]), "object"),
    ] {
        let refused = patch(&app, &session, body.clone()).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = json_body(refused).await;
        assert!(
            error["error"]["message"].as_str().unwrap().contains(field),
            "{error}"
        );
    }
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    assert_eq!(
        me["display_name"], "Ada Director",
        "refusals change nothing"
    );
    assert_eq!(me["bio"], bio.as_str());

    // Private until the creator says otherwise, to everyone including the creator's peers.
    assert_eq!(app.get(&public, None).await.status(), StatusCode::NOT_FOUND);
    let (_, stranger) = app.signed_up().await;
    assert_eq!(
        app.get(&public, Some(&stranger.token)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        patch(&app, &session, json!({"public_profile": true}))
            .await
            .status(),
        StatusCode::OK
    );
    let shown = app.get(&public, None).await;
    assert_eq!(shown.status(), StatusCode::OK);
    let shown = json_body(shown).await;
    assert_eq!(shown["display_name"], "Ada Director");
    assert_eq!(shown["bio"], bio.as_str());
    assert!(
        !shown.to_string().contains(&email),
        "no e-mail on a public page"
    );
    assert_eq!(
        patch(&app, &session, json!({"public_profile": false}))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.get(&public, None).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/profiles/not-a-uuid", None).await.status(),
        StatusCode::NOT_FOUND
    );
    // A bio can be cleared.
    let cleared = json_body(patch(&app, &session, json!({"bio": ""})).await).await;
    assert!(
        cleared["bio"].is_null() || cleared["bio"] == "",
        "{cleared}"
    );
}

async fn avatars_are_judged_by_content_and_stored_square_without_metadata(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, session) = app.signed_up().await;
    assert_eq!(avatar_bytes(&app, &session).await, None);

    // A large PNG becomes a 512 px square PNG.
    let uploaded = put_avatar(
        &app,
        &session,
        "image/png",
        picture(1024, 600, ImageFormat::Png),
    )
    .await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let stored = avatar_bytes(&app, &session).await.expect("an avatar");
    let decoded = image::load_from_memory_with_format(&stored, ImageFormat::Png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (512, 512));

    // A JPEG sent as an anonymous blob: its EXIF location does not survive.
    let marker = "GPS 48.8584N 2.2945E Eiffel";
    let photo = jpeg_with_exif(marker);
    assert!(photo.windows(marker.len()).any(|w| w == marker.as_bytes()));
    let uploaded = put_avatar(&app, &session, "application/octet-stream", photo).await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let stored = avatar_bytes(&app, &session).await.unwrap();
    assert!(!stored.windows(marker.len()).any(|w| w == marker.as_bytes()));
    assert!(!stored.windows(4).any(|w| w == b"Exif"));
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (200, 200),
        "cropped square"
    );

    // A WebP in a multipart form, named and labelled as a GIF: the content decides.
    let boundary = "avatar-boundary-7MA4YWxk";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"me.gif\"\r\n\
         Content-Type: image/gif\r\n\r\n"
    )
    .into_bytes();
    form.extend(picture(64, 80, ImageFormat::WebP));
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let uploaded = put_avatar(
        &app,
        &session,
        &format!("multipart/form-data; boundary={boundary}"),
        form,
    )
    .await;
    assert_eq!(uploaded.status(), StatusCode::OK);
    let good = avatar_bytes(&app, &session).await.unwrap();
    let decoded = image::load_from_memory(&good).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 64));

    // Every bad upload is refused clearly and leaves the avatar as it was.
    let png = picture(300, 300, ImageFormat::Png);
    let mut oversized = picture(16, 16, ImageFormat::Png);
    oversized.resize(5 * 1024 * 1024 + 1, 0);
    let refusals: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "oversized",
            oversized,
            StatusCode::PAYLOAD_TOO_LARGE,
            "avatar_too_large",
        ),
        (
            "truncated",
            png[..png.len() / 2].to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "text labelled as a PNG",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a GIF",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "64 megapixels",
            png_claiming(8_000, 8_000),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_too_large",
        ),
        (
            "ten gigapixels",
            png_claiming(100_000, 100_000),
            StatusCode::UNPROCESSABLE_ENTITY,
            "image_too_large",
        ),
    ];
    for (what, body, status, code) in refusals {
        let refused = put_avatar(&app, &session, "image/png", body).await;
        assert_eq!(refused.status(), status, "{what}");
        assert_eq!(error_code(refused).await, code, "{what}");
        assert_eq!(
            avatar_bytes(&app, &session).await.as_deref(),
            Some(good.as_slice()),
            "{what} changed nothing"
        );
    }

    // With an `Idempotency-Key` (whose check reads the body first, up to 6 MiB), an image
    // over the limit gets the same answer, whatever its size.
    for size in [5 * 1024 * 1024 + 1, 7 * 1024 * 1024] {
        let mut body = picture(16, 16, ImageFormat::Png);
        body.resize(size, 0);
        let refused = app
            .request(Method::PUT, "/me/avatar", Some(&session.token))
            .header(CONTENT_TYPE, "image/png")
            .header("idempotency-key", format!("big-{size}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE, "{size}");
        assert_eq!(error_code(refused).await, "avatar_too_large", "{size}");
    }

    // A form is exactly one part, `avatar`: any other part is refused, not ignored.
    let image = picture(32, 32, ImageFormat::Png);
    let part = |name: &str, body: &[u8]| {
        let mut bytes = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
             filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        bytes.extend(body);
        bytes.extend(b"\r\n");
        bytes
    };
    let form = |parts: Vec<Vec<u8>>| {
        let mut bytes = parts.concat();
        bytes.extend(format!("--{boundary}--\r\n").into_bytes());
        bytes
    };
    let bad_forms = vec![
        (
            "an extra unnamed part",
            form(vec![part("avatar", &image), part("", b"false")]),
        ),
        (
            "the image under another name",
            form(vec![part("file", &image)]),
        ),
        (
            "two images",
            form(vec![part("avatar", &image), part("avatar", &image)]),
        ),
        ("no part at all", form(vec![])),
    ];
    for (what, body) in bad_forms {
        let refused = put_avatar(
            &app,
            &session,
            &format!("multipart/form-data; boundary={boundary}"),
            body,
        )
        .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert_eq!(error_code(refused).await, "validation_failed", "{what}");
        assert_eq!(
            avatar_bytes(&app, &session).await.as_deref(),
            Some(good.as_slice()),
            "{what} changed nothing"
        );
    }

    // Shown on the public page only when the profile is public.
    let me = json_body(app.get("/me", Some(&session.token)).await).await;
    let public_avatar = format!("/profiles/{}/avatar", me["account_id"].as_str().unwrap());
    assert_eq!(
        app.get(&public_avatar, None).await.status(),
        StatusCode::NOT_FOUND
    );
    patch(&app, &session, json!({"public_profile": true})).await;
    let shown = app.get(&public_avatar, None).await;
    assert_eq!(shown.status(), StatusCode::OK);
    assert_eq!(shown.headers()["x-content-type-options"], "nosniff");
    assert_eq!(shown.bytes().await.unwrap().as_ref(), good.as_slice());

    let removed = app.delete("/me/avatar", Some(&session.token)).await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(avatar_bytes(&app, &session).await, None);
    assert_eq!(
        app.get(&public_avatar, None).await.status(),
        StatusCode::NOT_FOUND
    );
    // Nobody else can touch it.
    assert_eq!(
        put_avatar(
            &app,
            &Session {
                id: String::new(),
                token: "not-a-token".into()
            },
            "image/png",
            png
        )
        .await
        .status(),
        StatusCode::UNAUTHORIZED
    );
}

on_both_backends!(
    the_profile_is_validated_and_public_only_on_request,
    avatars_are_judged_by_content_and_stored_square_without_metadata,
);
