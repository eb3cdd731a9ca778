//! The API and CLI tokens an account counts. Each token is a stream of its own
//! (`accesstoken-<id>`); the account records only that it issued one and that one was
//! revoked, so that issuing is decided on the account's stream: against the session's
//! recent proof, and against a count of live tokens no concurrent issue can slip past
//! (two issues race on the account's expected revision).

use super::{Account, AccountError, AccountEvent, LiveToken};
use crate::Timestamp;
use crate::access_token::TokenKind;
use uuid::Uuid;

impl Account {
    /// The tokens that count at `now`: issued, not revoked, not expired.
    pub fn live_tokens(&self, now: Timestamp) -> usize {
        self.access_tokens
            .values()
            .filter(|t| t.expires_at.is_none_or(|e| e > now))
            .count()
    }

    pub(super) fn issue_token(
        &self,
        token_id: Uuid,
        kind: TokenKind,
        expires_at: Option<Timestamp>,
        max_live: u32,
        at: Timestamp,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if self.access_tokens.contains_key(&token_id) {
            // A retry of the same issue.
            return Ok(vec![]);
        }
        if self.live_tokens(at) >= max_live as usize {
            return Err(AccountError::TooManyTokens { max: max_live });
        }
        Ok(vec![AccountEvent::AccessTokenIssued {
            token_id,
            kind,
            expires_at,
            at,
        }])
    }

    pub(super) fn retire_token(&self, token_id: Uuid, at: Timestamp) -> Vec<AccountEvent> {
        if self.access_tokens.contains_key(&token_id) {
            vec![AccountEvent::AccessTokenRetired { token_id, at }]
        } else {
            vec![]
        }
    }

    pub(super) fn token_issued(
        &mut self,
        token_id: Uuid,
        kind: TokenKind,
        expires_at: Option<Timestamp>,
        at: Timestamp,
    ) {
        // Tokens expired by now count no more: forget them, so the state stays small.
        self.access_tokens
            .retain(|_, t| t.expires_at.is_none_or(|e| e > at));
        self.access_tokens.insert(
            token_id,
            LiveToken {
                kind,
                expires_at,
                issued_at: at,
            },
        );
    }
}
