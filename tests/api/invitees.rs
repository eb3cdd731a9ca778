//! An invitee's address is sealed with a key of the invitation's own, destroyed once the
//! invitation is accepted or declined: the address then lives on only in the invitee's
//! account, and goes with it when that account is erased.

use crate::email_verification::signed_up_verified;
use crate::workspaces::{create, invitation_token, invite, join};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use store::{Backend, GlobalPosition, Payload};
use tests::{PASSWORD, TestApp, eventually, json_body, spawn_app};

/// Every event of the log that the live key store still opens, as JSON, decoded with keys
/// read afresh (no process's cache).
async fn readable_log(app: &TestApp) -> Vec<Value> {
    let codec = app.fresh_codec();
    let mut opened = Vec::new();
    let events = app.state.core.log.read_all(GlobalPosition::START, 100_000);
    for event in events.await.unwrap() {
        if let Payload::Event(event) = codec.decode(event).await.unwrap().payload {
            opened.push(serde_json::to_value(&event).unwrap());
        }
    }
    opened
}

/// How many of `events` invite `email` (or refresh its invitation).
fn invitations_of(events: &[Value], email: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["type"].as_str(),
                Some("MemberInvited" | "InvitationRefreshed")
            )
        })
        .filter(|e| e["email"] == email)
        .count()
}

/// Whether any of `events` holds `text`, in any case.
fn mentions(events: &[Value], text: &str) -> bool {
    events
        .iter()
        .any(|e| e.to_string().to_lowercase().contains(&text.to_lowercase()))
}

