//! The decisions of the account aggregate.

use super::{Account, AccountCommand, AccountError, AccountEvent};
use crate::session::{RevocationReason, SessionStatus};

impl Account {
    pub(super) fn decide_command(
        &self,
        command: &AccountCommand,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        if let C::Register {
            account_id,
            email,
            display_name,
            password_hash,
            at,
        } = command
        {
            if self.id.is_some() {
                return Err(AccountError::AlreadyRegistered);
            }
            return Ok(vec![
                AccountEvent::AccountRegistered {
                    account_id: *account_id,
                    email: email.clone(),
                    display_name: display_name.clone(),
                    password_hash: password_hash.clone(),
                    registered_at: *at,
                },
                AccountEvent::EmailVerificationRequested {
                    email: email.clone(),
                    generation: 1,
                    expires_at: at.plus(super::VERIFICATION_LINK_LIFETIME),
                    at: *at,
                },
            ]);
        }
        // Decided on what stays readable once the key is gone: the deletion itself.
        if let C::RecordErasure { at } = command {
            if !self.deleted {
                return Err(AccountError::NotFound);
            }
            return Ok((!self.erased)
                .then_some(AccountEvent::AccountErased { at: *at })
                .into_iter()
                .collect());
        }
        if !self.is_registered() {
            return Err(AccountError::NotFound);
        }
        match command {
            C::Register { .. } | C::RecordErasure { .. } => unreachable!("handled above"),
            C::RequestEmailVerification { .. } | C::VerifyEmail { .. } => {
                self.decide_verification(command)
            }
            C::RequestPasswordReset { .. } | C::ResetPassword { .. } => {
                self.decide_password_reset(command)
            }
            C::RecordDataExport { fresh, at } => {
                self.check_fresh(fresh)?;
                Ok(vec![AccountEvent::DataExported {
                    session_id: fresh.session_id,
                    at: *at,
                }])
            }
            C::RequestEmailChange { .. }
            | C::CancelEmailChange { .. }
            | C::ConfirmEmailChange { .. } => self.decide_email_change(command),
            C::StartSession {
                session_id,
                token_hash,
                verified_password_version,
                second_factor,
                totp_secret,
                expires_at,
                origin,
                at,
            } => {
                self.check_password_version(*verified_password_version)?;
                if self.session_status(*session_id) != SessionStatus::Unknown {
                    return Err(AccountError::SessionExists);
                }
                if expires_at <= at {
                    return Err(AccountError::InvalidExpiry);
                }
                let mut events =
                    self.second_factor_events(second_factor.as_ref(), totp_secret.as_deref(), *at)?;
                events.splice(0..0, self.make_room_for_a_session(*at));
                events.insert(
                    0,
                    AccountEvent::SessionStarted {
                        session_id: *session_id,
                        token_hash: token_hash.clone(),
                        started_at: *at,
                        expires_at: *expires_at,
                        origin: origin.clone(),
                        second_factor: second_factor.clone(),
                    },
                );
                // The very first sign-in is not news; a device class or network unseen
                // since is.
                if !self.known_devices.is_empty()
                    && !self.known_devices.contains(&origin.device_key())
                {
                    events.push(AccountEvent::NewDeviceSignedIn {
                        session_id: *session_id,
                        device: origin.device.clone(),
                        ip: origin.ip.clone(),
                        location: origin.location.clone(),
                        at: *at,
                    });
                }
                Ok(events)
            }
            C::RehashPassword {
                verified_hash,
                password_hash,
                at,
            } => {
                // Changed meanwhile: the new password's hash is current already.
                if self.password_hash.as_deref() != Some(verified_hash.as_str()) {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::PasswordRehashed {
                    password_hash: password_hash.clone(),
                    at: *at,
                }])
            }
            C::Reauthenticate {
                session_id,
                verified_password_version,
                second_factor,
                totp_secret,
                at,
            } => {
                self.check_password_version(*verified_password_version)?;
                if self.session_status(*session_id) != SessionStatus::Active {
                    return Err(AccountError::SessionNotFound);
                }
                let mut events =
                    self.second_factor_events(second_factor.as_ref(), totp_secret.as_deref(), *at)?;
                events.insert(
                    0,
                    AccountEvent::SessionReauthenticated {
                        session_id: *session_id,
                        second_factor: second_factor.clone(),
                        at: *at,
                    },
                );
                Ok(events)
            }
            C::RevokeSession {
                session_id,
                reason,
                at,
            } => match self.session_status(*session_id) {
                SessionStatus::Unknown => Err(AccountError::SessionNotFound),
                // Revoking twice is what a retry looks like: nothing more to do.
                SessionStatus::Ended => Ok(vec![]),
                SessionStatus::Active => Ok(vec![AccountEvent::SessionRevoked {
                    session_id: *session_id,
                    reason: *reason,
                    revoked_at: *at,
                }]),
            },
            C::RevokeOtherSessions { keep, at } => {
                Ok(self.revoke_all_but(Some(*keep), RevocationReason::SignedOutOthers, *at))
            }
            C::ChangePassword {
                new_password_hash,
                verified_password_version,
                sign_out_other_sessions,
                revoke_tokens,
                fresh,
                at,
            } => {
                self.check_password_version(*verified_password_version)?;
                self.check_fresh(fresh)?;
                let mut events = vec![AccountEvent::PasswordChanged {
                    password_hash: new_password_hash.clone(),
                    changed_at: *at,
                    changed_by_session: Some(fresh.session_id),
                    tokens_revoked: *revoke_tokens,
                    reset_link: None,
                    second_factor: None,
                }];
                if *sign_out_other_sessions {
                    events.extend(self.revoke_all_but(
                        Some(fresh.session_id),
                        RevocationReason::PasswordChanged,
                        *at,
                    ));
                }
                Ok(events)
            }
            C::StartTotpEnrollment { secret, fresh, at } => {
                if self.totp.enabled() {
                    return Err(AccountError::TotpAlreadyEnabled);
                }
                self.check_fresh(fresh)?;
                Ok(vec![AccountEvent::TotpEnrollmentStarted {
                    secret: secret.clone(),
                    at: *at,
                }])
            }
            C::ConfirmTotp {
                secret,
                step,
                recovery_code_hashes,
                fresh,
                at,
            } => {
                if self.totp.enabled() {
                    return Err(AccountError::TotpAlreadyEnabled);
                }
                let Some(pending) = &self.totp.pending_secret else {
                    return Err(AccountError::NoPendingEnrollment);
                };
                self.check_fresh(fresh)?;
                // The code proved another secret than the one that would be turned on.
                if pending != secret {
                    return Err(AccountError::InvalidSecondFactor);
                }
                if self.totp.last_step.is_some_and(|last| *step <= last) {
                    return Err(AccountError::InvalidSecondFactor);
                }
                Ok(vec![AccountEvent::TotpEnabled {
                    recovery_code_hashes: recovery_code_hashes.clone(),
                    step: *step,
                    at: *at,
                }])
            }
            C::DisableTotp {
                verified_password_version,
                second_factor,
                totp_secret,
                fresh,
                at,
            } => {
                self.check_password_version(*verified_password_version)?;
                self.check_fresh(fresh)?;
                let mut events =
                    self.second_factor_events(Some(second_factor), totp_secret.as_deref(), *at)?;
                events.push(AccountEvent::TotpDisabled {
                    second_factor: second_factor.clone(),
                    at: *at,
                });
                Ok(events)
            }
            C::RegenerateRecoveryCodes {
                recovery_code_hashes,
                fresh,
                at,
            } => {
                if !self.totp.enabled() {
                    return Err(AccountError::TotpNotEnabled);
                }
                self.check_fresh(fresh)?;
                Ok(vec![AccountEvent::RecoveryCodesRegenerated {
                    recovery_code_hashes: recovery_code_hashes.clone(),
                    at: *at,
                }])
            }
            C::UpdateProfile {
                display_name,
                bio,
                public_profile,
                at,
            } => {
                let display_name = display_name
                    .clone()
                    .filter(|n| Some(n) != self.display_name.as_ref());
                let current_bio = self.bio.as_ref().map_or("", |b| b.as_str());
                let bio = bio.clone().filter(|b| b.as_str() != current_bio);
                let public_profile = public_profile.filter(|p| *p != self.public_profile);
                if display_name.is_none() && bio.is_none() && public_profile.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::ProfileUpdated {
                    display_name,
                    bio,
                    public_profile,
                    at: *at,
                }])
            }
            C::SetAvatar {
                blob_key,
                content_type,
                at,
            } => Ok(vec![AccountEvent::AvatarChanged {
                blob_key: blob_key.clone(),
                content_type: content_type.clone(),
                at: *at,
            }]),
            C::RemoveAvatar { at } => Ok(self
                .avatar
                .iter()
                .map(|avatar| AccountEvent::AvatarRemoved {
                    blob_key: avatar.blob_key.clone(),
                    at: *at,
                })
                .collect()),
            C::IssueAccessToken {
                token_id,
                kind,
                expires_at,
                max_live,
                fresh,
                at,
            } => {
                self.check_fresh(fresh)?;
                self.issue_token(*token_id, *kind, *expires_at, *max_live, *at)
            }
            C::RetireAccessToken { token_id, at } => Ok(self.retire_token(*token_id, *at)),
            C::DeleteAccount {
                verified_password_version,
                reservation_stream,
                fresh,
                at,
            } => {
                self.check_password_version(*verified_password_version)?;
                self.check_fresh(fresh)?;
                let mut events = vec![AccountEvent::AccountDeleted {
                    reservation_stream: reservation_stream.clone(),
                    avatar_blob_key: self.avatar.as_ref().map(|a| a.blob_key.clone()),
                    at: *at,
                }];
                // Every live session (at most `MAX_LIVE_SESSIONS`): none may outlive the
                // account. Those past their expiry are dead already, and the read models
                // forget every session of a deleted account.
                events.extend(self.live_sessions(*at).map(|(id, _)| {
                    AccountEvent::SessionRevoked {
                        session_id: *id,
                        reason: RevocationReason::AccountDeleted,
                        revoked_at: *at,
                    }
                }));
                Ok(events)
            }
        }
    }
}
