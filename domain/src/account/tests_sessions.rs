//! given / when / then for deletion, erasure and the cap on live sessions (whose revocations
//! a deletion or a sign-out of the others must fit in one append).

use super::tests_support::{at, origin, registered, session, sign_in, started};
use super::*;
use crate::session::RevocationReason;
use crate::testing::given;

#[test]
fn deletion_ends_every_session_and_then_nothing_is_possible() {
    let history = vec![
        registered(),
        started(1, 0, "Firefox"),
        started(2, 50_000, "Safari"),
        started(3, 60_000, "Chrome"),
    ];
    let delete = AccountCommand::DeleteAccount {
        verified_password_version: 0,
        reservation_stream: "email-abc".into(),
        fresh: Fresh {
            session_id: session(1),
            since: at(0),
        },
        at: at(100_000),
    };
    let state = given::<Account>(history).when(delete).then([
        AccountEvent::AccountDeleted {
            reservation_stream: "email-abc".into(),
            avatar_blob_key: None,
            at: at(100_000),
        },
        // Session 1 expired before (at 86,400): it ends with the account, unrevoked.
        AccountEvent::SessionRevoked {
            session_id: session(2),
            reason: RevocationReason::AccountDeleted,
            revoked_at: at(100_000),
        },
        AccountEvent::SessionRevoked {
            session_id: session(3),
            reason: RevocationReason::AccountDeleted,
            revoked_at: at(100_000),
        },
    ]);
    assert!(!state.is_registered());
    assert!(state.sessions.is_empty());
    assert_eq!(state.session_status(session(1)), SessionStatus::Ended);
    assert_eq!(
        state.decide(&sign_in(3, 100_001, None, "Firefox")),
        Err(AccountError::NotFound)
    );
}

/// A script that signs in without signing out: the sign-in past the cap ends the oldest
/// live session (the expired ones do not count), so the account never holds more.
#[test]
fn a_sign_in_past_the_cap_ends_the_oldest_live_session() {
    use crate::session::MAX_LIVE_SESSIONS;
    let cap = MAX_LIVE_SESSIONS as u128;
    // One session long expired, then `cap` live ones, started a second apart.
    let history: Vec<_> = std::iter::once(registered())
        .chain((0..=cap).map(|n| started(n, n as i64, "Firefox")))
        .collect();
    // Session 0 expires at 86,400 exactly; the others after.
    let now = 86_400;
    let the_new_one = AccountEvent::SessionStarted {
        session_id: session(cap + 1),
        token_hash: format!("t{}", cap + 1),
        started_at: at(now),
        expires_at: at(now + 86_400),
        origin: origin("Firefox"),
        second_factor: None,
    };
    let state = given::<Account>(history.clone())
        .when(sign_in(cap + 1, now, None, "Firefox"))
        .then([
            the_new_one.clone(),
            AccountEvent::SessionRevoked {
                session_id: session(1),
                reason: RevocationReason::Superseded,
                revoked_at: at(now),
            },
        ]);
    let live = state.sessions.values().filter(|s| !s.is_expired(at(now)));
    assert_eq!(live.count(), MAX_LIVE_SESSIONS);
    // Below the cap, nothing ends.
    given::<Account>(history[..history.len() - 1].to_vec())
        .when(sign_in(cap + 1, now, None, "Firefox"))
        .then([the_new_one]);
}

/// An account signed in more often than one append holds events, over its life, can still
/// be deleted: only its live sessions are revoked.
#[test]
fn deleting_an_account_signed_in_many_times_revokes_only_its_live_sessions() {
    // More sign-ins than the 10,000 events the log takes in one append.
    let old = 10_001;
    let history: Vec<_> = std::iter::once(registered())
        .chain((0..old).map(|n| started(n, 0, "Firefox")))
        .chain(std::iter::once(started(old, 100_000, "Safari")))
        .collect();
    let delete = AccountCommand::DeleteAccount {
        verified_password_version: 0,
        reservation_stream: "email-abc".into(),
        fresh: Fresh {
            session_id: session(old),
            since: at(100_000),
        },
        at: at(100_001),
    };
    given::<Account>(history).when(delete).then([
        AccountEvent::AccountDeleted {
            reservation_stream: "email-abc".into(),
            avatar_blob_key: None,
            at: at(100_001),
        },
        AccountEvent::SessionRevoked {
            session_id: session(old),
            reason: RevocationReason::AccountDeleted,
            revoked_at: at(100_001),
        },
    ]);
}

#[test]
fn erasure_is_recorded_once_and_only_after_deletion() {
    let erase = AccountCommand::RecordErasure { at: at(200_000) };
    given::<Account>([registered()])
        .when(erase.clone())
        .then_error(AccountError::NotFound);
    let deleted = AccountEvent::AccountDeleted {
        reservation_stream: "email-abc".into(),
        avatar_blob_key: None,
        at: at(100_000),
    };
    let erased = AccountEvent::AccountErased { at: at(200_000) };
    given::<Account>([registered(), deleted.clone()])
        .when(erase.clone())
        .then([erased.clone()]);
    given::<Account>([registered(), deleted.clone(), erased.clone()])
        .when(erase.clone())
        .then([]);
    // Once the key is gone the registration no longer opens: the deletion decides.
    given::<Account>([deleted])
        .when(erase.clone())
        .then([erased]);
    given::<Account>([])
        .when(erase)
        .then_error(AccountError::NotFound);
}
