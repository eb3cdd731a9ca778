//! Password hashing: argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane), run on
//! the blocking pool with bounded concurrency so that a burst of sign-ins can neither stall
//! the async runtime nor exhaust memory.

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
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the account does not
    /// exist so that a wrong e-mail costs the same time as a wrong password.
    decoy: Arc<str>,
}

impl Passwords {
    /// OWASP's first recommended argon2id configuration.
    pub fn owasp_params() -> Params {
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters")
    }

    /// A hasher running at most `max_concurrent` hashes at once.
    pub fn new(max_concurrent: usize) -> Self {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Self::owasp_params());
        let salt = SaltString::generate(&mut OsRng);
        let decoy_password = uuid::Uuid::new_v4().to_string();
        let decoy = argon
            .hash_password(decoy_password.as_bytes(), &salt)
            .expect("hashing a decoy password")
            .to_string();
        Self {
            argon,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            decoy: decoy.into(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Task)?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || work(&argon))
            .await
            .map_err(|_| PasswordError::Task)
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| PasswordError::Hash(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`. With no hash (no such account), verifies against
    /// the decoy and answers false, taking the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let password = password.to_owned();
        let matches = self
            .run(move |argon| {
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
