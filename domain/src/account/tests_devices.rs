//! given / when / then for new-device notices: a sign-in from a device class or a network
//! the account has not signed in from before.

use super::*;
use crate::session::SessionOrigin;
use crate::testing::given;
use uuid::Uuid;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_800_000_000_000_000 + seconds * 1_000_000)
}

fn session(n: u128) -> SessionId {
    SessionId(Uuid::from_u128(100 + n))
}

fn registered() -> AccountEvent {
    AccountEvent::AccountRegistered {
        account_id: AccountId(Uuid::from_u128(7)),
        email: EmailAddress::parse("ada@example.com").unwrap(),
        display_name: DisplayName::parse("Ada").unwrap(),
        password_hash: "hash".into(),
        registered_at: at(0),
    }
}

fn origin(device: &str, ip: Option<&str>, location: Option<&str>) -> SessionOrigin {
    SessionOrigin {
        device: device.into(),
        ip: ip.map(Into::into),
        user_agent: Some(format!("agent of {device}")),
        location: location.map(Into::into),
    }
}

fn started(n: u128, origin: SessionOrigin) -> AccountEvent {
    AccountEvent::SessionStarted {
        session_id: session(n),
        token_hash: format!("t{n}"),
        started_at: at(n as i64),
        expires_at: at(n as i64 + 86_400),
        origin,
        second_factor: None,
    }
}

fn sign_in(n: u128, origin: SessionOrigin) -> AccountCommand {
    AccountCommand::StartSession {
        session_id: session(n),
        token_hash: format!("t{n}"),
        verified_password_version: 0,
        second_factor: None,
        totp_secret: None,
        expires_at: at(n as i64 + 86_400),
        origin,
        at: at(n as i64),
    }
}

fn notice(n: u128, origin: &SessionOrigin) -> AccountEvent {
    AccountEvent::NewDeviceSignedIn {
        session_id: session(n),
        device: origin.device.clone(),
        ip: origin.ip.clone(),
        location: origin.location.clone(),
        at: at(n as i64),
    }
}

/// Whether signing in from `then` after signing in from `before` is news.
fn is_news(before: SessionOrigin, then: SessionOrigin) -> bool {
    let mut account = Account::default();
    account.evolve(&registered());
    account.evolve(&started(1, before));
    let decided = account.decide(&sign_in(2, then.clone())).unwrap();
    assert_eq!(
        decided[0],
        started(2, then),
        "the session starts either way"
    );
    match decided.len() {
        1 => false,
        2 => true,
        n => panic!("{n} events: {decided:?}"),
    }
}

#[test]
fn a_sign_in_from_an_unknown_device_class_is_recorded_for_a_notice() {
    let home = origin("Firefox 128 on Linux", Some("203.0.113.7"), None);
    let phone = origin("Safari 17 on iOS", Some("203.0.113.7"), None);
    given::<Account>([registered(), started(1, home)])
        .when(sign_in(2, phone.clone()))
        .then([started(2, phone.clone()), notice(2, &phone)]);
}

#[test]
fn the_same_browser_on_another_network_is_a_new_device() {
    let home = origin("Firefox 128 on Linux", Some("203.0.113.7"), None);
    let thief = origin("Firefox 128 on Linux", Some("198.51.100.20"), None);
    given::<Account>([registered(), started(1, home)])
        .when(sign_in(2, thief.clone()))
        .then([started(2, thief.clone()), notice(2, &thief)]);
    let v6_home = origin("Firefox 128 on Linux", Some("2001:db8:1:1::7"), None);
    let v6_elsewhere = origin("Firefox 128 on Linux", Some("2001:db8:2:1::7"), None);
    assert!(is_news(v6_home, v6_elsewhere), "another /48");
}

#[test]
fn the_same_device_on_its_network_or_after_an_update_is_not_news() {
    let home = origin("Firefox 128 on Linux", Some("203.0.113.7"), None);
    let next_door = origin("Firefox 128 on Linux", Some("203.0.113.200"), None);
    assert!(!is_news(home.clone(), next_door), "same /24");
    let updated = origin("Firefox 129 on Linux", Some("203.0.113.7"), None);
    assert!(!is_news(home, updated), "a version is not a device");
    let v6_home = origin("Firefox 128 on Linux", Some("2001:db8:1:1::7"), None);
    let v6_same = origin("Firefox 128 on Linux", Some("2001:db8:1:ffff::9"), None);
    assert!(!is_news(v6_home, v6_same), "same /48");
    let mapped = origin("Firefox 128 on Linux", Some("::ffff:203.0.113.9"), None);
    let plain = origin("Firefox 128 on Linux", Some("203.0.113.7"), None);
    assert!(
        !is_news(plain, mapped),
        "an IPv4-mapped address is its IPv4 network"
    );
}

#[test]
fn without_an_ip_the_location_tells_places_apart() {
    let paris = origin("Firefox 128 on Linux", None, Some("Paris, FR"));
    let lagos = origin("Firefox 128 on Linux", None, Some("Lagos, NG"));
    assert!(is_news(paris.clone(), lagos));
    assert!(!is_news(paris.clone(), paris));
}

#[test]
fn the_first_sign_in_is_not_news() {
    let first = origin("Firefox 128 on Linux", Some("203.0.113.7"), None);
    given::<Account>([registered()])
        .when(sign_in(1, first.clone()))
        .then([started(1, first)]);
}
