//! Bearer tokens: 256 random bits, handed to the client once, stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of session tokens, so a leaked one is recognisable.
pub const SESSION_TOKEN_PREFIX: &str = "ses_";

/// A freshly issued token and the hash that is stored instead of it.
pub struct IssuedToken {
    /// Give this to the client; never store or log it.
    pub token: String,
    /// Store this.
    pub hash: String,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Prefix of operator tokens, accepted only on `/admin/*`.
pub const OPERATOR_TOKEN_PREFIX: &str = "adm_";

/// A new token: `prefix` and 32 random bytes, base64url.
pub fn new_token(prefix: &str) -> IssuedToken {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = hash_token(&token);
    IssuedToken { token, hash }
}

/// A new session token.
pub fn new_session_token() -> IssuedToken {
    new_token(SESSION_TOKEN_PREFIX)
}

/// The stored form of a token: SHA-256, hex. Tokens carry 256 random bits, so a fast
/// hash is enough; a slow one would only slow down every request.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let a = new_session_token();
        let b = new_session_token();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with(SESSION_TOKEN_PREFIX));
        // 32 bytes = 43 base64url characters: at least 256 bits.
        assert_eq!(a.token.len(), SESSION_TOKEN_PREFIX.len() + 43);
        assert_eq!(a.hash, hash_token(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert!(!format!("{a:?}").contains(&a.token));
    }
}
