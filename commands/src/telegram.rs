//! Telegram links: link tokens (256 random bits, only their SHA-256 stored, single use,
//! ten minutes), linking the chat that sent `/start <token>`, and unlinking. A Telegram
//! user is linked to one account at a time: its `telegramuser-<keyed hash>` stream records
//! which, and a link elsewhere moves it (the former account records `moved`).

use crate::clock::Clock;
use crate::error::{CommandError, Rejection};
use crate::executor::{CommandContext, Executor};
use crate::tokens::{hash_token, new_token};
use domain::telegram::{
    TelegramCommand, TelegramError, TelegramEvent, TelegramLink, TelegramUser, TelegramUserCommand,
    TelegramUserEvent,
};
use domain::{AccountId, Aggregate, StreamCategory, Timestamp};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use store::GlobalPosition;

impl From<TelegramError> for CommandError {
    fn from(e: TelegramError) -> Self {
        let code = match e {
            TelegramError::TokenInvalid => "telegram_link_invalid",
            TelegramError::TokenExpired => "telegram_link_expired",
        };
        CommandError::rejected(Rejection::Gone, code, e.to_string())
    }
}

/// The prefix of link tokens (the `start` parameter allows `[A-Za-z0-9_-]`, 64 at most).
pub const LINK_TOKEN_PREFIX: &str = "tg_";

/// A new link token: give `token` to the caller once.
#[derive(Debug)]
pub struct LinkToken {
    /// The token (the deep link's `start` parameter).
    pub token: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// Where it was committed.
    pub position: Option<GlobalPosition>,
}

/// Who wrote `/start <token>`.
#[derive(Debug, Clone)]
pub struct TelegramSender {
    /// The private chat.
    pub chat_id: i64,
    /// The Telegram user.
    pub user_id: i64,
    /// Their `@username`.
    pub username: Option<String>,
}

/// Telegram link commands.
#[derive(Clone)]
pub struct TelegramLinks {
    exec: Executor,
    clock: Arc<dyn Clock>,
    user_secret: [u8; 32],
}

