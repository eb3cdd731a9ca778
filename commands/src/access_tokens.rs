//! API and CLI tokens: the secret's format, and issuing, rotating and revoking them.
//!
//! A token reads `vsk_` (API) or `vcli_` (CLI), then 256 random bits in base64url, then a
//! 6-character checksum (the first 32 bits of SHA-256 over what precedes it). The prefix
//! tells secret scanners and people what leaked; the checksum lets the service refuse a
//! mistyped or made-up token without touching the database. Only the SHA-256 of the whole
//! token is stored, so checking one costs a hash and an index look-up.

use crate::clock::Clock;
use crate::error::CommandError;
use crate::executor::{CommandContext, Executor};
use crate::tokens::{IssuedToken, hash_token};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::access_token::{AccessToken, AccessTokenCommand, Scope, TokenKind};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;

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

/// A token just issued (or rotated): the secret is in here and nowhere else.
#[derive(Debug)]
pub struct IssuedAccessToken {
    /// Its id.
    pub token_id: Uuid,
    /// The secret, shown once.
    pub token: String,
    /// Its hint.
    pub hint: String,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
    /// Where the change was committed.
    pub position: GlobalPosition,
}

/// What a new token is to be.
#[derive(Debug, Clone)]
pub struct NewAccessToken {
    /// API or CLI.
    pub kind: TokenKind,
    /// The owner's name for it.
    pub label: String,
    /// API scopes.
    pub scopes: Vec<Scope>,
    /// Lifetime in days, if limited.
    pub expires_in_days: Option<u32>,
}

/// Access-token commands.
#[derive(Clone)]
pub struct AccessTokens {
    exec: Executor,
    clock: Arc<dyn Clock>,
}

impl AccessTokens {
    /// Handlers over `exec`.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>) -> Self {
        Self { exec, clock }
    }

    fn stream(token_id: Uuid) -> String {
        StreamCategory::AccessToken.stream(token_id)
    }

    /// Issues a token for `account`.
    #[tracing::instrument(skip_all, fields(%account, kind = new.kind.as_str()))]
    pub async fn create(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        new: NewAccessToken,
    ) -> Result<IssuedAccessToken, CommandError> {
        let at = self.clock.now();
        let expires_at = match new.expires_in_days {
            None => None,
            Some(days @ 1..=3650) => Some(at.plus(Duration::from_secs(u64::from(days) * 86_400))),
            Some(_) => {
                return Err(CommandError::Invalid {
                    field: "expires_in_days",
                    message: "must be between 1 and 3650".into(),
                });
            }
        };
        let family = if new.kind.is_cli() {
            TokenFamily::Cli
        } else {
            TokenFamily::Api
        };
        let issued = new_access_token(family);
        let token_id = Uuid::new_v4();
        let command = AccessTokenCommand::Create {
            account_id: account,
            kind: new.kind,
            label: new.label,
            scopes: new.scopes,
            token_hash: issued.hash.clone(),
            hint: hint(&issued.token),
            expires_at,
            at,
        };
        let executed = self
            .exec
            .execute::<AccessToken, _>(&Self::stream(token_id), ctx, Some(account.0), at, |t| {
                Ok(t.decide(&command)?)
            })
            .await?;
        Ok(IssuedAccessToken {
            token_id,
            hint: hint(&issued.token),
            token: issued.token,
            expires_at,
            position: executed
                .position
                .ok_or_else(|| CommandError::Internal("token creation appended nothing".into()))?,
        })
    }

    /// Replaces the secret of `token_id`; the old one works for `grace` more.
    #[tracing::instrument(skip_all, fields(%account, %token_id))]
    pub async fn rotate(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        token_id: Uuid,
        grace: Duration,
    ) -> Result<IssuedAccessToken, CommandError> {
        let at = self.clock.now();
        let stream = Self::stream(token_id);
        let family = match self.exec.load::<AccessToken>(&stream).await?.state.kind {
            Some(kind) if kind.is_cli() => TokenFamily::Cli,
            _ => TokenFamily::Api,
        };
        let issued = new_access_token(family);
        let command = AccessTokenCommand::Rotate {
            account_id: account,
            token_hash: issued.hash.clone(),
            hint: hint(&issued.token),
            grace,
            at,
        };
        let executed = self
            .exec
            .execute::<AccessToken, _>(&stream, ctx, Some(account.0), at, |t| {
                Ok(t.decide(&command)?)
            })
            .await?;
        Ok(IssuedAccessToken {
            token_id,
            hint: hint(&issued.token),
            token: issued.token,
            expires_at: executed.state.expires_at,
            position: executed
                .position
                .ok_or_else(|| CommandError::Internal("rotation appended nothing".into()))?,
        })
    }

    /// Revokes `token_id` (of `account`; another account's is not found).
    #[tracing::instrument(skip_all, fields(%account, %token_id))]
    pub async fn revoke(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        token_id: Uuid,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let at = self.clock.now();
        let executed = self
            .exec
            .execute::<AccessToken, _>(&Self::stream(token_id), ctx, Some(account.0), at, |t| {
                Ok(t.decide(&AccessTokenCommand::Revoke {
                    account_id: account,
                    at,
                })?)
            })
            .await?;
        Ok(executed.position)
    }

    /// The kind of `token_id` if it belongs to `account` and is live.
    pub async fn kind_of(
        &self,
        account: AccountId,
        token_id: Uuid,
    ) -> Result<Option<TokenKind>, CommandError> {
        let state = self
            .exec
            .load::<AccessToken>(&Self::stream(token_id))
            .await?
            .state;
        Ok((state.account_id == Some(account) && !state.revoked)
            .then_some(state.kind)
            .flatten())
    }
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
