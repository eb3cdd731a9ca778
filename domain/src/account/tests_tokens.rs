//! given / when / then for the changes that need a recent proof besides the password
//! (turning 2FA on, issuing tokens), the count of live tokens, and a password change
//! that revokes every token.

use super::*;
use crate::session::{RevocationReason, SessionOrigin};
use crate::testing::given;
use std::time::Duration;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
}
fn session(n: u128) -> SessionId {
    SessionId(Uuid::from_u128(100 + n))
}
fn token(n: u128) -> Uuid {
    Uuid::from_u128(500 + n)
}
/// What a change at `now` needs with a ten-minute window.
fn fresh_at(now: i64) -> Fresh {
    Fresh::within(session(1), at(now), Duration::from_secs(600))
}
/// An account with session 1, signed in at 0.
fn signed_in() -> Vec<AccountEvent> {
    vec![
        AccountEvent::AccountRegistered {
            account_id: AccountId(Uuid::from_u128(7)),
            email: EmailAddress::parse("ada@example.com").unwrap(),
            display_name: DisplayName::parse("Ada").unwrap(),
            password_hash: "hash".into(),
            registered_at: at(0),
        },
        AccountEvent::SessionStarted {
            session_id: session(1),
            token_hash: "t1".into(),
            started_at: at(0),
            expires_at: at(86_400),
            origin: SessionOrigin::default(),
            second_factor: None,
        },
    ]
}
fn reauthenticated(when: i64) -> AccountEvent {
    AccountEvent::SessionReauthenticated {
        session_id: session(1),
        second_factor: None,
        at: at(when),
    }
}
fn issue(n: u128, expires_at: Option<Timestamp>, now: i64) -> AccountCommand {
    AccountCommand::IssueAccessToken {
        token_id: token(n),
        kind: TokenKind::Api,
        expires_at,
        max_live: 2,
        fresh: fresh_at(now),
        at: at(now),
    }
}
fn issued(n: u128, expires_at: Option<Timestamp>, when: i64) -> AccountEvent {
    AccountEvent::AccessTokenIssued {
        token_id: token(n),
        kind: TokenKind::Api,
        expires_at,
        at: at(when),
    }
}

#[test]
fn the_window_counts_back_from_now() {
    assert_eq!(
        fresh_at(700),
        Fresh {
            session_id: session(1),
            since: at(100)
        }
    );
}

#[test]
fn turning_2fa_on_needs_a_recent_proof() {
    let enrol = |now: i64| AccountCommand::StartTotpEnrollment {
        secret: "SECRET".into(),
        fresh: fresh_at(now),
        at: at(now),
    };
    // Signed in at 0: fresh until 600.
    given::<Account>(signed_in())
        .when(enrol(601))
        .then_error(AccountError::ReauthenticationRequired);
    let mut history = signed_in();
    history.push(reauthenticated(700));
    given::<Account>(history.clone()).when(enrol(701)).then([
        AccountEvent::TotpEnrollmentStarted {
            secret: "SECRET".into(),
            at: at(701),
        },
    ]);
    history.push(AccountEvent::TotpEnrollmentStarted {
        secret: "SECRET".into(),
        at: at(701),
    });
    let confirm = |now: i64| AccountCommand::ConfirmTotp {
        secret: "SECRET".into(),
        step: 100,
        recovery_code_hashes: vec!["r1".into()],
        fresh: fresh_at(now),
        at: at(now),
    };
    // Enrolled while fresh, confirmed once the proof is stale: refused.
    given::<Account>(history.clone())
        .when(confirm(1301))
        .then_error(AccountError::ReauthenticationRequired);
    given::<Account>(history)
        .when(confirm(1300))
        .then([AccountEvent::TotpEnabled {
            recovery_code_hashes: vec!["r1".into()],
            step: 100,
            at: at(1300),
        }]);
}

