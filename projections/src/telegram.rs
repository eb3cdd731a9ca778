//! The Telegram read model: each account's linked chat (chat id and username sealed with
//! the account's key) and the live link tokens by their SHA-256, which is how the webhook
//! finds the account a `/start <token>` is for. A deleted account's rows go.

use crate::Follower;
use crate::projector::account_events_only;
use crate::runner::{ProjectionError, Projector};
use crate::schema::{Table, Tables};
use async_trait::async_trait;
use domain::account::AccountEvent;
use domain::telegram::TelegramEvent;
use domain::{AccountId, DomainEvent, StreamCategory, Timestamp};
use sqlx::{AnyConnection, Row};
use store::{Database, DecodedEvent};
use uuid::Uuid;
use vault::FieldSealer;

/// Where each sealed column lives, bound into its seal.
const CHAT: &str = "telegram_links.chat_id";
const USERNAME: &str = "telegram_links.username";

/// Folds Telegram events into `telegram_links` and `telegram_link_tokens`.
#[derive(Clone)]
pub struct TelegramProjector {
    sealer: FieldSealer,
}

impl TelegramProjector {
    /// Seals personal columns with `sealer`.
    pub fn new(sealer: FieldSealer) -> Self {
        Self { sealer }
    }
}

const TABLES: &[Table] = &[
    Table {
        name: "telegram_links",
        ddl: &["CREATE TABLE {t} (
            account_id TEXT PRIMARY KEY,
            chat_id    TEXT NOT NULL,
            username   TEXT,
            linked_at  BIGINT NOT NULL
        )"],
    },
    Table {
        name: "telegram_link_tokens",
        ddl: &[
            "CREATE TABLE {t} (
            token_hash TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            expires_at BIGINT NOT NULL
        )",
            "CREATE INDEX {t}_account ON {t} (account_id)",
        ],
    },
];

#[async_trait]
impl Projector for TelegramProjector {
    fn name(&self) -> Follower {
        Follower::Telegram
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [Table] {
        TABLES
    }

    fn categories(&self) -> &'static [StreamCategory] {
        &[StreamCategory::Account, StreamCategory::Telegram]
    }

    fn concerns(&self, event: &DecodedEvent) -> bool {
        account_events_only(event, |e| matches!(e, AccountEvent::AccountDeleted { .. }))
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        tables: &Tables,
        decoded: &DecodedEvent,
    ) -> Result<(), ProjectionError> {
        let (l, t) = (
            tables.get("telegram_links"),
            tables.get("telegram_link_tokens"),
        );
        let stream = &decoded.envelope.stream;
        let id_in = |category: StreamCategory| {
            category
                .id_in(stream)
                .and_then(|id| Uuid::parse_str(id).ok())
        };
        match decoded.event() {
            Some(DomainEvent::Account(AccountEvent::AccountDeleted { .. })) => {
                let Some(account) = id_in(StreamCategory::Account) else {
                    return Ok(());
                };
                let names = ["telegram_links", "telegram_link_tokens"];
                tables
                    .forget_account(conn, &names, &account.to_string())
                    .await?;
            }
            Some(DomainEvent::Telegram(event)) => {
                let Some(account) = id_in(StreamCategory::Telegram) else {
                    return Ok(());
                };
                let id = account.to_string();
                match event {
                    TelegramEvent::TelegramLinkRequested {
                        token_hash,
                        expires_at,
                        ..
                    } => {
                        // A newer token replaces the older.
                        tables
                            .forget_account(conn, &["telegram_link_tokens"], &id)
                            .await?;
                        sqlx::query(&format!(
                            "INSERT INTO {t} (token_hash, account_id, expires_at) \
                             VALUES ($1, $2, $3) ON CONFLICT (token_hash) DO NOTHING"
                        ))
                        .bind(token_hash)
                        .bind(&id)
                        .bind(expires_at.unix_micros())
                        .execute(&mut *conn)
                        .await?;
                    }
                    TelegramEvent::TelegramLinked {
                        chat_id,
                        username,
                        at,
                        ..
                    } => {
                        // The token stays findable: a reused one is answered as used.
                        let Some(chat) = self.sealer.seal_text(account, CHAT, chat_id).await?
                        else {
                            return Ok(()); // erased since
                        };
                        let username = self
                            .sealer
                            .seal_optional(account, USERNAME, username.as_deref())
                            .await?;
                        sqlx::query(&format!(
                            "INSERT INTO {l} (account_id, chat_id, username, linked_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT (account_id) DO UPDATE SET \
                             chat_id = excluded.chat_id, username = excluded.username, \
                             linked_at = excluded.linked_at"
                        ))
                        .bind(&id)
                        .bind(chat)
                        .bind(username)
                        .bind(at.unix_micros())
                        .execute(&mut *conn)
                        .await?;
                    }
                    TelegramEvent::TelegramUnlinked { .. } => {
                        tables
                            .forget_account(conn, &["telegram_links"], &id)
                            .await?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// An account's linked chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramChat {
    /// The chat the bot writes to.
    pub chat_id: i64,
    /// The user's `@username`, if any.
    pub username: Option<String>,
    /// Since when.
    pub linked_at: Timestamp,
}

/// The account a link token (by its SHA-256) was issued to, and when it expires.
pub async fn token_owner(
    db: &Database,
    token_hash: &str,
) -> Result<Option<(AccountId, Timestamp)>, ProjectionError> {
    let row = sqlx::query(
        "SELECT account_id, expires_at FROM telegram_link_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let account: String = row.try_get("account_id")?;
    let expires_at: i64 = row.try_get("expires_at")?;
    Ok(Uuid::parse_str(&account)
        .ok()
        .map(|a| (AccountId(a), Timestamp::from_unix_micros(expires_at))))
}

/// The chat linked to `account`, opened; `None` if none is (or its key is gone).
pub async fn chat(
    db: &Database,
    sealer: &FieldSealer,
    account: AccountId,
) -> Result<Option<TelegramChat>, ProjectionError> {
    let row = sqlx::query(
        "SELECT chat_id, username, linked_at FROM telegram_links WHERE account_id = $1",
    )
    .bind(account.0.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed: String = row.try_get("chat_id")?;
    let username: Option<String> = row.try_get("username")?;
    let linked_at: i64 = row.try_get("linked_at")?;
    let Some(chat) = sealer.open_text(account.0, CHAT, &sealed).await? else {
        return Ok(None);
    };
    let Ok(chat_id) = chat.parse() else {
        return Ok(None);
    };
    let username = sealer
        .open_optional(account.0, USERNAME, username.as_deref())
        .await?;
    Ok(Some(TelegramChat {
        chat_id,
        username,
        linked_at: Timestamp::from_unix_micros(linked_at),
    }))
}
