//! The histories and commands the account's given / when / then tests share.

use super::*;
use crate::session::SessionOrigin;
use uuid::Uuid;

pub(super) fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
}
pub(super) fn session(n: u128) -> SessionId {
    SessionId(Uuid::from_u128(100 + n))
}
pub(super) fn registered() -> AccountEvent {
    AccountEvent::AccountRegistered {
        account_id: AccountId(Uuid::from_u128(7)),
        email: EmailAddress::parse("ada@example.com").unwrap(),
        display_name: DisplayName::parse("Ada").unwrap(),
        password_hash: "hash".into(),
        registered_at: at(0),
    }
}
pub(super) fn origin(device: &str) -> SessionOrigin {
    SessionOrigin {
        device: device.into(),
        ..Default::default()
    }
}
pub(super) fn started(n: u128, when: i64, device: &str) -> AccountEvent {
    AccountEvent::SessionStarted {
        session_id: session(n),
        token_hash: format!("t{n}"),
        started_at: at(when),
        expires_at: at(when + 86_400),
        origin: origin(device),
        second_factor: None,
    }
}
/// A sign-in whose code was checked against the secret [`totp_on`] turns on.
pub(super) fn sign_in(
    n: u128,
    when: i64,
    factor: Option<SecondFactor>,
    device: &str,
) -> AccountCommand {
    sign_in_checked(n, when, factor, device, Some("SECRET"))
}
/// A sign-in whose code was checked against `secret`.
pub(super) fn sign_in_checked(
    n: u128,
    when: i64,
    factor: Option<SecondFactor>,
    device: &str,
    secret: Option<&str>,
) -> AccountCommand {
    AccountCommand::StartSession {
        session_id: session(n),
        token_hash: format!("t{n}"),
        verified_password_version: 0,
        second_factor: factor,
        totp_secret: secret.map(Into::into),
        expires_at: at(when + 86_400),
        origin: origin(device),
        at: at(when),
    }
}
pub(super) fn totp_on() -> Vec<AccountEvent> {
    vec![
        registered(),
        started(1, 0, "Firefox"),
        AccountEvent::TotpEnrollmentStarted {
            secret: "SECRET".into(),
            at: at(1),
        },
        AccountEvent::TotpEnabled {
            recovery_code_hashes: vec!["r1".into(), "r2".into()],
            step: 100,
            at: at(2),
        },
    ]
}
