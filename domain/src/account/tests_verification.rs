//! given / when / then for e-mail verification: only the latest link works, until it
//! expires; a new one is sent at most once a minute; verifying twice changes nothing.

use super::tests_support::{at, registered};
use super::*;
use crate::testing::given;

fn requested(generation: u32, when: i64) -> AccountEvent {
    AccountEvent::EmailVerificationRequested {
        email: EmailAddress::parse("ada@example.com").unwrap(),
        generation,
        expires_at: at(when).plus(VERIFICATION_LINK_LIFETIME),
        at: at(when),
    }
}

fn verify(generation: u32, when: i64) -> AccountCommand {
    AccountCommand::VerifyEmail {
        generation,
        at: at(when),
    }
}

#[test]
fn the_latest_link_verifies_the_address() {
    let account = given::<Account>([registered(), requested(1, 0)])
        .when(verify(1, 10))
        .then([AccountEvent::EmailVerified {
            generation: 1,
            at: at(10),
        }]);
    assert!(account.email_verification.is_verified());
}

#[test]
fn a_replaced_link_or_one_never_sent_is_invalid() {
    given::<Account>([registered(), requested(1, 0), requested(2, 100)])
        .when(verify(1, 110))
        .then_error(AccountError::VerificationLinkInvalid);
    given::<Account>([registered(), requested(1, 0)])
        .when(verify(2, 10))
        .then_error(AccountError::VerificationLinkInvalid);
    // An account registered before verification existed has no link yet.
    given::<Account>([registered()])
        .when(verify(0, 10))
        .then_error(AccountError::VerificationLinkInvalid);
}

#[test]
fn a_link_past_its_expiry_is_refused() {
    let lifetime = i64::try_from(VERIFICATION_LINK_LIFETIME.as_secs()).unwrap();
    given::<Account>([registered(), requested(1, 0)])
        .when(verify(1, lifetime))
        .then_error(AccountError::VerificationLinkExpired);
    given::<Account>([registered(), requested(1, 0)])
        .when(verify(1, lifetime - 1))
        .then([AccountEvent::EmailVerified {
            generation: 1,
            at: at(lifetime - 1),
        }]);
}

#[test]
fn any_link_once_verified_changes_nothing() {
    let verified = AccountEvent::EmailVerified {
        generation: 1,
        at: at(5),
    };
    given::<Account>([registered(), requested(1, 0), verified.clone()])
        .when(verify(1, 10))
        .then([]);
    given::<Account>([registered(), requested(1, 0), verified])
        .when(AccountCommand::RequestEmailVerification { at: at(500) })
        .then_error(AccountError::EmailAlreadyVerified);
}

#[test]
fn a_new_link_replaces_the_last_but_not_within_a_minute() {
    given::<Account>([registered(), requested(1, 0)])
        .when(AccountCommand::RequestEmailVerification { at: at(45) })
        .then_error(AccountError::VerificationRequestedRecently {
            retry_after: std::time::Duration::from_secs(15),
        });
    let account = given::<Account>([registered(), requested(1, 0)])
        .when(AccountCommand::RequestEmailVerification { at: at(60) })
        .then([requested(2, 60)]);
    assert_eq!(account.email_verification.generation, 2);
    // An account from before verification existed gets its first link at once.
    given::<Account>([registered()])
        .when(AccountCommand::RequestEmailVerification { at: at(1) })
        .then([requested(1, 1)]);
}

#[test]
fn a_deleted_account_verifies_nothing() {
    let deleted = AccountEvent::AccountDeleted {
        reservation_stream: "emailreservation-x".into(),
        avatar_blob_key: None,
        at: at(5),
    };
    given::<Account>([registered(), requested(1, 0), deleted])
        .when(verify(1, 10))
        .then_error(AccountError::NotFound);
}
