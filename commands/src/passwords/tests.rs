//! Tests of password hashing: parameters, the decoy, the shares and their borrowing, the
//! working areas, agreement with hashes the RustCrypto `argon2` crate made.

use super::*;

/// The hashing threads a hasher of `max_concurrent` starts: one per permit of either share.
fn hashing_threads(max_concurrent: usize) -> usize {
    let (verifications, new_hashes) = shares(max_concurrent);
    verifications + new_hashes
}

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
    let decoy = argon2_rust::decode_string(DECOY, Algorithm::Argon2id).unwrap();
    assert_eq!(decoy.version, Version::V0x13);
    let (params, current) = (decoy.params, Passwords::owasp_params());
    assert_eq!(
        (params.memory_blocks(), params.passes(), params.lanes()),
        (current.memory_blocks(), current.passes(), current.lanes())
    );
    assert_eq!(decoy.hash.len(), 32);
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
    let threads = hashing_threads(2);
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

/// Hashes the RustCrypto `argon2` crate (0.5.3, the implementation before this one) made
/// of `KNOWN_PASSWORD` with the salt `known-answer-salt`: at the current parameters, at the
/// earlier 19 MiB ones, and at a cheaper setting made elsewhere.
const KNOWN_PASSWORD: &str = "correct horse battery staple";
const KNOWN_CURRENT: &str = "$argon2id$v=19$m=7168,t=5,p=1$a25vd24tYW5zd2VyLXNhbHQ$lRIwBgCVU4ihWCB1TcA1FYmUwwMnhdkppZKBfBrP4aI";
const KNOWN_EARLIER: &str = "$argon2id$v=19$m=19456,t=2,p=1$a25vd24tYW5zd2VyLXNhbHQ$eBLOJsDGEa0FOShFosIQGeIVHV1wptjmXxad6TLNCms";
const KNOWN_CHEAP: &str = "$argon2id$v=19$m=8192,t=1,p=1$a25vd24tYW5zd2VyLXNhbHQ$U8oIYI/qSqFWRHbZ9R234SY6Fa3ver1xAV0osJQV2p8";

#[tokio::test]
async fn hashes_the_earlier_implementation_made_verify_and_new_ones_match_them() {
    let passwords = Passwords::new(1);
    for known in [KNOWN_CURRENT, KNOWN_CHEAP, KNOWN_EARLIER, KNOWN_CURRENT] {
        let verify = |password| passwords.verify(password, Some(known));
        assert!(verify(KNOWN_PASSWORD).await.unwrap(), "{known}");
        assert!(
            !verify("correct horse battery stapler").await.unwrap(),
            "{known}"
        );
    }
    // The same password and salt hashed here gives the same string, byte for byte.
    let mut hasher = Passwords::argon2().hasher();
    let ours = hasher
        .hash_encoded(KNOWN_PASSWORD.as_bytes(), b"known-answer-salt")
        .unwrap();
    assert_eq!(ours, KNOWN_CURRENT);
    assert!(!passwords.verify("x", Some("not a hash")).await.unwrap());
    // Only argon2id hashes are ours: an argon2i string of the same tag matches nothing.
    let argon2i = KNOWN_CURRENT.replacen("$argon2id$", "$argon2i$", 1);
    assert!(
        !passwords
            .verify(KNOWN_PASSWORD, Some(&argon2i))
            .await
            .unwrap()
    );
}

/// Accounts registered before the parameters moved to 7 MiB hold 19 MiB, 2-pass hashes:
/// they verify in an area of their own, and the thread keeps only the current one.
#[tokio::test]
async fn hashes_of_the_earlier_19_mib_parameters_still_verify() {
    let passwords = Passwords::new(1);
    let current = passwords.hash(KNOWN_PASSWORD).await.unwrap();
    for hash in [KNOWN_EARLIER, &current, KNOWN_EARLIER] {
        let verify = |password| passwords.verify(password, Some(hash));
        assert!(verify(KNOWN_PASSWORD).await.unwrap(), "{hash}");
        assert!(
            !verify("correct horse battery stapler").await.unwrap(),
            "{hash}"
        );
    }
    // New hashes keep the current parameters after those checks.
    let after = passwords.hash(KNOWN_PASSWORD).await.unwrap();
    assert!(Passwords::is_current(&after) && Passwords::is_current(KNOWN_CURRENT));
    assert!(!Passwords::is_current(KNOWN_EARLIER) && !Passwords::is_current(KNOWN_CHEAP));
    assert!(
        after.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
        "{after}"
    );
    // One area per thread, each allocated once: none grew to 19 MiB.
    let threads = hashing_threads(1);
    assert!(
        passwords.working_areas() <= threads,
        "{}",
        passwords.working_areas()
    );
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
