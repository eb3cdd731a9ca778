//! How each event changes the account aggregate's state.

use super::{Account, AccountEvent, Avatar, SecondFactor, TotpState};
use crate::session::ActiveSession;

impl Account {
    pub(super) fn apply(&mut self, event: &AccountEvent) {
        use AccountEvent as E;
        match event {
            E::AccountRegistered {
                account_id,
                email,
                display_name,
                password_hash,
                registered_at,
            } => {
                self.id = Some(*account_id);
                self.email = Some(email.clone());
                self.display_name = Some(display_name.clone());
                self.password_hash = Some(password_hash.clone());
                self.registered_at = Some(*registered_at);
            }
            E::EmailVerificationRequested { .. } | E::EmailVerified { .. } => {
                self.email_verification.apply(event);
            }
            E::EmailChangeRequested { .. } | E::EmailChangeCancelled { .. } => {
                self.email_change.apply(event);
            }
            E::EmailChanged { new_email, at, .. } => {
                self.email = Some(new_email.clone());
                self.email_change.apply(event);
                // The link reached the new address; one sent to the old address no
                // longer sets a password.
                self.email_verification.verified_at.get_or_insert(*at);
                self.password_reset.open = false;
            }
            E::PasswordRehashed { password_hash, .. } => {
                self.password_hash = Some(password_hash.clone());
            }
            E::PasswordResetRequested { .. } => self.password_reset.apply(event),
            E::PasswordChanged {
                password_hash,
                tokens_revoked,
                second_factor,
                ..
            } => {
                self.password_hash = Some(password_hash.clone());
                self.password_version += 1;
                if *tokens_revoked {
                    self.access_tokens.clear();
                }
                self.password_reset.apply(event);
                self.use_factor(second_factor.as_ref());
            }
            E::SessionStarted {
                session_id,
                token_hash,
                started_at,
                expires_at,
                origin,
                second_factor,
            } => {
                self.sessions.insert(
                    *session_id,
                    ActiveSession {
                        token_hash: token_hash.clone(),
                        started_at: *started_at,
                        expires_at: *expires_at,
                        authenticated_at: *started_at,
                    },
                );
                self.known_devices.insert(origin.device_key());
                self.use_factor(second_factor.as_ref());
            }
            E::NewDeviceSignedIn { .. } | E::DataExported { .. } => {}
            E::SessionReauthenticated {
                session_id,
                second_factor,
                at,
            } => {
                if let Some(session) = self.sessions.get_mut(session_id) {
                    session.authenticated_at = *at;
                }
                self.use_factor(second_factor.as_ref());
            }
            E::SessionRevoked { session_id, .. } => {
                self.sessions.remove(session_id);
                self.ended_sessions.insert(*session_id);
            }
            E::TotpEnrollmentStarted { secret, .. } => {
                self.totp.pending_secret = Some(secret.clone())
            }
            E::TotpEnabled {
                recovery_code_hashes,
                step,
                ..
            } => {
                self.totp.secret = self.totp.pending_secret.take();
                self.totp.last_step = Some(*step);
                self.totp.recovery_codes = recovery_code_hashes.iter().cloned().collect();
            }
            E::TotpDisabled { .. } => self.totp = TotpState::default(),
            E::RecoveryCodesRegenerated {
                recovery_code_hashes,
                ..
            } => {
                self.totp.recovery_codes = recovery_code_hashes.iter().cloned().collect();
            }
            E::RecoveryCodeUsed { code_hash, .. } => {
                self.totp.recovery_codes.remove(code_hash);
            }
            E::ProfileUpdated {
                display_name,
                bio,
                public_profile,
                ..
            } => {
                if let Some(name) = display_name {
                    self.display_name = Some(name.clone());
                }
                if let Some(bio) = bio {
                    self.bio = (!bio.as_str().is_empty()).then(|| bio.clone());
                }
                if let Some(public) = public_profile {
                    self.public_profile = *public;
                }
            }
            E::AvatarChanged {
                blob_key,
                content_type,
                ..
            } => {
                self.avatar = Some(Avatar {
                    blob_key: blob_key.clone(),
                    content_type: content_type.clone(),
                });
            }
            E::AvatarRemoved { .. } => self.avatar = None,
            E::AccountErased { .. } => self.erased = true,
            E::AccessTokenIssued {
                token_id,
                kind,
                expires_at,
                at,
            } => self.token_issued(*token_id, *kind, *expires_at, *at),
            E::AccessTokenRetired { token_id, .. } => {
                self.access_tokens.remove(token_id);
            }
            E::AccountDeleted { .. } => {
                self.deleted = true;
                self.avatar = None;
                // Its live sessions are revoked in the same append; those past their
                // expiry end with it.
                let ended = std::mem::take(&mut self.sessions);
                self.ended_sessions.extend(ended.keys().copied());
            }
        }
    }

    fn use_factor(&mut self, factor: Option<&SecondFactor>) {
        match factor {
            Some(SecondFactor::Totp { step }) => {
                self.totp.last_step =
                    Some(self.totp.last_step.map_or(*step, |last| last.max(*step)));
            }
            Some(SecondFactor::RecoveryCode { .. }) | None => {}
        }
    }
}
