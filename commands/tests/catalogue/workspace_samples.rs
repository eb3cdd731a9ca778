//! One sample of every workspace and editor-preference event; personal fields hold
//! distinctive strings.

use domain::editor_preferences::EditorPreferencesEvent;
use domain::workspace::{Role, SettingValues, WorkspaceEvent};
use domain::{AccountId, DomainEvent, Timestamp};
use uuid::Uuid;

fn at(n: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + n * 1_000_000)
}

fn account(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}

/// Every workspace event type.
pub fn all() -> Vec<DomainEvent> {
    let invitation = Uuid::from_u128(70);
    let events = [
        WorkspaceEvent::WorkspaceCreated {
            owner: account(60),
            name: "Northwind Motion Studio".into(),
            at: at(100),
        },
        WorkspaceEvent::WorkspaceRenamed {
            by: account(60),
            name: "Renamed Workspace Title".into(),
            at: at(101),
        },
        WorkspaceEvent::MemberInvited {
            invitation_id: invitation,
            email: "invitee.sample@example.org".into(),
            role: Role::Member,
            token_hash: "invitation-hash-1".into(),
            generation: 1,
            expires_at: at(900),
            invited_by: account(60),
            workspace_name: "Invited Workspace Name".into(),
            at: at(102),
        },
        WorkspaceEvent::InvitationRefreshed {
            invitation_id: invitation,
            email: "refreshed.invitee@example.org".into(),
            role: Role::Admin,
            token_hash: "invitation-hash-2".into(),
            generation: 2,
            expires_at: at(950),
            by: account(60),
            workspace_name: "Refreshed Workspace Name".into(),
            at: at(103),
        },
        WorkspaceEvent::InvitationAccepted {
            invitation_id: invitation,
            account_id: account(61),
            role: Role::Admin,
            at: at(104),
        },
        WorkspaceEvent::InvitationDeclined {
            invitation_id: Uuid::from_u128(71),
            account_id: account(62),
            at: at(105),
        },
        WorkspaceEvent::InvitationRevoked {
            invitation_id: Uuid::from_u128(72),
            by: Some(account(60)),
            at: at(106),
        },
        WorkspaceEvent::MemberRoleChanged {
            account_id: account(61),
            role: Role::Member,
            by: account(60),
            at: at(107),
        },
        WorkspaceEvent::OwnershipTransferred {
            from: account(60),
            to: account(61),
            at: at(108),
        },
        WorkspaceEvent::MemberRemoved {
            account_id: account(63),
            by: account(61),
            workspace_name: "Removed From Workspace".into(),
            at: at(109),
        },
        WorkspaceEvent::MemberLeft {
            account_id: account(60),
            account_deleted: false,
            at: at(110),
        },
        WorkspaceEvent::StudioConfigured {
            by: account(61),
            schema_version: 2,
            set: SettingValues(
                [("frame_rate".to_owned(), serde_json::json!(24))]
                    .into_iter()
                    .collect(),
            ),
            resets: vec!["resolution".into()],
            at: at(111),
        },
        WorkspaceEvent::StorageConfigured {
            by: account(61),
            bucket: "assets".into(),
            region: "eu-west-1".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: "AKIASAMPLEACCESSKEY".into(),
            access_key_hint: "AKIA…AKEY".into(),
            secret_access_key: "sample-secret-access-key-value".into(),
            force_path_style: true,
            at: at(112),
        },
        WorkspaceEvent::StorageProbed {
            problem: Some("put: AccessDenied".into()),
            changed: true,
            notify: vec![account(61)],
            at: at(113),
        },
        WorkspaceEvent::StorageReset {
            by: account(61),
            at: at(114),
        },
        WorkspaceEvent::WorkspaceDeleted {
            by: account(61),
            at: at(115),
        },
        WorkspaceEvent::KeysShredded {
            subjects: vec![Uuid::from_u128(62)],
            at: at(116),
        },
    ];
    let mut all: Vec<DomainEvent> = events.into_iter().map(DomainEvent::from).collect();
    all.extend(
        [
            EditorPreferencesEvent::EditorPreferencesSet {
                set: SettingValues(
                    [("theme".to_owned(), serde_json::json!("dark"))]
                        .into_iter()
                        .collect(),
                ),
                schema_version: 3,
                at: at(120),
            },
            EditorPreferencesEvent::EditorPreferencesReset {
                keys: vec!["theme".into()],
                at: at(121),
            },
        ]
        .into_iter()
        .map(DomainEvent::from),
    );
    all
}
