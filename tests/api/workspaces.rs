//! Workspaces over HTTP: roles, invitations and their links, seats, members, and an owner
//! on every path (leave, removal, role change, transfer, account deletion).

use crate::email_verification::signed_up_verified;
use crate::notifications::{link_token, mails_to};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use store::Backend;
use tests::{PASSWORD, Session, TestApp, error_code, eventually, json_body, spawn_app};

pub(crate) async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    s: &Session,
    body: Value,
) -> reqwest::Response {
    app.request(method, path, Some(&s.token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn create(app: &TestApp, owner: &Session, name: &str) -> String {
    let response = app
        .post("/workspaces", Some(&owner.token), &json!({"name": name}))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_body(response).await;
    assert_eq!(body["role"], "owner");
    body["workspace_id"].as_str().unwrap().to_owned()
}

/// The invitation links' tokens in the `count` e-mails to `to` (quoted-printable
/// unfolded), in no particular order.
async fn invitation_tokens(app: &TestApp, to: &str, count: usize) -> Vec<String> {
    mails_to(app, to, count)
        .await
        .iter()
        .map(|mail| link_token(mail, "/invitations/", "inv_"))
        .collect()
}

/// The token of the one e-mail to `to`.
pub(crate) async fn invitation_token(app: &TestApp, to: &str, count: usize) -> String {
    invitation_tokens(app, to, count).await.pop().unwrap()
}

/// The token of the e-mail to `to` (of `count`) that is not `old`.
async fn new_token(app: &TestApp, to: &str, count: usize, old: &str) -> String {
    invitation_tokens(app, to, count)
        .await
        .into_iter()
        .find(|t| t != old)
        .expect("a new link")
}

pub(crate) async fn invite(
    app: &TestApp,
    ws: &str,
    admin: &Session,
    email: &str,
    role: &str,
) -> reqwest::Response {
    app.post(
        &format!("/workspaces/{ws}/invitations"),
        Some(&admin.token),
        &json!({"email": email, "role": role}),
    )
    .await
}

/// `email` (of `session`) joins `ws` as `role` through an e-mailed link.
pub(crate) async fn join(
    app: &TestApp,
    ws: &str,
    admin: &Session,
    email: &str,
    session: &Session,
    role: &str,
    mails: usize,
) {
    assert_eq!(
        invite(app, ws, admin, email, role).await.status(),
        StatusCode::CREATED
    );
    let token = invitation_token(app, email, mails).await;
    crate::email_verification::verify_email(app, email).await;
    let accepted = app
        .post(
            &format!("/invitations/{token}/accept"),
            Some(&session.token),
            &json!({}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
}

async fn members(app: &TestApp, ws: &str, s: &Session) -> Vec<(String, String)> {
    let body = json_body(
        app.get(&format!("/workspaces/{ws}/members"), Some(&s.token))
            .await,
    )
    .await;
    body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["account_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn account_id(app: &TestApp, s: &Session) -> String {
    json_body(app.get("/me", Some(&s.token)).await).await["account_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn roles_and_visibility(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let (member_email, member) = signed_up_verified(&app).await;
    let (_, outsider) = signed_up_verified(&app).await;
    let ws = create(&app, &owner, "Northwind").await;
    // Another member's workspace is 404 to non-members, with no name in the answer.
    let hidden = app
        .get(&format!("/workspaces/{ws}"), Some(&outsider.token))
        .await;
    assert_eq!(hidden.status(), StatusCode::NOT_FOUND);
    assert!(!hidden.text().await.unwrap().contains("Northwind"));
    assert_eq!(
        app.get(
            &format!("/workspaces/{}", uuid::Uuid::new_v4()),
            Some(&owner.token)
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    join(&app, &ws, &owner, &member_email, &member, "member", 1).await;
    let listed = json_body(app.get("/me/workspaces", Some(&member.token)).await).await;
    assert_eq!(listed["workspaces"][0]["name"], "Northwind");
    assert_eq!(listed["workspaces"][0]["role"], "member");
    assert_eq!(listed["workspaces"][0]["member_count"], 2);
    assert!(listed["workspaces"][0]["pending_invitations"].is_null());
    // Members read, never administer, never see invitees' addresses.
    let rename = send(
        &app,
        Method::PATCH,
        &format!("/workspaces/{ws}"),
        &member,
        json!({"name": "Mine"}),
    )
    .await;
    assert_eq!(rename.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(rename).await, "insufficient_role");
    let listing = app
        .get(
            &format!("/workspaces/{ws}/invitations"),
            Some(&member.token),
        )
        .await;
    assert_eq!(listing.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        invite(&app, &ws, &member, "x@example.com", "member")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Promoted, the member administers from its very next request.
    let member_id = account_id(&app, &member).await;
    let promoted = send(
        &app,
        Method::PATCH,
        &format!("/workspaces/{ws}/members/{member_id}"),
        &owner,
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(promoted.status(), StatusCode::NO_CONTENT);
    let renamed = send(
        &app,
        Method::PATCH,
        &format!("/workspaces/{ws}"),
        &member,
        json!({"name": "Southwind"}),
    )
    .await;
    assert_eq!(renamed.status(), StatusCode::OK);
    assert_eq!(json_body(renamed).await["name"], "Southwind");
    // An admin cannot touch an owner.
    let owner_id = account_id(&app, &owner).await;
    let demote_owner = send(
        &app,
        Method::PATCH,
        &format!("/workspaces/{ws}/members/{owner_id}"),
        &member,
        json!({"role": "member"}),
    )
    .await;
    assert_eq!(demote_owner.status(), StatusCode::FORBIDDEN);
    let remove_owner = app
        .delete(
            &format!("/workspaces/{ws}/members/{owner_id}"),
            Some(&member.token),
        )
        .await;
    assert_eq!(remove_owner.status(), StatusCode::FORBIDDEN);
    // Removed, the member is told by e-mail and sees nothing from its next request.
    let removed = app
        .delete(
            &format!("/workspaces/{ws}/members/{member_id}"),
            Some(&owner.token),
        )
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/workspaces/{ws}"), Some(&member.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let notice = mails_to(&app, &member_email, 2).await;
    assert!(
        notice
            .iter()
            .any(|m| m.contains("removed from a workspace")),
        "{notice:?}"
    );
}

async fn invitation_links(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let (invitee_email, invitee) = signed_up_verified(&app).await;
    let (_, stranger) = signed_up_verified(&app).await;
    let ws = create(&app, &owner, "Links").await;
    let first = json_body(invite(&app, &ws, &owner, &invitee_email, "admin").await).await;
    let token = invitation_token(&app, &invitee_email, 1).await;
    // What the link invites to, without a session.
    let preview = json_body(app.get(&format!("/invitations/{token}"), None).await).await;
    assert_eq!(preview["workspace_name"], "Links");
    assert_eq!(preview["role"], "admin");
    assert_eq!(preview["inviter"], "Test User");
    // Inviting the same address again refreshes the invitation: same id, new link.
    let again = json_body(invite(&app, &ws, &owner, &invitee_email, "admin").await).await;
    assert_eq!(again["invitation_id"], first["invitation_id"]);
    let refreshed = new_token(&app, &invitee_email, 2, &token).await;
    assert_ne!(refreshed, token);
    let old = app
        .post(
            &format!("/invitations/{token}/accept"),
            Some(&invitee.token),
            &json!({}),
        )
        .await;
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    // Another account cannot use it; a made-up link is refused.
    let wrong = app
        .post(
            &format!("/invitations/{refreshed}/accept"),
            Some(&stranger.token),
            &json!({}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(wrong).await, "invitation_for_another_address");
    // One character of the MAC changed (to one it was not).
    let mut forged: Vec<char> = refreshed.chars().collect();
    forged[60] = if forged[60] == 'x' { 'y' } else { 'x' };
    let forged: String = forged.into_iter().collect();
    let forged = app
        .post(
            &format!("/invitations/{forged}/accept"),
            Some(&invitee.token),
            &json!({}),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::NOT_FOUND);
    // It works once.
    let accepted = app
        .post(
            &format!("/invitations/{refreshed}/accept"),
            Some(&invitee.token),
            &json!({}),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let reused = app
        .post(
            &format!("/invitations/{refreshed}/accept"),
            Some(&invitee.token),
            &json!({}),
        )
        .await;
    assert_eq!(reused.status(), StatusCode::NOT_FOUND);
    let list = json_body(
        app.get(&format!("/workspaces/{ws}/invitations"), Some(&owner.token))
            .await,
    )
    .await;
    assert_eq!(list["invitations"][0]["status"], "accepted");
    assert_eq!(
        list["invitations"][0]["email"],
        invitee_email.to_lowercase()
    );
    // Expiry: a week by default; past it the link is refused and the list says expired.
    let (late_email, late) = signed_up_verified(&app).await;
    let sent = app
        .post(
            &format!("/workspaces/{ws}/invitations"),
            Some(&owner.token),
            &json!({"email": late_email, "role": "member", "expires_in_days": 1}),
        )
        .await;
    assert_eq!(sent.status(), StatusCode::CREATED);
    let late_token = invitation_token(&app, &late_email, 1).await;
    app.clock.advance(Duration::from_secs(2 * 86_400));
    let expired = app
        .post(
            &format!("/invitations/{late_token}/accept"),
            Some(&late.token),
            &json!({}),
        )
        .await;
    assert_eq!(expired.status(), StatusCode::GONE);
    assert_eq!(error_code(expired).await, "invitation_expired");
    let list = json_body(
        app.get(&format!("/workspaces/{ws}/invitations"), Some(&owner.token))
            .await,
    )
    .await;
    let late_row = list["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == late_email.to_lowercase())
        .unwrap()
        .clone();
    assert_eq!(late_row["status"], "expired");
    // A resend gives a new link and expiry.
    let id = late_row["invitation_id"].as_str().unwrap();
    let resent = app
        .post(
            &format!("/workspaces/{ws}/invitations/{id}/resend"),
            Some(&owner.token),
            &json!({"expires_in_days": 2}),
        )
        .await;
    assert_eq!(resent.status(), StatusCode::OK);
    let resent_token = new_token(&app, &late_email, 2, &late_token).await;
    let declined = app
        .post(
            &format!("/invitations/{resent_token}/decline"),
            Some(&late.token),
            &json!({}),
        )
        .await;
    assert_eq!(declined.status(), StatusCode::NO_CONTENT);
    // Revoked links stop working; bounds are checked.
    let (third_email, third) = signed_up_verified(&app).await;
    let sent = json_body(invite(&app, &ws, &owner, &third_email, "member").await).await;
    let third_token = invitation_token(&app, &third_email, 1).await;
    let revoked = app
        .delete(
            &format!(
                "/workspaces/{ws}/invitations/{}",
                sent["invitation_id"].as_str().unwrap()
            ),
            Some(&owner.token),
        )
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let dead = app
        .post(
            &format!("/invitations/{third_token}/accept"),
            Some(&third.token),
            &json!({}),
        )
        .await;
    assert_eq!(dead.status(), StatusCode::NOT_FOUND);
    let too_long = app
        .post(
            &format!("/workspaces/{ws}/invitations"),
            Some(&owner.token),
            &json!({"email": "y@example.com", "role": "member", "expires_in_days": 31}),
        )
        .await;
    assert_eq!(too_long.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn seats_fill_with_members_and_pending_invitations(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let ws = create(&app, &owner, "Seats").await;
    let allowed =
        json_body(app.get("/me/entitlements", Some(&owner.token)).await).await["seats"]["allowed"]
            .as_u64()
            .unwrap();
    // The owner takes one seat; pending invitations take the rest, even sent all at once:
    // a parallel burst gets exactly the free seats, and a key for each, none for the
    // refused ones.
    let keys_before = crate::invitees::data_keys(&app).await;
    let burst = (1..allowed + 3).map(|n| {
        let (app, ws, owner) = (&app, &ws, &owner);
        async move {
            app.post(
                &format!("/workspaces/{ws}/invitations"),
                Some(&owner.token),
                &json!({"email": format!("seat{n}@example.com"), "role": "member", "expires_in_days": 1}),
            )
            .await
            .status()
        }
    });
    let statuses = futures_util::future::join_all(burst).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created as u64, allowed - 1, "{statuses:?}");
    assert_eq!(
        crate::invitees::data_keys(&app).await - keys_before,
        created as i64
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );
    let full = invite(&app, &ws, &owner, "one-too-many@example.com", "member").await;
    assert_eq!(full.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(full).await, "seats_full");
    let used =
        json_body(app.get("/me/entitlements", Some(&owner.token)).await).await["seats"]["used"]
            .as_u64()
            .unwrap();
    assert_eq!(used, allowed);
    // Expired invitations free their seats.
    app.clock.advance(Duration::from_secs(2 * 86_400));
    let freed = invite(&app, &ws, &owner, "one-too-many@example.com", "member").await;
    assert_eq!(freed.status(), StatusCode::CREATED);
}

async fn a_workspace_always_has_an_owner(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let (admin_email, admin) = signed_up_verified(&app).await;
    let ws = create(&app, &owner, "Owned").await;
    join(&app, &ws, &owner, &admin_email, &admin, "admin", 1).await;
    let owner_id = account_id(&app, &owner).await;
    let admin_id = account_id(&app, &admin).await;
    // The last owner cannot leave, step down, or delete the account.
    let leave = app
        .post(
            &format!("/workspaces/{ws}/leave"),
            Some(&owner.token),
            &json!({}),
        )
        .await;
    assert_eq!(leave.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(leave).await, "last_owner");
    let demote = send(
        &app,
        Method::PATCH,
        &format!("/workspaces/{ws}/members/{owner_id}"),
        &owner,
        json!({"role": "member"}),
    )
    .await;
    assert_eq!(error_code(demote).await, "last_owner");
    let delete = send(
        &app,
        Method::DELETE,
        "/me",
        &owner,
        json!({"password": PASSWORD, "confirm": "DELETE"}),
    )
    .await;
    assert_eq!(delete.status(), StatusCode::CONFLICT);
    assert_eq!(error_code(delete).await, "sole_workspace_owner");
    // An admin may not transfer; the owner may, becoming an admin.
    let by_admin = send(
        &app,
        Method::POST,
        &format!("/workspaces/{ws}/transfer-ownership"),
        &admin,
        json!({"account_id": admin_id}),
    )
    .await;
    assert_eq!(by_admin.status(), StatusCode::FORBIDDEN);
    let transferred = send(
        &app,
        Method::POST,
        &format!("/workspaces/{ws}/transfer-ownership"),
        &owner,
        json!({"account_id": admin_id}),
    )
    .await;
    assert_eq!(transferred.status(), StatusCode::NO_CONTENT);
    let roles = members(&app, &ws, &admin).await;
    assert!(
        roles.contains(&(admin_id.clone(), "owner".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(owner_id.clone(), "admin".into())),
        "{roles:?}"
    );
    // Now the old owner can delete its account: it leaves the workspace.
    let deleted = send(
        &app,
        Method::DELETE,
        "/me",
        &owner,
        json!({"password": PASSWORD, "confirm": "DELETE"}),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        members(&app, &ws, &admin).await,
        vec![(admin_id.clone(), "owner".to_owned())]
    );
    // A workspace whose only member deletes the account goes with it.
    let (_, alone) = signed_up_verified(&app).await;
    let solo = create(&app, &alone, "Solo").await;
    let deleted = send(
        &app,
        Method::DELETE,
        "/me",
        &alone,
        json!({"password": PASSWORD, "confirm": "DELETE"}),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let events = app.raw_events().await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("workspace-{solo} WorkspaceDeleted"))),
        "the solo workspace is deleted"
    );
    let key = app
        .state
        .core
        .codec
        .keys()
        .get(uuid::Uuid::parse_str(&solo).unwrap())
        .await
        .unwrap();
    assert!(key.is_none(), "its key is destroyed");
}

async fn deleting_a_workspace_needs_its_owner_and_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, owner) = signed_up_verified(&app).await;
    let (admin_email, admin) = signed_up_verified(&app).await;
    let ws = create(&app, &owner, "Doomed").await;
    join(&app, &ws, &owner, &admin_email, &admin, "admin", 1).await;
    let (pending_email, pending) = signed_up_verified(&app).await;
    invite(&app, &ws, &owner, &pending_email, "member").await;
    let pending_token = invitation_token(&app, &pending_email, 1).await;
    // The embedded default mails invitations into a folder under the workspace's id.
    let mail = app.data_dir().join("mail").join(&ws);
    assert!(
        std::fs::read_dir(&mail).unwrap().next().is_some(),
        "the invitation in {mail:?}"
    );
    let by_admin = send(
        &app,
        Method::DELETE,
        &format!("/workspaces/{ws}"),
        &admin,
        json!({"confirm": "Doomed"}),
    )
    .await;
    assert_eq!(by_admin.status(), StatusCode::FORBIDDEN);
    let mismatch = send(
        &app,
        Method::DELETE,
        &format!("/workspaces/{ws}"),
        &owner,
        json!({"confirm": "doomed"}),
    )
    .await;
    assert_eq!(error_code(mismatch).await, "confirmation_mismatch");
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/workspaces/{ws}"),
        &owner,
        json!({"confirm": "Doomed"}),
    )
    .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/workspaces/{ws}"), Some(&admin.token))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let dead = app
        .post(
            &format!("/invitations/{pending_token}/accept"),
            Some(&pending.token),
            &json!({}),
        )
        .await;
    assert_eq!(dead.status(), StatusCode::NOT_FOUND);
    let key = app
        .state
        .core
        .codec
        .keys()
        .get(uuid::Uuid::parse_str(&ws).unwrap())
        .await
        .unwrap();
    assert!(key.is_none(), "the workspace's key is destroyed");
    // Its name and the invitee's address are in no table in clear.
    let rows = app.read_model_rows().await.join("\n");
    assert!(!rows.contains("Doomed") && !rows.contains(&pending_email.to_lowercase()));
    // Nor the mail folder: the invitation mailed for it (the invitee's address) is erased.
    let mail = &mail;
    eventually(Duration::from_secs(10), || async move {
        let left: Vec<_> = std::fs::read_dir(mail)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name != workers::mail::transport::ERASED_MARK)
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?} still in {mail:?}"))
        }
    })
    .await;
}

on_both_backends!(
    roles_and_visibility,
    invitation_links,
    seats_fill_with_members_and_pending_invitations,
    a_workspace_always_has_an_owner,
    deleting_a_workspace_needs_its_owner_and_name,
);