#[test]
fn issuing_a_token_needs_a_recent_proof_of_a_live_session() {
    given::<Account>(signed_in())
        .when(issue(1, None, 601))
        .then_error(AccountError::ReauthenticationRequired);
    let state = given::<Account>(signed_in())
        .when(issue(1, None, 600))
        .then([issued(1, None, 600)]);
    assert_eq!(state.live_tokens(at(600)), 1);
    let mut history = signed_in();
    history.push(AccountEvent::SessionRevoked {
        session_id: session(1),
        reason: RevocationReason::Logout,
        revoked_at: at(10),
    });
    given::<Account>(history)
        .when(issue(1, None, 20))
        .then_error(AccountError::SessionNotFound);
}

#[test]
fn live_tokens_are_capped_and_revoked_or_expired_ones_do_not_count() {
    let mut history = signed_in();
    history.extend([issued(1, None, 10), issued(2, Some(at(50)), 11)]);
    given::<Account>(history.clone())
        .when(issue(3, None, 20))
        .then_error(AccountError::TooManyTokens { max: 2 });
    // The same issue again (a retry) changes nothing and is not refused.
    given::<Account>(history.clone())
        .when(issue(2, None, 20))
        .then([]);
    // Token 2 expired at 50.
    let state = given::<Account>(history.clone())
        .when(issue(3, None, 50))
        .then([issued(3, None, 50)]);
    assert!(
        !state.access_tokens.contains_key(&token(2)),
        "expired tokens are forgotten"
    );
    // Token 1 revoked.
    given::<Account>(history.clone())
        .when(AccountCommand::RetireAccessToken {
            token_id: token(1),
            at: at(20),
        })
        .then([AccountEvent::AccessTokenRetired {
            token_id: token(1),
            at: at(20),
        }]);
    history.push(AccountEvent::AccessTokenRetired {
        token_id: token(1),
        at: at(20),
    });
    given::<Account>(history.clone())
        .when(issue(3, None, 21))
        .then([issued(3, None, 21)]);
    // Retiring a token the account does not count is nothing to do.
    given::<Account>(history)
        .when(AccountCommand::RetireAccessToken {
            token_id: token(1),
            at: at(22),
        })
        .then([]);
}

#[test]
fn a_password_change_can_revoke_every_token_in_the_same_append() {
    let mut history = signed_in();
    history.extend([issued(1, None, 10), issued(2, None, 11)]);
    let change = |revoke_tokens| AccountCommand::ChangePassword {
        new_password_hash: "hash-2".into(),
        verified_password_version: 0,
        sign_out_other_sessions: false,
        revoke_tokens,
        fresh: fresh_at(30),
        at: at(30),
    };
    let state = given::<Account>(history.clone()).when(change(true)).then([
        AccountEvent::PasswordChanged {
            password_hash: "hash-2".into(),
            changed_at: at(30),
            changed_by_session: Some(session(1)),
            tokens_revoked: true,
            reset_link: None,
            second_factor: None,
        },
    ]);
    assert_eq!(state.live_tokens(at(30)), 0);
    let state =
        given::<Account>(history)
            .when(change(false))
            .then([AccountEvent::PasswordChanged {
                password_hash: "hash-2".into(),
                changed_at: at(30),
                changed_by_session: Some(session(1)),
                tokens_revoked: false,
                reset_link: None,
                second_factor: None,
            }]);
    assert_eq!(state.live_tokens(at(30)), 2);
}

#[test]
fn a_password_change_stored_before_tokens_were_revoked_with_it_still_decodes() {
    let old = serde_json::json!({
        "type": "PasswordChanged",
        "password_hash": "hash",
        "changed_at": at(1),
        "changed_by_session": null,
    });
    let event: AccountEvent = serde_json::from_value(old).unwrap();
    assert_eq!(
        event,
        AccountEvent::PasswordChanged {
            password_hash: "hash".into(),
            changed_at: at(1),
            changed_by_session: None,
            tokens_revoked: false,
            reset_link: None,
            second_factor: None,
        }
    );
    // And a change that revoked none is written as before.
    assert!(
        serde_json::to_value(&event)
            .unwrap()
            .get("tokens_revoked")
            .is_none()
    );
}
