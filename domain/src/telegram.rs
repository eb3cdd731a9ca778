//! Telegram links. Two aggregates:
//!
//! - the account's link (`telegram-<account id>`): link tokens (only their SHA-256), the
//!   linked chat and Telegram user (sealed with the account's key), unlinks;
//! - a Telegram user (`telegramuser-<keyed hash of the user id>`): which account it is
//!   linked to, so one Telegram user is linked to one account at a time, and a link
//!   elsewhere moves it (recorded as `previous`).

use crate::event::Event;
use crate::{AccountId, Aggregate, Timestamp};
use serde::{Deserialize, Serialize};

/// How long a link token lives, in minutes.
pub const LINK_TOKEN_MINUTES: u64 = 10;

/// What happened to an account's Telegram link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "telegram")]
pub enum TelegramEvent {
    /// A link token was issued (a newer one replaces it).
    #[event(no_personal_data)]
    TelegramLinkRequested {
        /// SHA-256 of the token, hex; the token itself is stored nowhere.
        token_hash: String,
        /// When the token stops working.
        expires_at: Timestamp,
        /// When.
        at: Timestamp,
    },
    /// A chat was linked with a token (replacing any earlier link of the account).
    #[event(personal(chat_id, user_id, username))]
    TelegramLinked {
        /// The token used (now spent).
        token_hash: String,
        /// The keyed hash naming the Telegram user's stream.
        user_key: String,
        /// The private chat the bot writes to (Telegram's integer id, as text).
        chat_id: String,
        /// The Telegram user (its integer id, as text).
        user_id: String,
        /// The user's `@username`, if any.
        username: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// The link ended.
    #[event(no_personal_data)]
    TelegramUnlinked {
        /// The Telegram user's keyed hash.
        user_key: String,
        /// `user` (`DELETE /me/telegram`), `stop` (`/stop`), `blocked` (the bot was
        /// blocked) or `moved` (the Telegram user linked another account).
        reason: String,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of an account's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelegramCommand {
    /// Issue a token.
    RequestLink {
        /// Its SHA-256.
        token_hash: String,
        /// Now.
        at: Timestamp,
    },
    /// Link the chat that sent `/start <token>`.
    Link {
        /// SHA-256 of the token sent.
        token_hash: String,
        /// The keyed hash of the user id.
        user_key: String,
        /// The chat.
        chat_id: i64,
        /// The user.
        user_id: i64,
        /// The username.
        username: Option<String>,
        /// Now.
        at: Timestamp,
    },
    /// End the link (of `user_key` only, when given).
    Unlink {
        /// Only this Telegram user's link.
        user_key: Option<String>,
        /// Why.
        reason: String,
        /// Now.
        at: Timestamp,
    },
}

/// Why a Telegram command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelegramError {
    /// The token is unknown, replaced by a newer one, or already used.
    #[error("this link is not valid or was already used")]
    TokenInvalid,
    /// The token is more than ten minutes old.
    #[error("this link has expired")]
    TokenExpired,
}

/// The current link of a chat to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    /// The Telegram user's keyed hash.
    pub user_key: String,
    /// Since when.
    pub at: Timestamp,
}

/// An account's Telegram link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelegramLink {
    /// The live token and its expiry.
    pub pending: Option<(String, Timestamp)>,
    /// The last token used and by whom (a redelivered `/start` is not an error).
    pub last_used: Option<(String, String)>,
    /// The link, if any.
    pub linked: Option<Linked>,
}

impl Aggregate for TelegramLink {
    type Event = TelegramEvent;
    type Command = TelegramCommand;
    type Error = TelegramError;

