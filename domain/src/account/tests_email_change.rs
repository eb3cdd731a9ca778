//! given / when / then for a change of address: asked for with the password and a recent
//! proof, one a minute; only the latest link moves the account, within a day, unless the
//! change was withdrawn; the move proves the new address and ends a reset link sent to the
//! old one.

use super::tests_support::{at, registered, session, started};
use super::*;
use crate::testing::given;

fn address(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

fn fresh(when: i64) -> Fresh {
    Fresh {
        session_id: session(1),
        since: at(when - 600),
    }
}

fn request(new: &str, when: i64) -> AccountCommand {
    AccountCommand::RequestEmailChange {
        new_email: address(new),
        verified_password_version: 0,
        fresh: fresh(when),
        at: at(when),
    }
}

fn requested(new: &str, generation: u32, when: i64) -> AccountEvent {
    AccountEvent::EmailChangeRequested {
        email: address(new),
        generation,
        expires_at: at(when).plus(EMAIL_CHANGE_LINK_LIFETIME),
        at: at(when),
    }
}

fn confirm(generation: u32, when: i64) -> AccountCommand {
    AccountCommand::ConfirmEmailChange {
        generation,
        at: at(when),
    }
}

fn changed(new: &str, generation: u32, when: i64) -> AccountEvent {
    AccountEvent::EmailChanged {
        old_email: address("ada@example.com"),
        new_email: address(new),
        generation,
        at: at(when),
    }
}

#[test]
fn a_change_is_asked_for_with_the_password_and_a_recent_proof() {
    let account = given::<Account>([registered(), started(1, 0, "Firefox")])
        .when(request("ada@new.example", 10))
        .then([requested("ada@new.example", 1, 10)]);
    // The account keeps its address until the link is opened.
    assert_eq!(account.email, Some(address("ada@example.com")));
    assert_eq!(
        account.email_change.pending.map(|p| p.email),
        Some(address("ada@new.example"))
    );

    // A stale proof, or a password checked against an older version, is refused.
    given::<Account>([registered(), started(1, 0, "Firefox")])
        .when(request("ada@new.example", 1_000))
        .then_error(AccountError::ReauthenticationRequired);
    given::<Account>([registered(), started(1, 0, "Firefox")])
        .when(AccountCommand::RequestEmailChange {
            new_email: address("ada@new.example"),
            verified_password_version: 7,
            fresh: fresh(10),
            at: at(10),
        })
        .then_error(AccountError::CredentialsChanged);
}

#[test]
fn the_current_address_in_other_letters_is_no_change() {
    given::<Account>([registered(), started(1, 0, "Firefox")])
        .when(request("ADA@example.com", 10))
        .then_error(AccountError::EmailUnchanged);
}

#[test]
fn one_change_a_minute_is_asked_for_and_the_next_replaces_it() {
    given::<Account>([
        registered(),
        started(1, 0, "Firefox"),
        requested("a@new.example", 1, 10),
    ])
    .when(request("b@new.example", 40))
    .then_error(AccountError::EmailChangeRequestedRecently {
        retry_after: std::time::Duration::from_secs(30),
    });
    let account = given::<Account>([
        registered(),
        started(1, 0, "Firefox"),
        requested("a@new.example", 1, 10),
    ])
    .when(request("b@new.example", 70))
    .then([requested("b@new.example", 2, 70)]);
    // Only the latest link works.
    assert_eq!(
        account.check_email_change_link(1, at(80)),
        Err(AccountError::EmailChangeLinkInvalid)
    );
}

#[test]
fn the_latest_link_moves_the_account_proves_the_address_and_ends_a_reset_link() {
    let account = given::<Account>([
        registered(),
        started(1, 0, "Firefox"),
        AccountEvent::PasswordResetRequested {
            email: address("ada@example.com"),
            generation: 1,
            expires_at: at(3_600),
            at: at(5),
        },
        requested("ada@new.example", 1, 10),
    ])
    .when(confirm(1, 20))
    .then([changed("ada@new.example", 1, 20)]);
    assert_eq!(account.email, Some(address("ada@new.example")));
    assert!(account.email_verification.is_verified());
    assert_eq!(account.email_change.pending, None);
    assert_eq!(
        account.check_reset_link(1, at(30)),
        Err(AccountError::PasswordResetLinkInvalid)
    );
    // Opened again: nothing more happens.
    given::<Account>([
        registered(),
        started(1, 0, "Firefox"),
        requested("ada@new.example", 1, 10),
        changed("ada@new.example", 1, 20),
    ])
    .when(confirm(1, 30))
    .then([]);
}

#[test]
fn a_link_past_its_day_an_unknown_one_or_a_withdrawn_one_moves_nothing() {
    let day = i64::try_from(EMAIL_CHANGE_LINK_LIFETIME.as_secs()).unwrap();
    given::<Account>([registered(), requested("ada@new.example", 1, 10)])
        .when(confirm(1, 10 + day))
        .then_error(AccountError::EmailChangeLinkExpired);
    given::<Account>([registered(), requested("ada@new.example", 1, 10)])
        .when(confirm(2, 20))
        .then_error(AccountError::EmailChangeLinkInvalid);
    given::<Account>([registered()])
        .when(confirm(0, 20))
        .then_error(AccountError::EmailChangeLinkInvalid);

    let account = given::<Account>([registered(), requested("ada@new.example", 1, 10)])
        .when(AccountCommand::CancelEmailChange { at: at(15) })
        .then([AccountEvent::EmailChangeCancelled {
            generation: 1,
            at: at(15),
        }]);
    assert_eq!(
        account.check_email_change_link(1, at(20)),
        Err(AccountError::EmailChangeLinkInvalid)
    );
    // Withdrawing when nothing is pending changes nothing.
    given::<Account>([
        registered(),
        requested("ada@new.example", 1, 10),
        AccountEvent::EmailChangeCancelled {
            generation: 1,
            at: at(15),
        },
    ])
    .when(AccountCommand::CancelEmailChange { at: at(20) })
    .then([]);
}

#[test]
fn a_deleted_account_moves_nowhere() {
    given::<Account>([
        registered(),
        requested("ada@new.example", 1, 10),
        AccountEvent::AccountDeleted {
            reservation_stream: "email-abc".into(),
            avatar_blob_key: None,
            at: at(15),
        },
    ])
    .when(confirm(1, 20))
    .then_error(AccountError::NotFound);
}
