//! given / when / then for two-factor authentication, re-authentication and the profile
//! (new-device notices: `tests_devices.rs`; deletion and the session cap: `tests_sessions.rs`).

use super::tests_support::*;
use super::*;
use crate::testing::given;

/// The proof session `n` must have made at or after `since`.
fn fresh_since(n: u128, since: i64) -> Fresh {
    Fresh {
        session_id: session(n),
        since: at(since),
    }
}

/// Signed up, signed in, then enrolments started with each of `secrets`.
fn enrolling(secrets: &[&str]) -> Vec<AccountEvent> {
    let mut history = vec![registered(), started(1, 0, "Firefox")];
    history.extend(secrets.iter().zip(1..).map(|(secret, n)| {
        AccountEvent::TotpEnrollmentStarted {
            secret: (*secret).into(),
            at: at(n),
        }
    }));
    history
}

#[test]
fn enrolment_is_confirmed_by_a_code_and_turns_2fa_on() {
    let history = enrolling(&["SECRET"]);
    let state = given::<Account>(history)
        .when(AccountCommand::ConfirmTotp {
            secret: "SECRET".into(),
            step: 100,
            recovery_code_hashes: vec!["r1".into()],
            fresh: fresh_since(1, 0),
            at: at(2),
        })
        .then([AccountEvent::TotpEnabled {
            recovery_code_hashes: vec!["r1".into()],
            step: 100,
            at: at(2),
        }]);
    assert!(state.totp.enabled());
    assert_eq!(state.totp.secret.as_deref(), Some("SECRET"));
    given::<Account>([registered()])
        .when(AccountCommand::ConfirmTotp {
            secret: "SECRET".into(),
            step: 1,
            recovery_code_hashes: vec![],
            fresh: fresh_since(1, 0),
            at: at(2),
        })
        .then_error(AccountError::NoPendingEnrollment);
    given::<Account>(totp_on())
        .when(AccountCommand::StartTotpEnrollment {
            secret: "OTHER".into(),
            fresh: fresh_since(1, 0),
            at: at(3),
        })
        .then_error(AccountError::TotpAlreadyEnabled);
}

/// A code checked against the secret pending when the confirmation started turns nothing
/// on once another enrolment replaced that secret (a second tab, a double click): the
/// user's app holds the first.
#[test]
fn a_confirmation_for_a_replaced_secret_turns_nothing_on() {
    given::<Account>(enrolling(&["FIRST", "SECOND"]))
        .when(AccountCommand::ConfirmTotp {
            secret: "FIRST".into(),
            step: 100,
            recovery_code_hashes: vec!["r1".into()],
            fresh: fresh_since(1, 0),
            at: at(3),
        })
        .then_error(AccountError::InvalidSecondFactor);
}

#[test]
fn with_2fa_on_a_sign_in_needs_a_fresh_code() {
    given::<Account>(totp_on())
        .when(sign_in(2, 10, None, "Firefox"))
        .then_error(AccountError::SecondFactorRequired);
    // The confirming code's step, and any before it, are spent.
    given::<Account>(totp_on())
        .when(sign_in(
            2,
            10,
            Some(SecondFactor::Totp { step: 100 }),
            "Firefox",
        ))
        .then_error(AccountError::InvalidSecondFactor);
    let state = given::<Account>(totp_on())
        .when(sign_in(
            2,
            10,
            Some(SecondFactor::Totp { step: 101 }),
            "Firefox",
        ))
        .then([AccountEvent::SessionStarted {
            session_id: session(2),
            token_hash: "t2".into(),
            started_at: at(10),
            expires_at: at(10 + 86_400),
            origin: origin("Firefox"),
            second_factor: Some(SecondFactor::Totp { step: 101 }),
        }]);
    assert_eq!(state.totp.last_step, Some(101));
    // The same code again, within its 30 seconds, is refused.
    state
        .decide(&sign_in(
            3,
            11,
            Some(SecondFactor::Totp { step: 101 }),
            "Firefox",
        ))
        .map(|_| ())
        .expect_err("a replayed code");
}