    fn decide(&self, command: &TelegramCommand) -> Result<Vec<TelegramEvent>, TelegramError> {
        match command {
            TelegramCommand::RequestLink { token_hash, at } => {
                Ok(vec![TelegramEvent::TelegramLinkRequested {
                    token_hash: token_hash.clone(),
                    expires_at: at.plus(std::time::Duration::from_secs(LINK_TOKEN_MINUTES * 60)),
                    at: *at,
                }])
            }
            TelegramCommand::Link {
                token_hash,
                user_key,
                chat_id,
                user_id,
                username,
                at,
            } => {
                // A redelivered `/start`: the link it made still stands.
                let still_linked = self
                    .linked
                    .as_ref()
                    .is_some_and(|l| l.user_key == *user_key);
                if still_linked
                    && self.last_used.as_ref() == Some(&(token_hash.clone(), user_key.clone()))
                {
                    return Ok(vec![]);
                }
                match &self.pending {
                    Some((pending, expires_at)) if pending == token_hash => {
                        if *at >= *expires_at {
                            return Err(TelegramError::TokenExpired);
                        }
                    }
                    _ => return Err(TelegramError::TokenInvalid),
                }
                Ok(vec![TelegramEvent::TelegramLinked {
                    token_hash: token_hash.clone(),
                    user_key: user_key.clone(),
                    chat_id: chat_id.to_string(),
                    user_id: user_id.to_string(),
                    username: username.clone(),
                    at: *at,
                }])
            }
            TelegramCommand::Unlink {
                user_key,
                reason,
                at,
            } => match &self.linked {
                Some(linked) if user_key.as_ref().is_none_or(|k| *k == linked.user_key) => {
                    Ok(vec![TelegramEvent::TelegramUnlinked {
                        user_key: linked.user_key.clone(),
                        reason: reason.clone(),
                        at: *at,
                    }])
                }
                _ => Ok(vec![]),
            },
        }
    }

    fn evolve(&mut self, event: &TelegramEvent) {
        match event {
            TelegramEvent::TelegramLinkRequested {
                token_hash,
                expires_at,
                ..
            } => self.pending = Some((token_hash.clone(), *expires_at)),
            TelegramEvent::TelegramLinked {
                token_hash,
                user_key,
                at,
                ..
            } => {
                self.pending = None;
                self.last_used = Some((token_hash.clone(), user_key.clone()));
                self.linked = Some(Linked {
                    user_key: user_key.clone(),
                    at: *at,
                });
            }
            TelegramEvent::TelegramUnlinked { .. } => self.linked = None,
        }
    }
}

/// What happened to a Telegram user's link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Event)]
#[serde(tag = "type")]
#[event(stream = "telegramuser")]
pub enum TelegramUserEvent {
    /// The Telegram user is now linked to `account_id`.
    #[event(no_personal_data)]
    TelegramUserLinked {
        /// The account.
        account_id: AccountId,
        /// The account it was linked to before (the link moved).
        previous: Option<AccountId>,
        /// When.
        at: Timestamp,
    },
    /// The Telegram user is linked to no account.
    #[event(no_personal_data)]
    TelegramUserUnlinked {
        /// The former account.
        account_id: AccountId,
        /// When.
        at: Timestamp,
    },
}

/// What may be asked of a Telegram user's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelegramUserCommand {
    /// Link to `account_id` (moving it from another account).
    Claim {
        /// The account.
        account_id: AccountId,
        /// Now.
        at: Timestamp,
    },
    /// Unlink from `account_id` (if linked to it).
    Release {
        /// The account.
        account_id: AccountId,
        /// Now.
        at: Timestamp,
    },
}

/// Which account a Telegram user is linked to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TelegramUser {
    /// The account.
    pub account: Option<AccountId>,
}

impl Aggregate for TelegramUser {
    type Event = TelegramUserEvent;
    type Command = TelegramUserCommand;
    type Error = std::convert::Infallible;

    fn decide(&self, command: &TelegramUserCommand) -> Result<Vec<TelegramUserEvent>, Self::Error> {
        Ok(match command {
            TelegramUserCommand::Claim { account_id, at } => match self.account {
                Some(account) if account == *account_id => vec![],
                previous => vec![TelegramUserEvent::TelegramUserLinked {
                    account_id: *account_id,
                    previous,
                    at: *at,
                }],
            },
            TelegramUserCommand::Release { account_id, at } => match self.account {
                Some(account) if account == *account_id => {
                    vec![TelegramUserEvent::TelegramUserUnlinked {
                        account_id: *account_id,
                        at: *at,
                    }]
                }
                _ => vec![],
            },
        })
    }

