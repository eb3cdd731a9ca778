//! `GET /me/security-log`: the account holder's own security events, newest first.
//!
//! Read from the account's own streams by name, never from the whole log: `account-<id>`
//! (sign-ins, new devices, re-authentication, sessions revoked, password and 2FA changes,
//! tokens issued and retired), `signins-<id>` (refused sign-ins), `providerkeys-<id>`
//! (keys saved, removed and read by the studio's workers) and the streams of the tokens the
//! account issued (rotations). Device and place come from the sign-in that started the
//! session an entry is about, opened with the account's key.

use super::{AuditError, Auditor};
use domain::access_token::AccessTokenEvent;
use domain::account::AccountEvent;
use domain::activity::SignInEvent;
use domain::provider_key::ProviderKeyEvent;
use domain::session::SessionOrigin;
use domain::{AccountId, DomainEvent, SessionId, StreamCategory, Timestamp};
use serde::Serialize;
use std::collections::HashMap;
use store::{Payload, RecordedEvent};
use utoipa::ToSchema;
use uuid::Uuid;

/// One security event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecurityEntry {
    /// What happened: `sign_in`, `sign_in_failed`, `new_device`, `reauthenticated`,
    /// `session_revoked`, `password_changed`, `password_reset_requested`, `password_reset`
    /// (a forgotten password set through its link), `totp_enabled`, `totp_disabled`,
    /// `recovery_codes_regenerated`, `recovery_code_used`, `token_created`,
    /// `token_rotated`, `token_revoked`, `provider_key_saved`, `provider_key_removed`,
    /// `provider_key_read`, `email_verified`, `email_change_requested`,
    /// `email_change_cancelled`, `email_changed`, `data_exported`, `account_deleted`.
    pub kind: String,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The session it is about (a sign-in, a revocation) or that made the change.
    pub session_id: Option<Uuid>,
    /// The device, e.g. "Firefox 128 on Linux".
    pub device: Option<String>,
    /// The client IP address.
    pub ip: Option<String>,
    /// A coarse location, e.g. "Paris, FR".
    pub location: Option<String>,
    /// More about it: why a sign-in failed or a session ended, which provider's key, which
    /// token.
    pub detail: Option<String>,
}

/// A page of the security log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecurityLogPage {
    /// Newest first.
    pub entries: Vec<SecurityEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

struct Found {
    position: u64,
    entry: SecurityEntry,
}

#[derive(Default)]
struct Origins(HashMap<SessionId, SessionOrigin>);

impl Origins {
    fn entry(
        &self,
        kind: &str,
        at: Timestamp,
        session: Option<SessionId>,
        detail: Option<String>,
    ) -> SecurityEntry {
        let origin = session.and_then(|s| self.0.get(&s));
        SecurityEntry {
            kind: kind.to_owned(),
            at,
            session_id: session.map(|s| s.0),
            device: origin.map(|o| o.device.clone()),
            ip: origin.and_then(|o| o.ip.clone()),
            location: origin.and_then(|o| o.location.clone()),
            detail,
        }
    }
}

fn debug_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Auditor {
    /// The page of `account`'s security log after `cursor` (a position; newest first).
    #[tracing::instrument(skip_all, fields(%account))]
    pub async fn security_log(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<SecurityLogPage, AuditError> {
        let mut recorded = Vec::new();
        for category in [
            StreamCategory::Account,
            StreamCategory::SignIns,
            StreamCategory::ProviderKeys,
        ] {
            recorded.extend(self.read(&category.stream(account)).await?);
        }
        let tokens: Vec<String> = recorded
            .iter()
            .filter(|e| e.event_type == "AccessTokenIssued")
            .filter_map(|e| e.data.get("token_id")?.as_str().map(str::to_owned))
            .collect();
        for token in tokens {
            let stream = StreamCategory::AccessToken.stream(token);
            let rotations = self.read(&stream).await?;
            recorded.extend(
                rotations
                    .into_iter()
                    .filter(|e| e.event_type == "AccessTokenRotated"),
            );
        }
        recorded.sort_by_key(|e| e.position);
        let mut origins = Origins::default();
        let mut found = Vec::new();
        for event in recorded {
            let position = event.position.0;
            let recorded_at = event.recorded_at;
            let stream = event.stream.clone();
            let decoded = self.codec.decode(event).await.map_err(AuditError::failed)?;
            let Payload::Event(event) = decoded.payload else {
                continue;
            };
            if let Some(entry) = describe(&mut origins, &stream, recorded_at, event) {
                found.push(Found { position, entry });
            }
        }
        found.reverse();
        let mut page: Vec<Found> = found
            .into_iter()
            .filter(|f| before.is_none_or(|b| f.position < b))
            .take(limit + 1)
            .collect();
        let next_cursor = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|f| f.position.to_string())
        } else {
            None
        };
        Ok(SecurityLogPage {
            entries: page.into_iter().map(|f| f.entry).collect(),
            next_cursor,
        })
    }

    async fn read(&self, stream: &str) -> Result<Vec<RecordedEvent>, AuditError> {
        self.log
            .read_stream_to_end(stream)
            .await
            .map_err(AuditError::failed)
    }
}

