//! Tests of password hashing: parameters, the decoy, the shares and their borrowing, the
//! working areas, agreement with the argon2 crate's own hasher.

use super::*;

#[tokio::test]
async fn hashes_with_argon2id_owasp_parameters_and_verifies() {
    let passwords = Passwords::new(2);
    let hash = passwords.hash("correct-horse-7-battery").await.unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
    assert!(
        passwords
            .verify("correct-horse-7-battery", Some(&hash))
            .await
            .unwrap()
    );
    assert!(
        !passwords
            .verify("correct-horse-7-batterY", Some(&hash))
            .await
            .unwrap()
    );
    assert!(
        !passwords
            .verify("correct-horse-7-battery", None)
            .await
            .unwrap()
    );
    assert_ne!(
        hash,
        passwords.hash("correct-horse-7-battery").await.unwrap(),
        "salted"
    );
}

#[test]
fn the_decoy_is_hashed_with_the_current_parameters() {
    let decoy = PasswordHash::new(DECOY).unwrap();
    assert_eq!(decoy.algorithm, Algorithm::Argon2id.ident());
    assert_eq!(decoy.version, Some(Version::V0x13.into()));
    let (params, current) = (Params::try_from(&decoy).unwrap(), Passwords::owasp_params());
    assert_eq!(
        (params.m_cost(), params.t_cost(), params.p_cost()),
        (current.m_cost(), current.t_cost(), current.p_cost())
    );
}

#[test]
fn new_hashes_get_a_quarter_of_the_permits_and_verifications_the_rest() {
    assert_eq!(shares(8), (6, 2));
    assert_eq!(shares(4), (3, 1));
    assert_eq!(shares(2), (1, 1));
    assert_eq!(shares(1), (1, 1));
    assert_eq!(shares(0), (1, 1));
}

#[tokio::test]
async fn new_hashes_waiting_for_permits_never_hold_up_a_verification() {
    let passwords = Passwords::new(4);
    let hash = passwords.hash("correct-horse-7-battery").await.unwrap();
    assert_eq!(passwords.available(), (3, 1));
    // A registration flood: every permit of new hashes taken, and more queued behind.
    let all = passwords.hash_permits.available_permits() as u32;
    let held = passwords
        .hash_permits
        .clone()
        .acquire_many_owned(all)
        .await
        .unwrap();
    let mut queued = Box::pin(passwords.hash("an0ther-Long-secret"));
    assert!(
        futures_poll_once(&mut queued).await.is_none(),
        "a new hash waits for a permit of its share"
    );
    assert_eq!(passwords.available(), (3, 0));
    // A sign-in still runs on its own share (were the shares one, it would wait for
    // the permits held above forever; the timeout only turns that hang into a failure).
    let verified = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        passwords.verify("correct-horse-7-battery", Some(&hash)),
    )
    .await
    .expect("a verification does not wait for the permits of new hashes");
    assert!(verified.unwrap());
    assert_eq!(passwords.available(), (3, 0));
    drop(held);
    assert!(queued.await.unwrap().starts_with("$argon2id$"));
    assert_eq!(passwords.available(), (3, 1));
}

#[tokio::test]
async fn a_verification_borrows_an_idle_permit_of_new_hashes_never_a_wanted_one() {
    let passwords = Passwords::new(2);
    let hash = passwords.hash("correct-horse-7-battery").await.unwrap();
    assert_eq!(passwords.available(), (1, 1));
    let own = passwords
        .verify_permits
        .clone()
        .acquire_owned()
        .await
        .unwrap();
    // Its own share busy, a sign-in runs on the idle permit of new hashes.
    let verified = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        passwords.verify("correct-horse-7-battery", Some(&hash)),
    )
    .await
    .expect("a verification borrows the idle permit");
    assert!(verified.unwrap());
    assert_eq!(passwords.available(), (0, 1), "the borrowed permit is back");

    // With a new hash waiting, nothing is idle to borrow: the new hash gets the permit
    // when it frees, and the verification waits for its own share.
    let theirs = passwords
        .hash_permits
        .clone()
        .acquire_owned()
        .await
        .unwrap();
    let mut queued_hash = Box::pin(passwords.hash("an0ther-Long-secret"));
    assert!(futures_poll_once(&mut queued_hash).await.is_none());
    let mut queued_verify = Box::pin(passwords.verify("correct-horse-7-battery", Some(&hash)));
    assert!(futures_poll_once(&mut queued_verify).await.is_none());
    drop(theirs);
    assert!(queued_hash.await.unwrap().starts_with("$argon2id$"));
    assert!(
        futures_poll_once(&mut queued_verify).await.is_none(),
        "the verification did not take the permit a new hash was waiting for"
    );
    drop(own);
    assert!(queued_verify.await.unwrap());
    assert_eq!(passwords.available(), (1, 1));
}

