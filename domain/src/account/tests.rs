//! given(events) / when(command) / then(events or error) for the account aggregate.

use super::*;
use crate::session::{RevocationReason, SessionOrigin};
use crate::testing::given;
use uuid::Uuid;

fn account_id() -> AccountId {
    AccountId(Uuid::from_u128(7))
}
fn session(n: u128) -> SessionId {
    SessionId(Uuid::from_u128(100 + n))
}
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
}
fn registered() -> AccountEvent {
    AccountEvent::AccountRegistered {
        account_id: account_id(),
        email: EmailAddress::parse("ada@example.com").unwrap(),
        display_name: DisplayName::parse("Ada").unwrap(),
        password_hash: "hash-1".into(),
        registered_at: at(0),
    }
}
fn started(n: u128, expires: i64) -> AccountEvent {
    AccountEvent::SessionStarted {
        session_id: session(n),
        token_hash: format!("token-{n}"),
        started_at: at(1),
        expires_at: at(expires),
        origin: SessionOrigin::default(),
        second_factor: None,
    }
}
fn revoked(n: u128, reason: RevocationReason, when: i64) -> AccountEvent {
    AccountEvent::SessionRevoked {
        session_id: session(n),
        reason,
        revoked_at: at(when),
    }
}
fn start(n: u128, version: u32) -> AccountCommand {
    AccountCommand::StartSession {
        session_id: session(n),
        token_hash: format!("token-{n}"),
        verified_password_version: version,
        second_factor: None,
        totp_secret: None,
        expires_at: at(1000),
        origin: SessionOrigin::default(),
        at: at(1),
    }
}

#[test]
fn registers_a_new_account() {
    let AccountEvent::AccountRegistered {
        email,
        display_name,
        ..
    } = registered()
    else {
        unreachable!()
    };
    given::<Account>([])
        .when(AccountCommand::Register {
            account_id: account_id(),
            email,
            display_name,
            password_hash: "hash-1".into(),
            at: at(0),
        })
        .then([
            registered(),
            AccountEvent::EmailVerificationRequested {
                email: EmailAddress::parse("ada@example.com").unwrap(),
                generation: 1,
                expires_at: at(0).plus(VERIFICATION_LINK_LIFETIME),
                at: at(0),
            },
        ]);
}

#[test]
fn refuses_to_register_twice() {
    let AccountEvent::AccountRegistered {
        email,
        display_name,
        ..
    } = registered()
    else {
        unreachable!()
    };
    given::<Account>([registered()])
        .when(AccountCommand::Register {
            account_id: account_id(),
            email,
            display_name,
            password_hash: "hash-2".into(),
            at: at(5),
        })
        .then_error(AccountError::AlreadyRegistered);
}

#[test]
fn commands_on_a_missing_account_are_refused() {
    given::<Account>([])
        .when(start(1, 0))
        .then_error(AccountError::NotFound);
}

#[test]
fn a_sign_in_starts_a_session() {
    let state = given::<Account>([registered()])
        .when(start(1, 0))
        .then([started(1, 1000)]);
    assert_eq!(state.session_status(session(1)), SessionStatus::Active);
}

#[test]
fn a_sign_in_checked_against_an_old_password_is_refused() {
    given::<Account>([
        registered(),
        AccountEvent::PasswordChanged {
            password_hash: "hash-2".into(),
            changed_at: at(2),
            changed_by_session: None,
            tokens_revoked: false,
            reset_link: None,
            second_factor: None,
        },
    ])
    .when(start(1, 0))
    .then_error(AccountError::CredentialsChanged);
}

#[test]
fn a_session_id_is_never_reused() {
    given::<Account>([
        registered(),
        started(1, 1000),
        revoked(1, RevocationReason::Logout, 3),
    ])
    .when(start(1, 0))
    .then_error(AccountError::SessionExists);
}

#[test]
fn a_session_must_expire_after_it_starts() {
    given::<Account>([registered()])
        .when(AccountCommand::StartSession {
            session_id: session(1),
            token_hash: "t".into(),
            verified_password_version: 0,
            second_factor: None,
            totp_secret: None,
            expires_at: at(1),
            origin: SessionOrigin::default(),
            at: at(1),
        })
        .then_error(AccountError::InvalidExpiry);
}

