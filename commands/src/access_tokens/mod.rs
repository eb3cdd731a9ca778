//! API and CLI tokens: issuing (after a recent proof, within the account's limit of live
//! tokens and lifetimes), rotating and revoking them; the secret's format is in
//! `format`.
//!
//! A token reads `vsk_` (API) or `vcli_` (CLI), then 256 random bits in base64url, then a
//! 6-character checksum (the first 32 bits of SHA-256 over what precedes it). The prefix
//! tells secret scanners and people what leaked; the checksum lets the service refuse a
//! mistyped or made-up token without touching the database. Only the SHA-256 of the whole
//! token is stored, so checking one costs a hash and an index look-up.

use crate::accounts::{account_stream, check_fresh};
use crate::clock::Clock;
use crate::error::{CommandError, TOO_MANY_TOKENS};
use crate::executor::{CommandContext, Executor};
use domain::access_token::{AccessToken, AccessTokenCommand, AccessTokenError, Scope, TokenKind};
use domain::account::{Account, AccountCommand, Fresh};
use domain::{AccountId, Aggregate, SessionId, StreamCategory, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use store::GlobalPosition;
use uuid::Uuid;

pub mod format;

pub use format::{
    API_TOKEN_PREFIX, CLI_TOKEN_PREFIX, TokenFamily, hint, new_access_token, well_formed,
};

/// A token just issued (or rotated): the secret is in here and nowhere else (its `Debug`
/// leaves it out).
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

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("token_id", &self.token_id)
            .field("hint", &self.hint)
            .field("expires_at", &self.expires_at)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
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
    /// Lifetime in days (API tokens): 1 to [`TokenPolicy::api_max_days`], or
    /// [`TokenPolicy::api_default_days`] when absent. CLI tokens take none.
    pub expires_in_days: Option<u32>,
}

/// The limits of tokens.
#[derive(Debug, Clone, Copy)]
pub struct TokenPolicy {
    /// The lifetime of an API token created without one.
    pub api_default_days: u32,
    /// The longest lifetime of an API token.
    pub api_max_days: u32,
    /// Live (unexpired, unrevoked) API and CLI tokens an account may have at once.
    pub max_live: u32,
    /// How recent the creating session's proof of its credentials must be.
    pub reauthentication_window: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            api_default_days: 90,
            api_max_days: 365,
            max_live: 50,
            reauthentication_window: Duration::from_secs(600),
        }
    }
}

impl TokenPolicy {
    /// The lifetime of a new token of `kind` asked for `days`, or why it may not be.
    pub fn lifetime(
        &self,
        kind: TokenKind,
        days: Option<u32>,
    ) -> Result<Option<Duration>, CommandError> {
        let max = self.api_max_days.max(1);
        let days = match (kind, days) {
            (TokenKind::Api, None) => self.api_default_days.clamp(1, max),
            (TokenKind::Api, Some(days)) if (1..=max).contains(&days) => days,
            (TokenKind::Api, Some(_)) => {
                return Err(CommandError::Invalid {
                    field: "expires_in_days",
                    message: format!("must be between 1 and {max}"),
                });
            }
            (_, None) => return Ok(None),
            (_, Some(_)) => {
                return Err(CommandError::Invalid {
                    field: "expires_in_days",
                    message: "CLI tokens do not expire".into(),
                });
            }
        };
        Ok(Some(Duration::from_secs(u64::from(days) * 86_400)))
    }
}

/// A counted token whose stream says it is gone, or never came to be (its creation died
/// between the two appends) this long after it was counted, is no longer counted.
const UNCREATED_AFTER: Duration = Duration::from_secs(60);

/// Access-token commands.
#[derive(Clone)]
pub struct AccessTokens {
    exec: Executor,
    clock: Arc<dyn Clock>,
    policy: TokenPolicy,
}

impl AccessTokens {
    /// Handlers over `exec`, with the default [`TokenPolicy`].
    pub fn new(exec: Executor, clock: Arc<dyn Clock>) -> Self {
        Self {
            exec,
            clock,
            policy: TokenPolicy::default(),
        }
    }

