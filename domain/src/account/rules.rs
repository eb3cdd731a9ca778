//! The rules the account's decisions share: credentials checked against the current
//! password, a session's recent proof, the second factor, and which sessions end.

use super::{Account, AccountError, AccountEvent, Fresh, SecondFactor};
use crate::session::{ActiveSession, MAX_LIVE_SESSIONS, RevocationReason};
use crate::{SessionId, Timestamp};
use std::time::Duration;

/// How long until another link may be e-mailed, when the last was `sent` less than `after`
/// before `at` (a burst of requests sends one).
pub(super) fn resend_wait(
    sent: Option<Timestamp>,
    after: Duration,
    at: Timestamp,
) -> Option<Duration> {
    let next = sent?.plus(after);
    (at < next).then(|| next.since(at))
}

impl Account {
    pub(super) fn check_password_version(&self, verified: u32) -> Result<(), AccountError> {
        if verified == self.password_version {
            Ok(())
        } else {
            Err(AccountError::CredentialsChanged)
        }
    }

    /// Whether the session of `fresh` proved its credentials recently enough: refused with
    /// [`AccountError::ReauthenticationRequired`] if not, and
    /// [`AccountError::SessionNotFound`] if the account holds no such session.
    pub fn check_fresh(&self, fresh: &Fresh) -> Result<(), AccountError> {
        let session = self
            .sessions
            .get(&fresh.session_id)
            .ok_or(AccountError::SessionNotFound)?;
        if session.authenticated_at >= fresh.since {
            Ok(())
        } else {
            Err(AccountError::ReauthenticationRequired)
        }
    }

    /// Checks the second factor a sign-in, re-authentication or password reset proved, and
    /// the events using it causes (a recovery code is used up).
    pub(super) fn second_factor_events(
        &self,
        factor: Option<&SecondFactor>,
        totp_secret: Option<&str>,
        at: Timestamp,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if !self.totp.enabled() {
            return Ok(vec![]);
        }
        match factor {
            None => Err(AccountError::SecondFactorRequired),
            Some(SecondFactor::Totp { step }) => {
                // A code of another secret than the one on now proves nothing; nor does
                // a step used before.
                let other_secret = totp_secret != self.totp.secret.as_deref();
                if other_secret || self.totp.last_step.is_some_and(|last| *step <= last) {
                    Err(AccountError::InvalidSecondFactor)
                } else {
                    Ok(vec![])
                }
            }
            Some(SecondFactor::RecoveryCode { code_hash }) => {
                if self.totp.recovery_codes.contains(code_hash) {
                    Ok(vec![AccountEvent::RecoveryCodeUsed {
                        code_hash: code_hash.clone(),
                        remaining: (self.totp.recovery_codes.len() - 1) as u32,
                        at,
                    }])
                } else {
                    Err(AccountError::InvalidSecondFactor)
                }
            }
        }
    }

    /// The sessions not past their expiry at `at`.
    pub(super) fn live_sessions(
        &self,
        at: Timestamp,
    ) -> impl Iterator<Item = (&SessionId, &ActiveSession)> {
        self.sessions
            .iter()
            .filter(move |(_, session)| !session.is_expired(at))
    }

    /// Ends the oldest live sessions, so that one more started at `at` keeps the account
    /// within [`MAX_LIVE_SESSIONS`].
    pub(super) fn make_room_for_a_session(&self, at: Timestamp) -> Vec<AccountEvent> {
        let mut live: Vec<_> = self.live_sessions(at).collect();
        let over = (live.len() + 1).saturating_sub(MAX_LIVE_SESSIONS);
        if over == 0 {
            return vec![];
        }
        live.sort_by_key(|(id, session)| (session.started_at, **id));
        live.iter()
            .take(over)
            .map(|(id, _)| AccountEvent::SessionRevoked {
                session_id: **id,
                reason: RevocationReason::Superseded,
                revoked_at: at,
            })
            .collect()
    }

    /// Ends every live session but `keep`.
    pub(super) fn revoke_all_but(
        &self,
        keep: Option<SessionId>,
        reason: RevocationReason,
        at: Timestamp,
    ) -> Vec<AccountEvent> {
        self.live_sessions(at)
            .filter(|(id, _)| Some(**id) != keep)
            .map(|(id, _)| AccountEvent::SessionRevoked {
                session_id: *id,
                reason,
                revoked_at: at,
            })
            .collect()
    }
}
