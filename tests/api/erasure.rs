//! Erasure down to the bytes: after an account is deleted, none of its personal values can
//! be found in plain text in any file the service writes (the SQLite file and its WAL, the
//! PostgreSQL data directory after a checkpoint and its current WAL segment, the mail
//! folder, blobs), and a copy of the data taken before the deletion no longer opens.

use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::{Backend, Database, EventDecoder, GlobalPosition, Payload};
use tests::{PASSWORD, TestApp, eventually, json_body, spawn_app_with};
use uuid::Uuid;

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The files among `files` whose bytes contain `value`.
fn holding(files: &[PathBuf], value: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|path| {
            std::fs::read(path).is_ok_and(|bytes| {
                bytes
                    .windows(value.len())
                    .any(|window| window == value.as_bytes())
            })
        })
        .cloned()
        .collect()
}

/// What one account leaves behind: e-mail, name, bio, IP, user agent, the label it gave
/// an API token, and an address it asked to move to.
struct Person {
    email: String,
    moving_to: String,
    name: String,
    bio: String,
    ip: String,
    user_agent: String,
    token_label: String,
}

impl Person {
    fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        Self {
            email: format!("shred-{}@example.com", &tag[..12]),
            moving_to: format!("moving-{}@example.net", &tag[12..24]),
            name: format!("Shred Me {}", &tag[12..20]),
            bio: format!("Paints lighthouses at dusk {}", &tag[20..28]),
            ip: format!("203.0.113.{}", 1 + tag.as_bytes()[0] % 200),
            user_agent: format!("ShredProbe/{}", &tag[..16]),
            token_label: format!("render farm {}", &tag[16..28]),
        }
    }

    fn values(&self) -> [&str; 7] {
        [
            &self.email,
            &self.moving_to,
            &self.name,
            &self.bio,
            &self.ip,
            &self.user_agent,
            &self.token_label,
        ]
    }
}