/// The addresses the workspace's invitation list shows.
async fn listed(app: &TestApp, ws: &str, owner: &tests::Session) -> Vec<Value> {
    let list = json_body(
        app.get(&format!("/workspaces/{ws}/invitations"), Some(&owner.token))
            .await,
    )
    .await;
    list["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].clone())
        .collect()
}

async fn an_invitees_address_goes_with_their_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let (member_email, member) = signed_up_verified(&app).await;
    let (decliner_email, decliner) = signed_up_verified(&app).await;
    let (member_email, decliner_email) =
        (member_email.to_lowercase(), decliner_email.to_lowercase());
    let waiting = "still.waiting@example.com";
    let ws = create(&app, &owner, "Invitees").await;
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let invited = invite(&app, &ws, &owner, &decliner_email, "member").await;
    assert_eq!(invited.status(), StatusCode::CREATED);
    let token = invitation_token(&app, &decliner_email, 1).await;
    let declined = app
        .post(
            &format!("/invitations/{token}/decline"),
            Some(&decliner.token),
            &json!({}),
        )
        .await;
    assert_eq!(declined.status(), StatusCode::NO_CONTENT);
    let invited = invite(&app, &ws, &owner, waiting, "member").await;
    assert_eq!(invited.status(), StatusCode::CREATED);

    // Once answered, the invitation's events no longer open: the address is the answering
    // account's alone. The pending one still opens.
    let app = &app;
    let (member_email, decliner_email) = (&member_email, &decliner_email);
    eventually(Duration::from_secs(30), || async move {
        let log = readable_log(app).await;
        match (
            invitations_of(&log, member_email),
            invitations_of(&log, decliner_email),
        ) {
            (0, 0) => Ok(()),
            counts => Err(format!("the invitations still open: {counts:?}")),
        }
    })
    .await;
    assert_eq!(invitations_of(&readable_log(app).await, waiting), 1);
    app.settle().await;
    let shown = listed(app, &ws, &owner).await;
    for email in [waiting, member_email.as_str(), decliner_email.as_str()] {
        assert!(shown.contains(&json!(email)), "{email} in {shown:?}");
    }
    // Rebuilt from the log, where the answered invitations no longer open, the list is the
    // same: every invitation with its status and address, in the same order.
    let invitations = format!("/workspaces/{ws}/invitations");
    let whole = || async { json_body(app.get(&invitations, Some(&owner.token)).await).await };
    let before = whole().await;
    let mut args: Vec<String> = ["accounts", "rebuild", "workspaces"]
        .map(str::to_owned)
        .to_vec();
    args.extend(app.storage_args.clone());
    api::cli::run_from(args).await.expect("rebuild runs");
    assert_eq!(whole().await, before);

    // The member's account is erased: its address is nowhere to be read any more.
    let deleted = app
        .request(reqwest::Method::DELETE, "/me", Some(&member.token))
        .json(&json!({"password": PASSWORD, "confirm": "DELETE"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    eventually(Duration::from_secs(30), || async move {
        if mentions(&readable_log(app).await, member_email) {
            Err("the member's address still opens".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    app.settle().await;
    let shown = listed(app, &ws, &owner).await;
    assert!(!shown.contains(&json!(member_email)), "{shown:?}");
    assert!(shown.contains(&json!(waiting)), "{shown:?}");
}

/// How many data keys the key store holds.
pub(crate) async fn data_keys(app: &TestApp) -> i64 {
    let store = app.state.core.codec.keys().store().clone();
    sqlx::query_scalar("SELECT COUNT(*) FROM data_keys")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// An invitation or a resend that is refused makes no key: a caller cannot grow the key
/// store with requests that change nothing.
async fn refused_invitations_make_no_key(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let (member_email, member) = signed_up_verified(&app).await;
    let ws = create(&app, &owner, "Keys").await;
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let before = data_keys(&app).await;
    let nowhere = uuid::Uuid::new_v4();
    let refused = [
        invite(
            &app,
            &nowhere.to_string(),
            &owner,
            "a@example.com",
            "member",
        )
        .await,
        invite(&app, &ws, &member, "b@example.com", "member").await,
        app.post(
            &format!(
                "/workspaces/{nowhere}/invitations/{}/resend",
                uuid::Uuid::new_v4()
            ),
            Some(&owner.token),
            &json!({}),
        )
        .await,
        app.post(
            &format!(
                "/workspaces/{ws}/invitations/{}/resend",
                uuid::Uuid::new_v4()
            ),
            Some(&owner.token),
            &json!({}),
        )
        .await,
    ];
    for response in refused {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    assert_eq!(data_keys(&app).await, before);

    // A member's address (in any spelling) is not invited: the invitation would hold a
    // seat its invitee could never use.
    let again = invite(&app, &ws, &owner, &member_email.to_uppercase(), "admin").await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert_eq!(tests::error_code(again).await, "already_member");
    assert_eq!(data_keys(&app).await, before);
}

/// A deletion whose request stopped between its append and the destruction of the keys
/// (a crash, a timeout) still destroys them: the erasure reactor does it again after every
/// deletion, and records it for every node's key cache.
async fn a_deleted_workspaces_keys_are_destroyed_even_if_its_request_stopped(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let owner_id = json_body(app.get("/me", Some(&owner.token)).await).await["account_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ws = create(&app, &owner, "Half Deleted").await;
    let invited = invite(&app, &ws, &owner, "pending@example.com", "member").await;
    let invitation: uuid::Uuid = json_body(invited).await["invitation_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let id: uuid::Uuid = ws.parse().unwrap();
    // The deletion's append alone, as a request that stopped right after it leaves it.
    let delete = domain::workspace::WorkspaceCommand::Delete {
        actor: domain::AccountId(owner_id),
        confirm: "Half Deleted".into(),
        at: commands::Clock::now(&*app.clock),
    };
    app.state
        .workspaces
        .run(
            &commands::CommandContext::system("test"),
            domain::WorkspaceId(id),
            delete,
        )
        .await
        .unwrap();
    let app = &app;
    eventually(Duration::from_secs(30), || async move {
        // Read afresh each time (no process's cache).
        let codec = app.fresh_codec();
        let keys = codec.keys();
        match (
            keys.get(id).await.unwrap(),
            keys.get(invitation).await.unwrap(),
        ) {
            (None, None) => Ok(()),
            left => Err(format!(
                "keys left: {:?}",
                (left.0.is_some(), left.1.is_some())
            )),
        }
    })
    .await;
    app.settle().await;
    let shredded = readable_log(app)
        .await
        .into_iter()
        .filter(|e| e["type"] == "KeysShredded")
        .count();
    assert!(shredded >= 1, "the destruction is recorded");
}

on_both_backends!(
    an_invitees_address_goes_with_their_account,
    refused_invitations_make_no_key,
    a_deleted_workspaces_keys_are_destroyed_even_if_its_request_stopped,
);