/// Polls `future` once: its output if it is ready, without waiting.
async fn futures_poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut *future).poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test]
async fn many_hashes_reuse_one_working_area_per_thread() {
    let passwords = Passwords::new(2);
    let threads = {
        let (v, h) = shares(2);
        v + h
    };
    let hash = passwords.hash("correct-horse-7-battery").await.unwrap();
    let burst: Vec<_> = (0..12)
        .map(|i| {
            let passwords = passwords.clone();
            let hash = hash.clone();
            tokio::spawn(async move {
                passwords
                    .verify(&format!("wrong-{i}"), Some(&hash))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for verified in burst {
        assert!(!verified.await.unwrap());
    }
    assert!(
        passwords.working_areas() <= threads,
        "{} areas for {threads} threads",
        passwords.working_areas()
    );
}

#[tokio::test]
async fn hashes_agree_with_the_argon2_crates_own_hasher_both_ways() {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};
    let passwords = Passwords::new(1);
    let argon = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Passwords::owasp_params(),
    );
    let ours = passwords.hash("correct-horse-7-battery").await.unwrap();
    let parsed = PasswordHash::new(&ours).unwrap();
    assert!(
        argon
            .verify_password(b"correct-horse-7-battery", &parsed)
            .is_ok()
    );
    // A hash made elsewhere, with other parameters (an older, cheaper setting).
    let salt = SaltString::generate(&mut OsRng);
    let cheap = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8 * 1024, 1, 1, None).unwrap(),
    );
    let theirs = cheap
        .hash_password(b"correct-horse-7-battery", &salt)
        .unwrap()
        .to_string();
    assert!(
        passwords
            .verify("correct-horse-7-battery", Some(&theirs))
            .await
            .unwrap()
    );
    assert!(
        !passwords
            .verify("correct-horse-7-batterY", Some(&theirs))
            .await
            .unwrap()
    );
    assert!(!passwords.verify("x", Some("not a hash")).await.unwrap());
}

/// Accounts registered before the parameters moved to 7 MiB hold 19 MiB, 2-pass hashes:
/// they verify, on a thread whose area then serves the smaller current hashes too.
#[tokio::test]
async fn hashes_of_the_earlier_19_mib_parameters_still_verify() {
    use argon2::password_hash::PasswordHasher;
    let passwords = Passwords::new(1);
    let earlier = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).unwrap(),
    )
    .hash_password(
        b"correct-horse-7-battery",
        &SaltString::generate(&mut OsRng),
    )
    .unwrap()
    .to_string();
    assert!(
        earlier.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{earlier}"
    );
    let current = passwords.hash("correct-horse-7-battery").await.unwrap();
    for hash in [&earlier, &current, &earlier] {
        let verify = |password| passwords.verify(password, Some(hash));
        assert!(verify("correct-horse-7-battery").await.unwrap(), "{hash}");
        assert!(!verify("correct-horse-7-batterY").await.unwrap(), "{hash}");
    }
}

#[tokio::test]
async fn long_passwords_are_not_truncated() {
    let passwords = Passwords::new(1);
    let long = "a1!".repeat(40);
    let hash = passwords.hash(&long).await.unwrap();
    assert!(
        !passwords
            .verify(&long[..long.len() - 1], Some(&hash))
            .await
            .unwrap()
    );
    assert!(passwords.verify(&long, Some(&hash)).await.unwrap());
}