#[test]
fn a_code_proves_only_the_secret_it_was_checked_against() {
    // 2FA turned off and on again with another secret while a sign-in checked its code
    // against the first one.
    let mut history = totp_on();
    history.extend([
        AccountEvent::TotpDisabled {
            second_factor: SecondFactor::Totp { step: 101 },
            at: at(3),
        },
        AccountEvent::TotpEnrollmentStarted {
            secret: "OTHER".into(),
            at: at(4),
        },
        AccountEvent::TotpEnabled {
            recovery_code_hashes: vec![],
            step: 102,
            at: at(5),
        },
    ]);
    let code = Some(SecondFactor::Totp { step: 110 });
    for stale in [Some("SECRET"), None] {
        given::<Account>(history.clone())
            .when(sign_in_checked(2, 10, code.clone(), "Firefox", stale))
            .then_error(AccountError::InvalidSecondFactor);
    }
    let state = given::<Account>(history)
        .when(sign_in_checked(
            2,
            10,
            code.clone(),
            "Firefox",
            Some("OTHER"),
        ))
        .then([AccountEvent::SessionStarted {
            session_id: session(2),
            token_hash: "t2".into(),
            started_at: at(10),
            expires_at: at(10 + 86_400),
            origin: origin("Firefox"),
            second_factor: code,
        }]);
    assert_eq!(state.totp.last_step, Some(110));
}

#[test]
fn a_recovery_code_signs_in_once() {
    let factor = SecondFactor::RecoveryCode {
        code_hash: "r1".into(),
    };
    let state = given::<Account>(totp_on())
        .when(sign_in(2, 10, Some(factor.clone()), "Firefox"))
        .then([
            AccountEvent::SessionStarted {
                session_id: session(2),
                token_hash: "t2".into(),
                started_at: at(10),
                expires_at: at(10 + 86_400),
                origin: origin("Firefox"),
                second_factor: Some(factor.clone()),
            },
            AccountEvent::RecoveryCodeUsed {
                code_hash: "r1".into(),
                remaining: 1,
                at: at(10),
            },
        ]);
    assert_eq!(
        state.decide(&sign_in(3, 11, Some(factor), "Firefox")),
        Err(AccountError::InvalidSecondFactor)
    );
}

#[test]
fn sensitive_changes_need_a_recent_proof() {
    let history = vec![registered(), started(1, 0, "Firefox")];
    let change = |since: i64| AccountCommand::ChangePassword {
        new_password_hash: "new".into(),
        verified_password_version: 0,
        sign_out_other_sessions: false,
        revoke_tokens: false,
        fresh: Fresh {
            session_id: session(1),
            since: at(since),
        },
        at: at(700),
    };
    given::<Account>(history.clone())
        .when(change(1))
        .then_error(AccountError::ReauthenticationRequired);
    let mut reauthenticated = history.clone();
    reauthenticated.push(AccountEvent::SessionReauthenticated {
        session_id: session(1),
        second_factor: None,
        at: at(650),
    });
    let state =
        given::<Account>(reauthenticated)
            .when(change(100))
            .then([AccountEvent::PasswordChanged {
                password_hash: "new".into(),
                changed_at: at(700),
                changed_by_session: Some(session(1)),
                tokens_revoked: false,
                reset_link: None,
                second_factor: None,
            }]);
    assert_eq!(state.password_version, 1);
}

#[test]
fn a_data_export_needs_a_recent_proof_and_is_recorded() {
    let history = vec![registered(), started(1, 0, "Firefox")];
    let export = |since: i64| AccountCommand::RecordDataExport {
        fresh: fresh_since(1, since),
        at: at(700),
    };
    given::<Account>(history.clone())
        .when(export(1))
        .then_error(AccountError::ReauthenticationRequired);
    given::<Account>(history.clone())
        .when(AccountCommand::RecordDataExport {
            fresh: fresh_since(9, 0),
            at: at(700),
        })
        .then_error(AccountError::SessionNotFound);
    given::<Account>(history)
        .when(export(0))
        .then([AccountEvent::DataExported {
            session_id: session(1),
            at: at(700),
        }]);
}