/// The entry an event makes, if it is a security event.
fn describe(
    origins: &mut Origins,
    stream: &str,
    at: Timestamp,
    event: DomainEvent,
) -> Option<SecurityEntry> {
    use AccountEvent as A;
    let entry = match event {
        DomainEvent::Account(event) => match event {
            A::SessionStarted {
                session_id, origin, ..
            } => {
                origins.0.insert(session_id, origin);
                origins.entry("sign_in", at, Some(session_id), None)
            }
            A::NewDeviceSignedIn { session_id, .. } => {
                origins.entry("new_device", at, Some(session_id), None)
            }
            A::SessionReauthenticated { session_id, .. } => {
                origins.entry("reauthenticated", at, Some(session_id), None)
            }
            A::SessionRevoked {
                session_id, reason, ..
            } => origins.entry(
                "session_revoked",
                at,
                Some(session_id),
                Some(debug_name(&reason)),
            ),
            A::PasswordResetRequested { .. } => {
                origins.entry("password_reset_requested", at, None, None)
            }
            A::PasswordChanged {
                changed_by_session,
                tokens_revoked,
                reset_link,
                ..
            } => origins.entry(
                if reset_link.is_some() {
                    "password_reset"
                } else {
                    "password_changed"
                },
                at,
                changed_by_session,
                tokens_revoked.then(|| "tokens revoked".to_owned()),
            ),
            A::TotpEnabled { .. } => origins.entry("totp_enabled", at, None, None),
            A::TotpDisabled { .. } => origins.entry("totp_disabled", at, None, None),
            A::RecoveryCodesRegenerated { .. } => {
                origins.entry("recovery_codes_regenerated", at, None, None)
            }
            A::RecoveryCodeUsed { remaining, .. } => origins.entry(
                "recovery_code_used",
                at,
                None,
                Some(format!("{remaining} left")),
            ),
            A::AccessTokenIssued { token_id, kind, .. } => origins.entry(
                "token_created",
                at,
                None,
                Some(format!("{} token {token_id}", debug_name(&kind))),
            ),
            A::AccessTokenRetired { token_id, .. } => {
                origins.entry("token_revoked", at, None, Some(format!("token {token_id}")))
            }
            A::EmailVerified { .. } => origins.entry("email_verified", at, None, None),
            A::EmailChangeRequested { .. } => {
                origins.entry("email_change_requested", at, None, None)
            }
            A::EmailChangeCancelled { .. } => {
                origins.entry("email_change_cancelled", at, None, None)
            }
            A::EmailChanged { .. } => origins.entry("email_changed", at, None, None),
            A::DataExported { session_id, .. } => {
                origins.entry("data_exported", at, Some(session_id), None)
            }
            A::AccountDeleted { .. } => origins.entry("account_deleted", at, None, None),
            _ => return None,
        },
        DomainEvent::SignIn(SignInEvent::SignInFailed { reason, origin, .. }) => SecurityEntry {
            kind: "sign_in_failed".into(),
            at,
            session_id: None,
            device: Some(origin.device),
            ip: origin.ip,
            location: origin.location,
            detail: Some(debug_name(&reason)),
        },
        DomainEvent::AccessToken(AccessTokenEvent::AccessTokenRotated { .. }) => {
            let token = StreamCategory::AccessToken
                .id_in(stream)
                .unwrap_or_default();
            origins.entry("token_rotated", at, None, Some(format!("token {token}")))
        }
        DomainEvent::ProviderKey(event) => {
            let (kind, provider) = match event {
                ProviderKeyEvent::ProviderKeySet { provider, .. } => {
                    ("provider_key_saved", provider)
                }
                ProviderKeyEvent::ProviderKeyRemoved { provider, .. } => {
                    ("provider_key_removed", provider)
                }
                ProviderKeyEvent::ProviderKeyResolved { provider, .. } => {
                    ("provider_key_read", provider)
                }
                _ => return None,
            };
            origins.entry(kind, at, None, Some(debug_name(&provider)))
        }
        _ => return None,
    };
    Some(entry)
}
