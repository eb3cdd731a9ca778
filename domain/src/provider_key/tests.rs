//! given / when / then for provider keys, and their history lines.
use super::*;
use crate::testing::given;

fn at(n: i64) -> Timestamp {
    Timestamp::from_unix_micros(n * 1_000_000)
}
fn id(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}

fn set(version: u32, status: KeyStatus) -> ProviderKeyEvent {
    ProviderKeyEvent::ProviderKeySet {
        provider: Provider::Openai,
        version,
        kind: CredentialKind::ApiKey,
        credential: "sealed".into(),
        hint: "sk-a…wxyz".into(),
        service_account_email: None,
        project_id: None,
        status,
        problem: None,
        workspace: false,
        by: id(1),
        at: at(1),
    }
}

fn verify(version: u32, status: KeyStatus, n: i64) -> ProviderKeyCommand {
    ProviderKeyCommand::RecordVerification {
        provider: Provider::Openai,
        version,
        status,
        problem: Some("refused".into()),
        notify: vec![id(1)],
        by: None,
        at: at(n),
    }
}

#[test]
fn a_key_that_turns_invalid_tells_its_owner_once() {
    let state = given::<ProviderKeys>([set(1, KeyStatus::Valid)])
        .when(verify(1, KeyStatus::Invalid, 2))
        .then([ProviderKeyEvent::ProviderKeyVerified {
            provider: Provider::Openai,
            version: 1,
            status: KeyStatus::Invalid,
            problem: Some("refused".into()),
            changed: true,
            notify: vec![id(1)],
            workspace: false,
            by: None,
            at: at(2),
        }]);
    assert_eq!(state.keys[&Provider::Openai].status, KeyStatus::Invalid);
    let events = state.decide(&verify(1, KeyStatus::Invalid, 3)).unwrap();
    assert!(matches!(
        &events[..],
        [ProviderKeyEvent::ProviderKeyVerified { changed: false, notify, .. }] if notify.is_empty()
    ));
}

#[test]
fn versions_grow_and_stale_outcomes_are_refused() {
    given::<ProviderKeys>([set(1, KeyStatus::Valid)])
        .when(verify(2, KeyStatus::Invalid, 2))
        .then_error(ProviderKeyError::Changed);
    let state = given::<ProviderKeys>([
        set(1, KeyStatus::Valid),
        ProviderKeyEvent::ProviderKeyRemoved {
            provider: Provider::Openai,
            by: id(1),
            at: at(2),
        },
    ])
    .when(ProviderKeyCommand::Remove {
        provider: Provider::Openai,
        by: id(1),
        at: at(3),
    })
    .then([]);
    // A removed key's version is never reused.
    assert_eq!(state.next_version(Provider::Openai), 2);
}

#[test]
fn each_event_is_a_line_of_its_keys_history() {
    let verified = |status| ProviderKeyEvent::ProviderKeyVerified {
        provider: Provider::Openai,
        version: 1,
        status,
        problem: None,
        changed: false,
        notify: vec![],
        workspace: false,
        by: None,
        at: at(2),
    };
    let lines = [
        set(1, KeyStatus::Valid),
        verified(KeyStatus::Limited),
        verified(KeyStatus::Invalid),
        ProviderKeyEvent::ProviderKeyResolved {
            provider: Provider::Openai,
            version: 1,
            account_id: id(2),
            workspace_id: None,
            service_token: Uuid::from_u128(9),
            at: at(3),
        },
        ProviderKeyEvent::ProviderKeyRemoved {
            provider: Provider::Openai,
            by: id(1),
            at: at(4),
        },
    ]
    .iter()
    .map(HistoryEntry::of)
    .collect::<Vec<_>>();
    let actions = lines.iter().map(|h| h.action).collect::<Vec<_>>();
    assert_eq!(actions, HistoryEntry::ACTIONS[..]);
    assert_eq!(lines[0].account_id, Some(id(1)));
    assert_eq!(lines[1].status, Some(KeyStatus::Limited));
    assert_eq!(lines[3].account_id, Some(id(2)), "the account served");
    assert_eq!(lines[3].service_token, Some(Uuid::from_u128(9)));
    assert_eq!(lines[4].version, None);
}

#[test]
fn statuses_parse_as_they_are_named() {
    for status in [
        KeyStatus::Unverified,
        KeyStatus::Valid,
        KeyStatus::Invalid,
        KeyStatus::Limited,
    ] {
        assert_eq!(KeyStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(KeyStatus::parse("Valid"), None);
}

#[test]
fn resolving_needs_the_current_key() {
    let resolve = |version| ProviderKeyCommand::Resolve {
        provider: Provider::Openai,
        version,
        account_id: id(2),
        workspace_id: None,
        service_token: Uuid::from_u128(9),
        at: at(4),
    };
    given::<ProviderKeys>([])
        .when(resolve(1))
        .then_error(ProviderKeyError::NotFound);
    let state = given::<ProviderKeys>([set(1, KeyStatus::Valid)])
        .when(resolve(1))
        .then([ProviderKeyEvent::ProviderKeyResolved {
            provider: Provider::Openai,
            version: 1,
            account_id: id(2),
            workspace_id: None,
            service_token: Uuid::from_u128(9),
            at: at(4),
        }]);
    // Verified invalid since the caller read it: not handed out.
    let invalid = state.decide(&verify(1, KeyStatus::Invalid, 3)).unwrap();
    given::<ProviderKeys>([set(1, KeyStatus::Valid)].into_iter().chain(invalid))
        .when(resolve(1))
        .then_error(ProviderKeyError::Invalid);
}

#[test]
fn hints_show_a_prefix_and_the_last_four() {
    assert_eq!(key_hint("sk-proj-abcdefgh1234"), "sk-p…1234");
    assert_eq!(key_hint("short"), "…");
}
