//! Profile and avatar.

use super::{Accounts, invalid};
use crate::avatar::{self, AvatarError};
use crate::error::{CommandError, Rejection};
use crate::executor::CommandContext;
use domain::account::AccountCommand;
use domain::email::DisplayName;
use domain::profile::Bio;
use domain::{AccountId, Aggregate};
use store::GlobalPosition;
use uuid::Uuid;

/// How a sealed blob starts: what a version before sealing stored (a PNG) never does.
const SEALED_BLOB: &[u8] = b"accounts.sealed-blob.v1\n";

/// A blob's associated data: its account and key, so a sealed blob cannot pass for
/// another account's or another key's.
fn blob_aad(account_id: AccountId, key: &str) -> Vec<u8> {
    format!("blob:{account_id}:{key}").into_bytes()
}

/// `PATCH /me/profile`: absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// 1 to 64 characters.
    pub display_name: Option<String>,
    /// Up to 160 characters; empty removes it.
    pub bio: Option<String>,
    /// Whether `GET /profiles/{id}` shows the creator profile.
    pub public_profile: Option<bool>,
}

impl From<AvatarError> for CommandError {
    fn from(e: AvatarError) -> Self {
        let message = e.to_string();
        match e {
            AvatarError::TooLarge => {
                CommandError::rejected(Rejection::TooLarge, "avatar_too_large", message)
            }
            AvatarError::UnsupportedFormat => {
                CommandError::rejected(Rejection::Unsupported, "unsupported_image", message)
            }
            AvatarError::TooManyPixels => {
                CommandError::rejected(Rejection::Invalid, "image_too_large", message)
            }
            AvatarError::Invalid(_) => {
                CommandError::rejected(Rejection::Invalid, "invalid_image", message)
            }
            // Only when the request is gone: nobody reads the answer.
            AvatarError::Cancelled => CommandError::Internal(message),
        }
    }
}

impl Accounts {
    /// Changes the profile.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn update_profile(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        change: ProfileChange,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let display_name = change
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|e| invalid("display_name", e))?;
        let bio = change
            .bio
            .as_deref()
            .map(Bio::parse)
            .transpose()
            .map_err(|e| invalid("bio", e))?;
        let now = self.clock.now();
        let command = AccountCommand::UpdateProfile {
            display_name,
            bio,
            public_profile: change.public_profile,
            at: now,
        };
        Ok(self.run(ctx, account_id, now, command).await?.position)
    }

    /// Checks, re-encodes and stores an avatar, then records it; the previous one is deleted.
    /// The decode waits for one of the [`DecodeSlots`](avatar::DecodeSlots) (refused as
    /// `busy` if none comes free soon) and stops if this future is dropped.
    #[tracing::instrument(skip_all, fields(%account_id, bytes = image.len()))]
    pub async fn set_avatar(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        image: Vec<u8>,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        // One of a few decode slots, held by the decode itself: a request that times out
        // gives its slot back only when the decode has stopped.
        let slot = self
            .decodes
            .acquire()
            .await
            .map_err(|busy| CommandError::rejected(Rejection::Unavailable, "busy", busy))?;
        let cancel = avatar::Cancel::default();
        let guard = cancel.on_drop();
        let png = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            avatar::normalize_unless(&image, |_| cancel.is_cancelled())
        })
        .await
        .map_err(|e| CommandError::Internal(e.to_string()))??;
        guard.disarm();
        let blob_key = format!("avatars/{}/{}.png", account_id, Uuid::new_v4().simple());
        let sealed = self.seal_blob(account_id, &blob_key, &png).await?;
        self.blobs
            .put(&blob_key, sealed)
            .await
            .map_err(|e| CommandError::Internal(format!("storing the avatar: {e}")))?;
        let now = self.clock.now();
        let command = AccountCommand::SetAvatar {
            blob_key: blob_key.clone(),
            content_type: avatar::CONTENT_TYPE.to_owned(),
            at: now,
        };
        match self.replace_avatar(ctx, account_id, now, command).await {
            Ok(position) => Ok(position),
            Err(error) => {
                self.delete_blob(&blob_key).await;
                Err(error)
            }
        }
    }

    /// Removes the avatar.
    pub async fn remove_avatar(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let now = self.clock.now();
        let command = AccountCommand::RemoveAvatar { at: now };
        self.replace_avatar(ctx, account_id, now, command).await
    }

    /// Runs `command` (a new avatar, or none), then deletes the blob of the avatar it
    /// replaced: the one of the state it was decided against, so that of two uploads at
    /// once the second deletes the first's blob, not both the one before.
    async fn replace_avatar(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        at: domain::Timestamp,
        command: AccountCommand,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let mut replaced = None;
        let executed = self
            .run_with(ctx, account_id, at, |state| {
                replaced = state.avatar.as_ref().map(|a| a.blob_key.clone());
                Ok(state.decide(&command)?)
            })
            .await?;
        if let Some(replaced) = replaced {
            self.delete_blob(&replaced).await;
        }
        Ok(executed.position)
    }

    /// The avatar's bytes and media type, if the account has one.
    pub async fn avatar(
        &self,
        account_id: AccountId,
    ) -> Result<Option<(Vec<u8>, String)>, CommandError> {
        let Some(avatar) = self.account(account_id).await?.avatar else {
            return Ok(None);
        };
        let Some(stored) = self
            .blobs
            .get(&avatar.blob_key)
            .await
            .map_err(|e| CommandError::Internal(format!("reading the avatar: {e}")))?
        else {
            return Ok(None);
        };
        let bytes = self.open_blob(account_id, &avatar.blob_key, stored).await?;
        Ok(bytes.map(|b| (b, avatar.content_type)))
    }

    /// `bytes` sealed with the account's data key, bound to `key`, behind
    /// [`SEALED_BLOB`]: destroying the key erases every copy of the blob (an orphan a
    /// crash left, a backup, an object store's old versions), not only the file the
    /// erasure deletes.
    async fn seal_blob(
        &self,
        account_id: AccountId,
        key: &str,
        bytes: &[u8],
    ) -> Result<Vec<u8>, CommandError> {
        let data_key = self
            .keys
            .get(account_id.0)
            .await?
            .ok_or(CommandError::AccountNotFound)?;
        let mut sealed = SEALED_BLOB.to_vec();
        sealed.extend(vault::seal(&data_key, &blob_aad(account_id, key), bytes));
        Ok(sealed)
    }

    /// What [`Self::seal_blob`] stored, opened (`None` once the key is gone); a blob
    /// stored before blobs were sealed, as it is.
    async fn open_blob(
        &self,
        account_id: AccountId,
        key: &str,
        stored: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, CommandError> {
        let Some(sealed) = stored.strip_prefix(SEALED_BLOB) else {
            return Ok(Some(stored));
        };
        let Some(data_key) = self.keys.get(account_id.0).await? else {
            return Ok(None);
        };
        Ok(Some(vault::open(
            &data_key,
            &blob_aad(account_id, key),
            sealed,
        )?))
    }

    async fn delete_blob(&self, key: &str) {
        if let Err(error) = self.blobs.delete(key).await {
            tracing::warn!(%error, key, "could not delete a blob");
        }
    }
}