    /// The same handlers with `policy`.
    pub fn with_policy(mut self, policy: TokenPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The limits in force.
    pub fn policy(&self) -> TokenPolicy {
        self.policy
    }

    fn stream(token_id: Uuid) -> String {
        StreamCategory::AccessToken.stream(token_id)
    }

    /// Issues a token for `account`, from its session `session_id`, which must have proved
    /// its credentials recently. The account's stream decides first (recent proof, fewer
    /// live tokens than allowed) and counts the token; its own stream then records it.
    #[tracing::instrument(skip_all, fields(%account, kind = new.kind.as_str()))]
    pub async fn create(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        session_id: SessionId,
        new: NewAccessToken,
    ) -> Result<IssuedAccessToken, CommandError> {
        let at = self.clock.now();
        let expires_at = self
            .policy
            .lifetime(new.kind, new.expires_in_days)?
            .map(|lifetime| at.plus(lifetime));
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
        // A label or scopes out of bounds is refused before anything is counted.
        AccessToken::default().decide(&command)?;
        let issue = AccountCommand::IssueAccessToken {
            token_id,
            kind: new.kind,
            expires_at,
            max_live: self.policy.max_live,
            fresh: Fresh::within(session_id, at, self.policy.reauthentication_window),
            at,
        };
        match self.on_account(ctx, account, at, &issue).await {
            Err(CommandError::Rejected {
                code: TOO_MANY_TOKENS,
                ..
            }) if self.uncount_dead_tokens(ctx, account, at).await? > 0 => {
                self.on_account(ctx, account, at, &issue).await?;
            }
            other => {
                other?;
            }
        }
        let executed = self
            .exec
            .execute::<AccessToken, _>(&Self::stream(token_id), ctx, Some(account.0), at, |t| {
                Ok(t.decide(&command)?)
            })
            .await?;
        // A password change revoking every token, or the account's deletion, may have
        // committed between the two appends: it stopped counting this token, and revoked
        // only the tokens the read model had then. This one is revoked here, and its
        // secret never handed out.
        let counted = self
            .exec
            .load::<Account>(&account_stream(account))
            .await?
            .state;
        if counted.deleted || !counted.access_tokens.contains_key(&token_id) {
            let revoke = AccessTokenCommand::Revoke {
                account_id: account,
                at,
            };
            self.exec
                .execute::<AccessToken, _>(&Self::stream(token_id), ctx, Some(account.0), at, |t| {
                    Ok(t.decide(&revoke)?)
                })
                .await?;
            return Err(CommandError::ReauthenticationRequired);
        }
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

    /// Runs `command` on the account's stream.
    async fn on_account(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        at: Timestamp,
        command: &AccountCommand,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let executed = self
            .exec
            .execute::<Account, _>(&account_stream(account), ctx, Some(account.0), at, |a| {
                Ok(a.decide(command)?)
            })
            .await?;
        Ok(executed.position)
    }

    /// Stops counting the tokens the account counts but whose streams say they are
    /// revoked, or were never created: what a crash between a token's two appends leaves
    /// behind. Returns how many. Only run when the limit is reached.
    async fn uncount_dead_tokens(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        at: Timestamp,
    ) -> Result<usize, CommandError> {
        let counted = self
            .exec
            .load::<Account>(&account_stream(account))
            .await?
            .state
            .access_tokens;
        let mut uncounted = 0;
        for (token_id, counted) in counted {
            let token = self
                .exec
                .load::<AccessToken>(&Self::stream(token_id))
                .await?
                .state;
            let dead = token.revoked
                || (token.account_id.is_none() && at.since(counted.issued_at) > UNCREATED_AFTER);
            if dead {
                let retire = AccountCommand::RetireAccessToken { token_id, at };
                self.on_account(ctx, account, at, &retire).await?;
                uncounted += 1;
            }
        }
        Ok(uncounted)
    }

    /// Replaces the secret of `token_id`, a token of `family` (one of the other family is
    /// not found, as another account's is), from the account's session `session_id`, which
    /// must have proved its credentials recently, as for a new token: a new secret would
    /// outlive the session that asked for it. The old secret works for `grace` more.
    #[tracing::instrument(skip_all, fields(%account, %token_id))]
    pub async fn rotate(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        session_id: SessionId,
        token_id: Uuid,
        family: TokenFamily,
        grace: Duration,
    ) -> Result<IssuedAccessToken, CommandError> {
        let at = self.clock.now();
        let fresh = Fresh::within(session_id, at, self.policy.reauthentication_window);
        check_fresh(&self.exec, account, &fresh).await?;
        let stream = Self::stream(token_id);
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
                // A token of the other family is not found, as another account's is.
                if t.kind
                    .is_some_and(|kind| kind.is_cli() != (family == TokenFamily::Cli))
                {
                    return Err(AccessTokenError::NotFound.into());
                }
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

    /// Revokes `token_id` (of `account`; another account's is not found): its stream first,
    /// so it is refused from then on, then the account stops counting it.
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
        let retire = AccountCommand::RetireAccessToken { token_id, at };
        match self.on_account(ctx, account, at, &retire).await {
            // A deleted account counts nothing any more.
            Ok(_) | Err(CommandError::AccountNotFound) => {}
            Err(error) => return Err(error),
        }
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