#[test]
fn re_authentication_with_2fa_on_needs_a_code() {
    let reauth = |factor| AccountCommand::Reauthenticate {
        session_id: session(1),
        verified_password_version: 0,
        second_factor: factor,
        totp_secret: Some("SECRET".into()),
        at: at(900),
    };
    given::<Account>(totp_on())
        .when(reauth(None))
        .then_error(AccountError::SecondFactorRequired);
    let state = given::<Account>(totp_on())
        .when(reauth(Some(SecondFactor::Totp { step: 130 })))
        .then([AccountEvent::SessionReauthenticated {
            session_id: session(1),
            second_factor: Some(SecondFactor::Totp { step: 130 }),
            at: at(900),
        }]);
    assert_eq!(state.sessions[&session(1)].authenticated_at, at(900));
}

#[test]
fn turning_2fa_off_needs_a_code_and_a_recent_proof() {
    let disable = |step: u64, since: i64| AccountCommand::DisableTotp {
        verified_password_version: 0,
        second_factor: SecondFactor::Totp { step },
        totp_secret: Some("SECRET".into()),
        fresh: Fresh {
            session_id: session(1),
            since: at(since),
        },
        at: at(30),
    };
    given::<Account>(totp_on())
        .when(disable(101, 10))
        .then_error(AccountError::ReauthenticationRequired);
    given::<Account>(totp_on())
        .when(disable(99, 0))
        .then_error(AccountError::InvalidSecondFactor);
    let state =
        given::<Account>(totp_on())
            .when(disable(101, 0))
            .then([AccountEvent::TotpDisabled {
                second_factor: SecondFactor::Totp { step: 101 },
                at: at(30),
            }]);
    assert!(!state.totp.enabled());
}

#[test]
fn regenerated_recovery_codes_replace_the_old_ones() {
    let state = given::<Account>(totp_on())
        .when(AccountCommand::RegenerateRecoveryCodes {
            recovery_code_hashes: vec!["n1".into()],
            fresh: Fresh {
                session_id: session(1),
                since: at(0),
            },
            at: at(30),
        })
        .then([AccountEvent::RecoveryCodesRegenerated {
            recovery_code_hashes: vec!["n1".into()],
            at: at(30),
        }]);
    let old = SecondFactor::RecoveryCode {
        code_hash: "r1".into(),
    };
    assert_eq!(
        state.decide(&sign_in(2, 40, Some(old), "Firefox")),
        Err(AccountError::InvalidSecondFactor)
    );
    given::<Account>([registered(), started(1, 0, "Firefox")])
        .when(AccountCommand::RegenerateRecoveryCodes {
            recovery_code_hashes: vec![],
            fresh: Fresh {
                session_id: session(1),
                since: at(0),
            },
            at: at(30),
        })
        .then_error(AccountError::TotpNotEnabled);
}

#[test]
fn a_profile_update_records_only_what_changed() {
    let bio = Bio::parse("Makes films").unwrap();
    let state = given::<Account>([registered()])
        .when(AccountCommand::UpdateProfile {
            display_name: Some(DisplayName::parse("Ada").unwrap()),
            bio: Some(bio.clone()),
            public_profile: Some(true),
            at: at(5),
        })
        .then([AccountEvent::ProfileUpdated {
            display_name: None,
            bio: Some(bio.clone()),
            public_profile: Some(true),
            at: at(5),
        }]);
    assert!(state.public_profile);
    assert_eq!(
        state.decide(&AccountCommand::UpdateProfile {
            display_name: None,
            bio: Some(bio),
            public_profile: Some(true),
            at: at(6)
        }),
        Ok(vec![])
    );
}

#[test]
fn a_rehash_replaces_only_the_hash_it_was_checked_against() {
    let rehash = |verified: &str| AccountCommand::RehashPassword {
        verified_hash: verified.into(),
        password_hash: "current".into(),
        at: at(5),
    };
    let state = given::<Account>([registered()]).when(rehash("hash")).then([
        AccountEvent::PasswordRehashed {
            password_hash: "current".into(),
            at: at(5),
        },
    ]);
    assert_eq!(state.password_hash.as_deref(), Some("current"));
    assert_eq!(state.password_version, 0, "the same password");
    // Changed meanwhile: the new password's hash stays.
    given::<Account>([registered()])
        .when(rehash("another"))
        .then([]);
}
