//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane), run on
//! the blocking pool with bounded concurrency so that a burst of sign-ins can neither stall
//! the async runtime nor exhaust memory.
//!
//! The bound is split in two shares that never borrow from each other: verifying a
//! password (sign-in, re-authentication, the current password of a change) takes a permit
//! of the larger share; hashing a new one (registration, a password change) one of the
//! smaller. A flood of registrations therefore queues behind itself, never in front of a
//! sign-in.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Why hashing failed (never because a password is wrong).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused its input.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task died.
    #[error("password hashing task failed")]
    Task,
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    /// Verifications: sign-ins and other proofs of the current password.
    verify_permits: Arc<Semaphore>,
    /// New hashes: registrations and password changes.
    hash_permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the account does not
    /// exist so that a wrong e-mail costs the same time as a wrong password.
    decoy: Arc<str>,
}

/// How `max_concurrent` hashes at once are shared: `(verifications, new hashes)`. New
/// hashes get a quarter (at least one), verifications the rest (at least one); with fewer
/// than two permits there is nothing to split, and each share gets one.
pub fn shares(max_concurrent: usize) -> (usize, usize) {
    let new_hashes = (max_concurrent / 4).max(1);
    let verifications = max_concurrent.saturating_sub(new_hashes).max(1);
    (verifications, new_hashes)
}

impl Passwords {
    /// OWASP's first recommended argon2id configuration.
    pub fn owasp_params() -> Params {
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
    }

    /// A hasher running at most `max_concurrent` hashes at once, in two [`shares`].
    pub fn new(max_concurrent: usize) -> Self {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Self::owasp_params());
        let salt = SaltString::generate(&mut OsRng);
        let decoy_password = uuid::Uuid::new_v4().to_string();
        let decoy = argon
            .hash_password(decoy_password.as_bytes(), &salt)
            .expect("hashing a decoy password")
            .to_string();
        let (verifications, new_hashes) = shares(max_concurrent);
        Self {
            argon,
            verify_permits: Arc::new(Semaphore::new(verifications)),
            hash_permits: Arc::new(Semaphore::new(new_hashes)),
            decoy: decoy.into(),
        }
    }

    /// Permits free now: `(verifications, new hashes)`.
    pub fn available(&self) -> (usize, usize) {
        (
            self.verify_permits.available_permits(),
            self.hash_permits.available_permits(),
        )
    }

    async fn run<T: Send + 'static>(
        &self,
        share: &Semaphore,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = share.acquire().await.map_err(|_| PasswordError::Task)?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || work(&argon))
            .await
            .map_err(|_| PasswordError::Task)
    }

    /// Hashes a new password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`), on
    /// the share of new hashes.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(&self.hash_permits, move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`, on the share of verifications. With no hash (no
    /// such account), verifies against the decoy and answers false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let password = password.to_owned();
        let matches = self
            .run(&self.verify_permits, move |argon| {
                PasswordHash::new(&hash)
                    .map(|parsed| argon.verify_password(password.as_bytes(), &parsed).is_ok())
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_owasp_parameters_and_verifies() {
        let passwords = Passwords::new(2);
        let hash = passwords.hash("correct-horse-7-battery").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
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
}
