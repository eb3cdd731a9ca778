//! given / when / then for a forgotten password: only the latest link works, once, within
//! the hour; a change from a session ends it; the reset ends every session, needs the second
//! factor with 2FA on, and verifies the address.

use super::tests_support::{at, registered, session, started, totp_on};
use super::*;
use crate::session::RevocationReason;
use crate::testing::given;

fn requested(generation: u32, when: i64) -> AccountEvent {
    AccountEvent::PasswordResetRequested {
        email: EmailAddress::parse("ada@example.com").unwrap(),
        generation,
        expires_at: at(when).plus(PASSWORD_RESET_LINK_LIFETIME),
        at: at(when),
    }
}

fn reset(generation: u32, when: i64, factor: Option<SecondFactor>) -> AccountCommand {
    AccountCommand::ResetPassword {
        generation,
        new_password_hash: "new".into(),
        second_factor: factor,
        totp_secret: Some("SECRET".into()),
        revoke_tokens: false,
        at: at(when),
    }
}

fn changed(generation: u32, when: i64, factor: Option<SecondFactor>) -> AccountEvent {
    AccountEvent::PasswordChanged {
        password_hash: "new".into(),
        changed_at: at(when),
        changed_by_session: None,
        tokens_revoked: false,
        reset_link: Some(generation),
        second_factor: factor,
    }
}

fn ended(n: u128, when: i64) -> AccountEvent {
    AccountEvent::SessionRevoked {
        session_id: session(n),
        reason: RevocationReason::PasswordChanged,
        revoked_at: at(when),
    }
}

fn verified(when: i64) -> AccountEvent {
    AccountEvent::EmailVerified {
        generation: 0,
        at: at(when),
    }
}

#[test]
fn the_latest_link_sets_the_password_ends_every_session_and_verifies_the_address() {
    let account = given::<Account>([
        registered(),
        started(1, 0, "Firefox"),
        started(2, 1, "Safari"),
        requested(1, 10),
    ])
    .when(reset(1, 20, None))
    .then([
        changed(1, 20, None),
        ended(1, 20),
        ended(2, 20),
        verified(20),
    ]);
    assert_eq!(account.password_hash.as_deref(), Some("new"));
    assert_eq!(account.password_version, 1);
    assert!(account.sessions.is_empty());
    assert!(account.email_verification.is_verified());
}

#[test]
fn a_link_works_once() {
    given::<Account>([registered(), requested(1, 0), changed(1, 5, None)])
        .when(reset(1, 10, None))
        .then_error(AccountError::PasswordResetLinkInvalid);
}

#[test]
fn a_replaced_link_or_one_never_sent_is_invalid() {
    given::<Account>([registered(), requested(1, 0), requested(2, 100)])
        .when(reset(1, 110, None))
        .then_error(AccountError::PasswordResetLinkInvalid);
    given::<Account>([registered(), requested(1, 0)])
        .when(reset(2, 10, None))
        .then_error(AccountError::PasswordResetLinkInvalid);
    given::<Account>([registered()])
        .when(reset(0, 10, None))
        .then_error(AccountError::PasswordResetLinkInvalid);
}

#[test]
fn a_change_from_a_session_ends_an_outstanding_link() {
    let from_session = AccountEvent::PasswordChanged {
        password_hash: "other".into(),
        changed_at: at(5),
        changed_by_session: Some(session(1)),
        tokens_revoked: false,
        reset_link: None,
        second_factor: None,
    };
    given::<Account>([registered(), requested(1, 0), from_session])
        .when(reset(1, 10, None))
        .then_error(AccountError::PasswordResetLinkInvalid);
}

#[test]
fn a_link_past_its_hour_is_refused() {
    let hour = i64::try_from(PASSWORD_RESET_LINK_LIFETIME.as_secs()).unwrap();
    given::<Account>([registered(), requested(1, 0)])
        .when(reset(1, hour, None))
        .then_error(AccountError::PasswordResetLinkExpired);
    given::<Account>([registered(), requested(1, 0)])
        .when(reset(1, hour - 1, None))
        .then([changed(1, hour - 1, None), verified(hour - 1)]);
}

#[test]
fn with_two_factor_on_the_link_alone_is_not_enough() {
    let mut history = totp_on();
    history.push(requested(1, 10));
    given::<Account>(history.clone())
        .when(reset(1, 20, None))
        .then_error(AccountError::SecondFactorRequired);
    // A step used before proves nothing.
    let replayed = Some(SecondFactor::Totp { step: 100 });
    given::<Account>(history.clone())
        .when(reset(1, 20, replayed))
        .then_error(AccountError::InvalidSecondFactor);
    let code = Some(SecondFactor::Totp { step: 101 });
    let account = given::<Account>(history.clone())
        .when(reset(1, 20, code.clone()))
        .then([changed(1, 20, code), ended(1, 20), verified(20)]);
    assert_eq!(account.totp.last_step, Some(101), "the step is used up");
    // A recovery code is used up with it.
    let recovery = Some(SecondFactor::RecoveryCode {
        code_hash: "r1".into(),
    });
    given::<Account>(history)
        .when(reset(1, 20, recovery.clone()))
        .then([
            changed(1, 20, recovery),
            AccountEvent::RecoveryCodeUsed {
                code_hash: "r1".into(),
                remaining: 1,
                at: at(20),
            },
            ended(1, 20),
            verified(20),
        ]);
}

#[test]
fn a_new_link_replaces_the_last_but_not_within_a_minute() {
    given::<Account>([registered(), requested(1, 0)])
        .when(AccountCommand::RequestPasswordReset { at: at(45) })
        .then_error(AccountError::PasswordResetRequestedRecently {
            retry_after: std::time::Duration::from_secs(15),
        });
    let account = given::<Account>([registered(), requested(1, 0)])
        .when(AccountCommand::RequestPasswordReset { at: at(60) })
        .then([requested(2, 60)]);
    assert_eq!(account.password_reset.generation, 2);
    given::<Account>([registered()])
        .when(AccountCommand::RequestPasswordReset { at: at(1) })
        .then([requested(1, 1)]);
}

#[test]
fn a_deleted_account_resets_nothing() {
    let deleted = AccountEvent::AccountDeleted {
        reservation_stream: "emailreservation-x".into(),
        avatar_blob_key: None,
        at: at(5),
    };
    given::<Account>([registered(), requested(1, 0), deleted.clone()])
        .when(reset(1, 10, None))
        .then_error(AccountError::NotFound);
    given::<Account>([registered(), deleted])
        .when(AccountCommand::RequestPasswordReset { at: at(10) })
        .then_error(AccountError::NotFound);
}