    fn evolve(&mut self, event: &TelegramUserEvent) {
        match event {
            TelegramUserEvent::TelegramUserLinked { account_id, .. } => {
                self.account = Some(*account_id)
            }
            TelegramUserEvent::TelegramUserUnlinked { .. } => self.account = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::given;
    use uuid::Uuid;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_000_000_000 + minutes * 60_000_000)
    }

    fn requested() -> TelegramEvent {
        TelegramEvent::TelegramLinkRequested {
            token_hash: "h1".into(),
            expires_at: at(10),
            at: at(0),
        }
    }

    fn link(token: &str, user: &str, minutes: i64) -> TelegramCommand {
        TelegramCommand::Link {
            token_hash: token.into(),
            user_key: user.into(),
            chat_id: 42,
            user_id: 7,
            username: Some("ada".into()),
            at: at(minutes),
        }
    }

    fn linked(user: &str, minutes: i64) -> TelegramEvent {
        TelegramEvent::TelegramLinked {
            token_hash: "h1".into(),
            user_key: user.into(),
            chat_id: "42".into(),
            user_id: "7".into(),
            username: Some("ada".into()),
            at: at(minutes),
        }
    }

    #[test]
    fn telegram_a_token_requested_expires_in_ten_minutes() {
        given::<TelegramLink>([])
            .when(TelegramCommand::RequestLink {
                token_hash: "h1".into(),
                at: at(0),
            })
            .then([requested()]);
    }

    #[test]
    fn telegram_a_live_token_links_once_and_a_redelivery_changes_nothing() {
        let state = given::<TelegramLink>([requested()])
            .when(link("h1", "u1", 9))
            .then([linked("u1", 9)]);
        assert_eq!(state.linked.unwrap().user_key, "u1");
        given::<TelegramLink>([requested(), linked("u1", 9)])
            .when(link("h1", "u1", 9))
            .then([]);
        given::<TelegramLink>([requested(), linked("u1", 9)])
            .when(link("h1", "u2", 9))
            .then_error(TelegramError::TokenInvalid);
    }

    #[test]
    fn telegram_an_expired_or_unknown_token_links_nothing() {
        given::<TelegramLink>([requested()])
            .when(link("h1", "u1", 10))
            .then_error(TelegramError::TokenExpired);
        given::<TelegramLink>([requested()])
            .when(link("h2", "u1", 1))
            .then_error(TelegramError::TokenInvalid);
    }

    #[test]
    fn telegram_unlink_only_ends_the_named_users_link() {
        let unlink = |user: Option<&str>| TelegramCommand::Unlink {
            user_key: user.map(Into::into),
            reason: "stop".into(),
            at: at(20),
        };
        given::<TelegramLink>([requested(), linked("u1", 1)])
            .when(unlink(Some("u2")))
            .then([]);
        given::<TelegramLink>([requested(), linked("u1", 1)])
            .when(unlink(None))
            .then([TelegramEvent::TelegramUnlinked {
                user_key: "u1".into(),
                reason: "stop".into(),
                at: at(20),
            }]);
        given::<TelegramLink>([]).when(unlink(None)).then([]);
    }

    #[test]
    fn telegram_a_user_linked_elsewhere_moves() {
        let (a, b) = (AccountId(Uuid::from_u128(1)), AccountId(Uuid::from_u128(2)));
        let state = given::<TelegramUser>([TelegramUserEvent::TelegramUserLinked {
            account_id: a,
            previous: None,
            at: at(0),
        }])
        .when(TelegramUserCommand::Claim {
            account_id: b,
            at: at(1),
        })
        .then([TelegramUserEvent::TelegramUserLinked {
            account_id: b,
            previous: Some(a),
            at: at(1),
        }]);
        assert_eq!(state.account, Some(b));
        given::<TelegramUser>([TelegramUserEvent::TelegramUserLinked {
            account_id: a,
            previous: None,
            at: at(0),
        }])
        .when(TelegramUserCommand::Release {
            account_id: b,
            at: at(1),
        })
        .then([]);
    }
}