fn later(a: Option<GlobalPosition>, b: Option<GlobalPosition>) -> Option<GlobalPosition> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl TelegramLinks {
    /// Handlers over `exec`; Telegram user ids are hashed with `user_secret`.
    pub fn new(exec: Executor, clock: Arc<dyn Clock>, user_secret: [u8; 32]) -> Self {
        Self {
            exec,
            clock,
            user_secret,
        }
    }

    /// The keyed hash of a Telegram user id, hex.
    pub fn user_key(&self, user_id: i64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.user_secret)
            .expect("HMAC takes any key length");
        mac.update(user_id.to_string().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The stored form of a link token.
    pub fn token_hash(token: &str) -> String {
        hash_token(token)
    }

    fn account_stream(account: AccountId) -> String {
        StreamCategory::Telegram.stream(account.0)
    }

    fn user_stream(user_key: &str) -> String {
        StreamCategory::TelegramUser.stream(user_key)
    }

    async fn on_account(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        command: TelegramCommand,
    ) -> Result<(TelegramLink, Vec<TelegramEvent>, Option<GlobalPosition>), CommandError> {
        let executed = self
            .exec
            .execute::<TelegramLink, _>(
                &Self::account_stream(account),
                ctx,
                Some(account.0),
                self.clock.now(),
                |s| Ok(s.decide(&command)?),
            )
            .await?;
        Ok((executed.state, executed.events, executed.position))
    }

    async fn on_user(
        &self,
        ctx: &CommandContext,
        user_key: &str,
        command: TelegramUserCommand,
    ) -> Result<(Vec<TelegramUserEvent>, Option<GlobalPosition>), CommandError> {
        let executed = self
            .exec
            .execute::<TelegramUser, _>(
                &Self::user_stream(user_key),
                ctx,
                None,
                self.clock.now(),
                |s| s.decide(&command).map_err(|never| match never {}),
            )
            .await?;
        Ok((executed.events, executed.position))
    }

    /// The account's link as its events tell it now.
    pub async fn load(&self, account: AccountId) -> Result<TelegramLink, CommandError> {
        Ok(self
            .exec
            .load::<TelegramLink>(&Self::account_stream(account))
            .await?
            .state)
    }

    /// Issues a link token for `account` (replacing any earlier one).
    pub async fn request_link(
        &self,
        ctx: &CommandContext,
        account: AccountId,
    ) -> Result<LinkToken, CommandError> {
        let issued = new_token(LINK_TOKEN_PREFIX);
        let (_, events, position) = self
            .on_account(
                ctx,
                account,
                TelegramCommand::RequestLink {
                    token_hash: issued.hash,
                    at: self.clock.now(),
                },
            )
            .await?;
        let expires_at = events
            .iter()
            .find_map(|e| match e {
                TelegramEvent::TelegramLinkRequested { expires_at, .. } => Some(*expires_at),
                _ => None,
            })
            .ok_or_else(|| CommandError::Internal("no link token recorded".into()))?;
        Ok(LinkToken {
            token: issued.token,
            expires_at,
            position,
        })
    }

    /// Links `sender`'s chat to `account` with the token whose hash is `token_hash`;
    /// moves the Telegram user from another account if it was linked there. A repeated
    /// delivery of the same `/start` finishes what an interrupted one began.
    pub async fn link(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        token_hash: &str,
        sender: &TelegramSender,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let user_key = self.user_key(sender.user_id);
        let before = self.load(account).await?.linked;
        let (_, _, mut position) = self
            .on_account(
                ctx,
                account,
                TelegramCommand::Link {
                    token_hash: token_hash.to_owned(),
                    user_key: user_key.clone(),
                    chat_id: sender.chat_id,
                    user_id: sender.user_id,
                    username: sender.username.clone(),
                    at: self.clock.now(),
                },
            )
            .await?;
        // The account's earlier Telegram user, if another, is free again.
        if let Some(before) = before
            && before.user_key != user_key
        {
            let (_, p) = self
                .on_user(
                    ctx,
                    &before.user_key,
                    TelegramUserCommand::Release {
                        account_id: account,
                        at: self.clock.now(),
                    },
                )
                .await?;
            position = later(position, p);
        }
        let (events, p) = self
            .on_user(
                ctx,
                &user_key,
                TelegramUserCommand::Claim {
                    account_id: account,
                    at: self.clock.now(),
                },
            )
            .await?;
        position = later(position, p);
        for event in events {
            if let TelegramUserEvent::TelegramUserLinked {
                previous: Some(previous),
                ..
            } = event
                && previous != account
            {
                let (_, _, p) = self
                    .on_account(
                        ctx,
                        previous,
                        TelegramCommand::Unlink {
                            user_key: Some(user_key.clone()),
                            reason: "moved".into(),
                            at: self.clock.now(),
                        },
                    )
                    .await?;
                position = later(position, p);
            }
        }
        Ok(position)
    }

    /// Ends `account`'s link, if any (`reason`: `user`).
    pub async fn unlink_account(
        &self,
        ctx: &CommandContext,
        account: AccountId,
        reason: &str,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let (_, events, mut position) = self
            .on_account(
                ctx,
                account,
                TelegramCommand::Unlink {
                    user_key: None,
                    reason: reason.to_owned(),
                    at: self.clock.now(),
                },
            )
            .await?;
        for event in events {
            if let TelegramEvent::TelegramUnlinked { user_key, .. } = event {
                let (_, p) = self
                    .on_user(
                        ctx,
                        &user_key,
                        TelegramUserCommand::Release {
                            account_id: account,
                            at: self.clock.now(),
                        },
                    )
                    .await?;
                position = later(position, p);
            }
        }
        Ok(position)
    }

    /// Ends the link of the Telegram user `user_id`, whichever account it is linked to
    /// (`reason`: `stop`, `blocked`). Returns that account.
    pub async fn unlink_user(
        &self,
        ctx: &CommandContext,
        user_id: i64,
        reason: &str,
    ) -> Result<(Option<AccountId>, Option<GlobalPosition>), CommandError> {
        let user_key = self.user_key(user_id);
        let user = self
            .exec
            .load::<TelegramUser>(&Self::user_stream(&user_key))
            .await?
            .state;
        let Some(account) = user.account else {
            return Ok((None, None));
        };
        let (_, _, position) = self
            .on_account(
                ctx,
                account,
                TelegramCommand::Unlink {
                    user_key: Some(user_key.clone()),
                    reason: reason.to_owned(),
                    at: self.clock.now(),
                },
            )
            .await?;
        let (_, p) = self
            .on_user(
                ctx,
                &user_key,
                TelegramUserCommand::Release {
                    account_id: account,
                    at: self.clock.now(),
                },
            )
            .await?;
        Ok((Some(account), later(position, p)))
    }
}
