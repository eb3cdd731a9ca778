//! The secret's format: a prefix that says what leaked (`vsk_` API, `vcli_` CLI), 256
//! random bits in base64url, and a checksum that refuses a mistyped or invented token
//! without a look-up.

use crate::tokens::{IssuedToken, hash_token};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::access_token::TokenKind;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of public API tokens.
pub const API_TOKEN_PREFIX: &str = "vsk_";
/// Prefix of CLI tokens.
pub const CLI_TOKEN_PREFIX: &str = "vcli_";
const SECRET_CHARS: usize = 43;
const CHECKSUM_CHARS: usize = 6;

/// Which family a well-formed token belongs to, from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFamily {
    /// `vsk_…`: the public API.
    Api,
    /// `vcli_…`: the CLI.
    Cli,
}

impl TokenFamily {
    fn prefix(self) -> &'static str {
        match self {
            Self::Api => API_TOKEN_PREFIX,
            Self::Cli => CLI_TOKEN_PREFIX,
        }
    }

    /// Whether a token of `kind` belongs to this family.
    pub fn admits(self, kind: TokenKind) -> bool {
        match self {
            Self::Api => kind == TokenKind::Api,
            Self::Cli => kind.is_cli(),
        }
    }
}

fn checksum(body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..4])[..CHECKSUM_CHARS].to_owned()
}

/// A new token of `family`.
pub fn new_access_token(family: TokenFamily) -> IssuedToken {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let body = format!("{}{}", family.prefix(), URL_SAFE_NO_PAD.encode(secret));
    let token = format!("{body}{}", checksum(&body));
    let hash = hash_token(&token);
    IssuedToken { token, hash }
}

/// The family of `token` if it is well formed (prefix, length, alphabet and checksum);
/// `None` for anything else, decided without any look-up.
pub fn well_formed(token: &str) -> Option<TokenFamily> {
    let family = [TokenFamily::Api, TokenFamily::Cli]
        .into_iter()
        .find(|f| token.starts_with(f.prefix()))?;
    let rest = &token[family.prefix().len()..];
    if rest.len() != SECRET_CHARS + CHECKSUM_CHARS
        || !rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let (body, sum) = token.split_at(token.len() - CHECKSUM_CHARS);
    (checksum(body) == sum).then_some(family)
}

/// How a token is shown in lists: its prefix and last four characters.
pub fn hint(token: &str) -> String {
    let prefix = if token.starts_with(CLI_TOKEN_PREFIX) {
        CLI_TOKEN_PREFIX
    } else {
        API_TOKEN_PREFIX
    };
    format!("{prefix}…{}", &token[token.len().saturating_sub(4)..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_carry_a_prefix_256_bits_and_a_checksum() {
        let api = new_access_token(TokenFamily::Api);
        let cli = new_access_token(TokenFamily::Cli);
        assert!(api.token.starts_with("vsk_") && cli.token.starts_with("vcli_"));
        assert_eq!(api.token.len(), 4 + 43 + 6);
        assert_eq!(well_formed(&api.token), Some(TokenFamily::Api));
        assert_eq!(well_formed(&cli.token), Some(TokenFamily::Cli));
        assert_eq!(api.hash, hash_token(&api.token));
        assert!(!format!("{api:?}").contains(&api.token));
    }

    #[test]
    fn a_mistyped_token_is_refused_without_a_look_up() {
        let token = new_access_token(TokenFamily::Api).token;
        // Change one character of the secret: the checksum no longer matches.
        let mut typo = token.clone().into_bytes();
        typo[10] = if typo[10] == b'A' { b'B' } else { b'A' };
        assert_eq!(well_formed(&String::from_utf8(typo).unwrap()), None);
        assert_eq!(well_formed(&token[..token.len() - 1]), None);
        assert_eq!(well_formed(&format!("ses_{}", &token[4..])), None);
        assert_eq!(well_formed("vsk_"), None);
        assert_eq!(well_formed(&token.replace("vsk_", "vcli_")), None);
    }

    #[test]
    fn hints_show_the_prefix_and_the_last_four_characters() {
        let token = new_access_token(TokenFamily::Cli).token;
        let hint = hint(&token);
        assert!(hint.starts_with("vcli_…"));
        assert!(token.ends_with(&hint["vcli_…".len()..]));
    }
}
