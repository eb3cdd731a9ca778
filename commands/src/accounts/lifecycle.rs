//! An account's life: registration (behind a reservation of its e-mail address, so two
//! registrations of one address cannot both succeed), the reservations a change of address
//! takes and gives up, and deletion.

use super::{ABANDONED_RESERVATION_AFTER, Accounts, account_stream, invalid};
use crate::error::CommandError;
use crate::executor::CommandContext;
use domain::account::{Account, AccountCommand};
use domain::email::{DisplayName, EmailAddress};
use domain::reservation::{EmailReservation, ReservationCommand};
use domain::{AccountId, Aggregate, SessionId, Timestamp, password};
use store::GlobalPosition;
use uuid::Uuid;

/// `POST /auth/register`.
#[derive(Debug, Clone)]
pub struct RegisterAccount {
    /// As typed.
    pub email: String,
    /// Must meet the policy.
    pub password: String,
    /// 1 to 64 characters.
    pub display_name: String,
}

impl Accounts {
    /// Creates an account. The address is reserved first, on its own stream with an
    /// expected revision: two registrations of one address cannot both succeed.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        ctx: &CommandContext,
        cmd: RegisterAccount,
    ) -> Result<(AccountId, GlobalPosition), CommandError> {
        let email = EmailAddress::parse(&cmd.email).map_err(|e| invalid("email", e))?;
        let display_name =
            DisplayName::parse(&cmd.display_name).map_err(|e| invalid("display_name", e))?;
        password::check(&cmd.password).map_err(CommandError::WeakPassword)?;

        let account_id = AccountId(Uuid::new_v4());
        let password_hash = self.passwords.hash(&cmd.password).await?;
        let now = self.clock.now();
        self.keys.create(account_id.0, now).await?;
        if let Err(error) = self.reserve_email(ctx, &email, account_id, now).await {
            self.keys.discard_unused(account_id.0).await?;
            return Err(error);
        }
        let register = AccountCommand::Register {
            account_id,
            email,
            display_name,
            password_hash,
            at: now,
        };
        let executed = self.run(ctx, account_id, now, register).await?;
        let position = executed
            .position
            .ok_or_else(|| CommandError::Internal("registration appended nothing".into()))?;
        Ok((account_id, position))
    }

    pub(super) async fn reserve_email(
        &self,
        ctx: &CommandContext,
        email: &EmailAddress,
        account_id: AccountId,
        now: Timestamp,
    ) -> Result<(), CommandError> {
        let stream = self.email_index.stream(email);
        let current = self.exec.load::<EmailReservation>(&stream).await?.state;
        let holder_gone = match (current.holder, current.reserved_at) {
            (Some(holder), Some(at)) if holder != account_id => {
                self.holder_let_go(&stream, holder, at, now).await?
            }
            _ => false,
        };
        self.exec
            .execute::<EmailReservation, _>(&stream, ctx, None, now, |state| {
                // Only the holder checked above may be considered gone.
                let holder_abandoned = holder_gone && state.holder == current.holder;
                Ok(state.decide(&ReservationCommand::Reserve {
                    account_id,
                    holder_abandoned,
                    at: now,
                })?)
            })
            .await?;
        Ok(())
    }

    /// Whether `holder`, which reserved the address of `stream` at `reserved_at`, no longer
    /// claims it: deleted; never came to exist; or moved to another address without
    /// releasing this one, or reserved it for a change it never made (a crash between the
    /// steps of a change of address, which therefore needs no repair of its own).
    pub(super) async fn holder_let_go(
        &self,
        stream: &str,
        holder: AccountId,
        reserved_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, CommandError> {
        let loaded = self.exec.load::<Account>(&account_stream(holder)).await?;
        let account = &loaded.state;
        if account.deleted {
            return Ok(true);
        }
        if loaded.expected == store::ExpectedRevision::NoStream {
            return Ok(now.since(reserved_at) > ABANDONED_RESERVATION_AFTER);
        }
        let holds = account
            .email
            .as_ref()
            .is_some_and(|email| self.email_index.stream(email) == stream);
        // A change to this address may be confirming now: its link counts until it
        // expires, and the confirmation that reserved it has long finished after that.
        let moving_here = account
            .email_change
            .pending
            .as_ref()
            .is_some_and(|pending| {
                self.email_index.stream(&pending.email) == stream
                    && now < pending.expires_at.plus(ABANDONED_RESERVATION_AFTER)
            });
        Ok(!holds && !moving_here)
    }

    /// Frees an e-mail address held by a deleted account.
    pub async fn release_email(
        &self,
        ctx: &CommandContext,
        reservation_stream: &str,
        account_id: AccountId,
    ) -> Result<(), CommandError> {
        let at = self.clock.now();
        self.exec
            .execute::<EmailReservation, _>(reservation_stream, ctx, None, at, |state| {
                Ok(state.decide(&ReservationCommand::Release { account_id, at })?)
            })
            .await?;
        Ok(())
    }

    /// The holder of `email`'s reservation, if any (it may be being deleted, or have moved
    /// to another address: [`Accounts::account_with_address`] asks whose address it is).
    pub async fn holder_of(&self, email: &EmailAddress) -> Result<Option<AccountId>, CommandError> {
        let stream = self.email_index.stream(email);
        Ok(self
            .exec
            .load::<EmailReservation>(&stream)
            .await?
            .state
            .holder)
    }

    /// The account whose address `email` is, if one's is (not merely the reservation's
    /// holder: one that moved elsewhere may not have released it yet).
    pub async fn account_with_address(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<AccountId>, CommandError> {
        Ok(self
            .find_by_email(email)
            .await?
            .and_then(|account| account.id))
    }

    /// The account whose address `email` is, loaded (the reservation's holder, if its
    /// address is still that one: a holder that moved elsewhere may not have released it).
    pub(super) async fn find_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<Account>, CommandError> {
        let Some(holder) = self.holder_of(email).await? else {
            return Ok(None);
        };
        let account = self.account(holder).await?;
        let its_address = account
            .email
            .as_ref()
            .is_some_and(|current| current.canonical() == email.canonical());
        Ok((account.is_registered() && its_address).then_some(account))
    }

    /// Deletes the account (with its password and a recent proof): every session ends
    /// now; the erasure worker then releases the address, destroys the data key and
    /// removes the avatar.
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn delete_account(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
        session_id: SessionId,
        password: &str,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let now = self.clock.now();
        self.require_fresh(account_id, session_id, now).await?;
        let account = self.verify_password(account_id, password).await?;
        let email = account.email.clone().ok_or(CommandError::AccountNotFound)?;
        let command = AccountCommand::DeleteAccount {
            verified_password_version: account.password_version,
            reservation_stream: self.email_index.stream(&email),
            fresh: self.fresh(session_id, now),
            at: now,
        };
        Ok(self.run(ctx, account_id, now, command).await?.position)
    }

    /// Records that the erasure of a deleted account finished (once; idempotent).
    #[tracing::instrument(skip_all, fields(%account_id))]
    pub async fn record_erasure(
        &self,
        ctx: &CommandContext,
        account_id: AccountId,
    ) -> Result<Option<GlobalPosition>, CommandError> {
        let now = self.clock.now();
        let command = AccountCommand::RecordErasure { at: now };
        Ok(self.run(ctx, account_id, now, command).await?.position)
    }
}