/// Registers `person`, signs in from their IP and browser, fills the profile, creates and
/// uses an API token (so its last use is recorded), asks to move to another address, and
/// waits for the e-mails it causes.
/// Returns the account id and the session token.
async fn live_a_little(app: &TestApp, person: &Person) -> (String, String) {
    let registered = app
        .post(
            "/auth/register",
            None,
            &json!({"email": person.email, "password": PASSWORD, "display_name": person.name}),
        )
        .await;
    assert_eq!(registered.status(), StatusCode::CREATED);
    let account_id = json_body(registered).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let login = app
        .request(Method::POST, "/auth/login", None)
        .header("user-agent", &person.user_agent)
        .header("x-forwarded-for", &person.ip)
        .json(&json!({"email": person.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::CREATED);
    let token = json_body(login).await["token"].as_str().unwrap().to_owned();
    let profile = app
        .request(Method::PATCH, "/me/profile", Some(&token))
        .json(&json!({"bio": person.bio}))
        .send()
        .await
        .unwrap();
    assert_eq!(profile.status(), StatusCode::OK);
    let api_token = json_body(
        app.post(
            "/me/api-tokens",
            Some(&token),
            &json!({"label": person.token_label, "scopes": ["account:read"]}),
        )
        .await,
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let used = app
        .request(Method::GET, "/api/v1/me", Some(&api_token))
        .header("user-agent", &person.user_agent)
        .header("x-forwarded-for", &person.ip)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), StatusCode::OK);
    let moving = app
        .post(
            "/me/email/change",
            Some(&token),
            &json!({"new_email": person.moving_to, "password": PASSWORD}),
        )
        .await;
    assert_eq!(moving.status(), StatusCode::ACCEPTED);
    // Let the usage flush, and the e-mails of the new token and the change be written.
    let mail = app.data_dir().join("mail").join(&account_id);
    for address in [&person.email, &person.moving_to] {
        let mail = &mail;
        eventually(Duration::from_secs(30), || async move {
            if holding(&files_under(mail), address).is_empty() {
                Err(format!("no e-mail to {address}"))
            } else {
                Ok(())
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.settle().await;
    (account_id, token)
}

async fn delete(app: &TestApp, token: &str) {
    let deleted = app
        .request(Method::DELETE, "/me", Some(token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    app.settle().await;
}

fn assert_nowhere(files: &[PathBuf], person: &Person) {
    assert!(!files.is_empty(), "there are files to search");
    for value in person.values() {
        let found = holding(files, value);
        assert!(found.is_empty(), "{value:?} is in plain text in {found:?}");
    }
}

/// Decodes the account's events from `data` with the keys of the live key store.
async fn sealed_events(app: &TestApp, data: &Database, account_id: &str) -> (usize, usize) {
    let codec = app.fresh_codec();
    let log = data.event_log().await.unwrap();
    let (mut opened, mut erased) = (0, 0);
    for event in log.read_all(GlobalPosition::START, 100_000).await.unwrap() {
        let subject = event.metadata.data_subject.map(|s| s.to_string());
        if subject.as_deref() != Some(account_id) || !event.data.to_string().contains("$personal") {
            continue;
        }
        match codec.decode_event(event).await.unwrap().payload {
            Payload::Event(_) => opened += 1,
            Payload::Erased { .. } => erased += 1,
            Payload::Unknown => panic!("an unknown event"),
        }
    }
    (opened, erased)
}

fn with_client_ip_header(setup: &mut tests::Setup) {
    setup.serve.client_ip_header = Some("X-Forwarded-For".into());
}

async fn the_data_folder_keeps_no_trace_of_a_deleted_account() {
    let app = spawn_app_with(Backend::Sqlite, with_client_ip_header).await;
    let person = Person::new();
    let (account_id, token) = live_a_little(&app, &person).await;

    // A backup of the data, taken before the deletion (the keys live apart, in keys.db).
    let backup = store::testkit::TempDir::create();
    for name in ["accounts.db", "accounts.db-wal", "accounts.db-shm"] {
        let file = app.data_dir().join(name);
        if file.exists() {
            std::fs::copy(&file, backup.path().join(name)).unwrap();
        }
    }
    let backup_files = files_under(backup.path());
    assert_nowhere(&backup_files, &person);

    delete(&app, &token).await;
    let files = files_under(&app.data_dir());
    assert!(
        files.iter().any(|f| f.ends_with("accounts.db-wal")),
        "the WAL is searched too: {files:?}"
    );
    assert_nowhere(&files, &person);

    // The backup still holds the account's events, and none of them opens any more.
    let backup_db = Database::connect(&Database::sqlite_url(&backup.path().join("accounts.db")), 1)
        .await
        .unwrap();
    let (opened, erased) = sealed_events(&app, &backup_db, &account_id).await;
    assert_eq!(opened, 0, "the backup no longer opens");
    assert!(erased >= 3, "{erased} sealed events of the account");
    backup_db.close().await;
}

async fn the_postgres_data_directory_keeps_no_trace_of_a_deleted_account() {
    let app = spawn_app_with(Backend::Postgres, with_client_ip_header).await;
    let person = Person::new();
    let (_, token) = live_a_little(&app, &person).await;
    delete(&app, &token).await;

    sqlx::query("CHECKPOINT")
        .execute(app.db.pool())
        .await
        .unwrap();
    let data_directory: String = sqlx::query_scalar("SELECT current_setting('data_directory')")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let database: i64 = sqlx::query_scalar(
        "SELECT oid::bigint FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let wal: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let data_directory = PathBuf::from(data_directory);
    let mut files = files_under(&data_directory.join("base").join(database.to_string()));
    assert!(
        !files.is_empty(),
        "this test reads the PostgreSQL server's files: run it against a server on this \
         machine, as root or as the postgres user ({})",
        data_directory.display()
    );
    files.push(data_directory.join("pg_wal").join(wal));
    files.extend(files_under(&app.data_dir()));
    assert_nowhere(&files, &person);
}

// Each case concerns one backend's files.
mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_data_folder_keeps_no_trace_of_a_deleted_account() {
        tests::within_time_limit(Box::pin(
            super::the_data_folder_keeps_no_trace_of_a_deleted_account(),
        ))
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_data_directory_keeps_no_trace_of_a_deleted_account() {
        tests::within_time_limit(Box::pin(
            super::the_postgres_data_directory_keeps_no_trace_of_a_deleted_account(),
        ))
        .await;
    }
}
