use super::*;
use crate::testing::given;

fn now() -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000)
}

fn create(kind: TokenKind, scopes: Vec<Scope>) -> AccessTokenCommand {
    AccessTokenCommand::Create {
        account_id: AccountId(Uuid::nil()),
        kind,
        label: "  render farm ".into(),
        scopes,
        token_hash: "h1".into(),
        hint: "vsk_…abcd".into(),
        expires_at: None,
        at: now(),
    }
}

fn created() -> AccessTokenEvent {
    AccessTokenEvent::AccessTokenCreated {
        account_id: AccountId(Uuid::nil()),
        kind: TokenKind::Api,
        label: "render farm".into(),
        scopes: vec![Scope::CreditsRead],
        token_hash: "h1".into(),
        hint: "vsk_…abcd".into(),
        expires_at: Some(now().plus(Duration::from_secs(3600))),
        at: now(),
    }
}

#[test]
fn api_tokens_need_scopes_and_cli_tokens_take_none() {
    given::<AccessToken>(vec![])
        .when(create(TokenKind::Api, vec![]))
        .then_error(invalid("scopes", "an API token needs at least one scope"));
    given::<AccessToken>(vec![])
        .when(create(TokenKind::CliDevice, vec![Scope::AccountRead]))
        .then_error(invalid("scopes", "CLI tokens take no scopes"));
    let events = AccessToken::default()
        .decide(&create(
            TokenKind::Api,
            vec![Scope::UsageRead, Scope::CreditsRead, Scope::UsageRead],
        ))
        .unwrap();
    let AccessTokenEvent::AccessTokenCreated { label, scopes, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(label, "render farm");
    assert_eq!(scopes, &vec![Scope::CreditsRead, Scope::UsageRead]);
}

#[test]
fn rotation_keeps_the_old_secret_for_the_grace_period_only() {
    let at = now().plus(Duration::from_secs(60));
    given::<AccessToken>(vec![created()])
        .when(AccessTokenCommand::Rotate {
            account_id: AccountId(Uuid::nil()),
            token_hash: "h2".into(),
            hint: "vsk_…wxyz".into(),
            grace: Duration::from_secs(600),
            at,
        })
        .then(vec![AccessTokenEvent::AccessTokenRotated {
            token_hash: "h2".into(),
            hint: "vsk_…wxyz".into(),
            previous_hash: "h1".into(),
            previous_valid_until: at.plus(Duration::from_secs(600)),
            at,
        }]);
    given::<AccessToken>(vec![created()])
        .when(AccessTokenCommand::Rotate {
            account_id: AccountId(Uuid::nil()),
            token_hash: "h2".into(),
            hint: "x".into(),
            grace: Duration::from_secs(86_401),
            at,
        })
        .then_error(invalid("grace_seconds", "must be at most 86400 (24 hours)"));
}

#[test]
fn only_the_owner_rotates_or_revokes_a_live_token() {
    let stranger = AccountId(Uuid::from_u128(7));
    given::<AccessToken>(vec![created()])
        .when(AccessTokenCommand::Revoke {
            account_id: stranger,
            at: now(),
        })
        .then_error(AccessTokenError::NotFound);
    given::<AccessToken>(vec![
        created(),
        AccessTokenEvent::AccessTokenRevoked { at: now() },
    ])
    .when(AccessTokenCommand::Revoke {
        account_id: AccountId(Uuid::nil()),
        at: now(),
    })
    .then_error(AccessTokenError::NotFound);
    given::<AccessToken>(vec![created()])
        .when(AccessTokenCommand::Rotate {
            account_id: AccountId(Uuid::nil()),
            token_hash: "h2".into(),
            hint: "x".into(),
            grace: Duration::ZERO,
            at: now().plus(Duration::from_secs(7200)),
        })
        .then_error(AccessTokenError::Expired);
}