#[test]
fn logout_revokes_the_session_and_a_retry_changes_nothing() {
    let state = given::<Account>([registered(), started(1, 1000)])
        .when(AccountCommand::RevokeSession {
            session_id: session(1),
            reason: RevocationReason::Logout,
            at: at(3),
        })
        .then([revoked(1, RevocationReason::Logout, 3)]);
    assert_eq!(state.session_status(session(1)), SessionStatus::Ended);

    given::<Account>([
        registered(),
        started(1, 1000),
        revoked(1, RevocationReason::Logout, 3),
    ])
    .when(AccountCommand::RevokeSession {
        session_id: session(1),
        reason: RevocationReason::Logout,
        at: at(4),
    })
    .then([]);
}

#[test]
fn revoking_a_session_the_account_never_had_is_refused() {
    given::<Account>([registered(), started(1, 1000)])
        .when(AccountCommand::RevokeSession {
            session_id: session(9),
            reason: RevocationReason::Revoked,
            at: at(3),
        })
        .then_error(AccountError::SessionNotFound);
}

#[test]
fn sign_out_others_keeps_the_caller_and_skips_expired_sessions() {
    given::<Account>([
        registered(),
        started(1, 1000),
        started(2, 1000),
        started(3, 10),
        started(4, 1000),
        revoked(4, RevocationReason::Logout, 5),
    ])
    .when(AccountCommand::RevokeOtherSessions {
        keep: session(1),
        at: at(20),
    })
    .then([revoked(2, RevocationReason::SignedOutOthers, 20)]);
}

#[test]
fn a_password_change_can_sign_out_the_other_sessions_atomically() {
    let state = given::<Account>([registered(), started(1, 1000), started(2, 1000)])
        .when(AccountCommand::ChangePassword {
            new_password_hash: "hash-2".into(),
            verified_password_version: 0,
            sign_out_other_sessions: true,
            revoke_tokens: false,
            fresh: Fresh {
                session_id: session(1),
                since: at(0),
            },
            at: at(30),
        })
        .then([
            AccountEvent::PasswordChanged {
                password_hash: "hash-2".into(),
                changed_at: at(30),
                changed_by_session: Some(session(1)),
                tokens_revoked: false,
                reset_link: None,
                second_factor: None,
            },
            revoked(2, RevocationReason::PasswordChanged, 30),
        ]);
    assert_eq!(state.password_version, 1);
    assert_eq!(state.password_hash.as_deref(), Some("hash-2"));
    assert_eq!(state.session_status(session(1)), SessionStatus::Active);
}

#[test]
fn a_password_change_without_sign_out_keeps_every_session() {
    given::<Account>([registered(), started(1, 1000), started(2, 1000)])
        .when(AccountCommand::ChangePassword {
            new_password_hash: "hash-2".into(),
            verified_password_version: 0,
            sign_out_other_sessions: false,
            revoke_tokens: false,
            fresh: Fresh {
                session_id: session(1),
                since: at(0),
            },
            at: at(30),
        })
        .then([AccountEvent::PasswordChanged {
            password_hash: "hash-2".into(),
            changed_at: at(30),
            changed_by_session: Some(session(1)),
            tokens_revoked: false,
            reset_link: None,
            second_factor: None,
        }]);
}

#[test]
fn a_password_change_verified_against_a_stale_hash_is_refused() {
    given::<Account>([
        registered(),
        started(1, 1000),
        AccountEvent::PasswordChanged {
            password_hash: "hash-2".into(),
            changed_at: at(2),
            changed_by_session: None,
            tokens_revoked: false,
            reset_link: None,
            second_factor: None,
        },
    ])
    .when(AccountCommand::ChangePassword {
        new_password_hash: "hash-3".into(),
        verified_password_version: 0,
        sign_out_other_sessions: false,
        revoke_tokens: false,
        fresh: Fresh {
            session_id: session(1),
            since: at(0),
        },
        at: at(30),
    })
    .then_error(AccountError::CredentialsChanged);
}

#[test]
fn events_serialise_with_their_type_tag() {
    let json = serde_json::to_value(revoked(1, RevocationReason::PasswordChanged, 3)).unwrap();
    assert_eq!(json["type"], "SessionRevoked");
    assert_eq!(json["reason"], "password_changed");
    let back: AccountEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, revoked(1, RevocationReason::PasswordChanged, 3));
}
