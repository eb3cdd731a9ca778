//! The request and response bodies of the token routes ([`super::tokens`]).

use crate::openapi::patterns;
use commands::access_tokens::IssuedAccessToken;
use projections::access_tokens::TokenSummary;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /me/api-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiToken {
    /// 1-64 characters once trimmed.
    #[schema(schema_with = patterns::schemas::label)]
    pub label: String,
    /// At least one scope (repeats count once).
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
    /// Days the token lives: 1 to `--api-token-max-days` (365 by default; the document
    /// states the configured bound); 90 when absent.
    #[serde(default, deserialize_with = "crate::integers::option_u32")]
    #[schema(minimum = 1, maximum = 365)]
    pub expires_in_days: Option<u32>,
}

/// What an API token may do.
#[derive(Debug, ToSchema)]
pub enum ScopeName {
    /// `GET /api/v1/me`.
    #[schema(rename = "account:read")]
    AccountRead,
    /// `GET /api/v1/credits…`.
    #[schema(rename = "credits:read")]
    CreditsRead,
    /// `POST /api/v1/generations…`.
    #[schema(rename = "generations:write")]
    GenerationsWrite,
    /// `GET /api/v1/usage`.
    #[schema(rename = "usage:read")]
    UsageRead,
}

/// `POST /me/cli-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCliToken {
    /// 1-64 characters once trimmed.
    #[schema(schema_with = patterns::schemas::label)]
    pub label: String,
    /// What the CLI runs as.
    #[schema(value_type = CliTokenKind)]
    pub kind: String,
}

/// The kinds of CLI token.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CliTokenKind {
    /// A developer's machine.
    Device,
    /// A recording rig.
    Recorder,
}

/// `POST /me/api-tokens/{id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret keeps working: 0 (default) to 86400.
    #[serde(default, deserialize_with = "crate::integers::u64")]
    #[schema(maximum = 86400)]
    pub grace_seconds: u64,
}

/// A token just issued: the secret appears here and nowhere else, ever.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// Its id.
    pub token_id: Uuid,
    /// The secret.
    pub token: String,
    /// How lists show it.
    pub hint: String,
    /// RFC 3339, if it expires (API tokens always do).
    pub expires_at: Option<String>,
}

impl From<IssuedAccessToken> for IssuedTokenView {
    fn from(issued: IssuedAccessToken) -> Self {
        Self {
            token_id: issued.token_id,
            token: issued.token,
            hint: issued.hint,
            expires_at: issued.expires_at.map(|e| e.to_rfc3339()),
        }
    }
}

/// A token in a list (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub token_id: Uuid,
    /// `api`, `cli_device` or `cli_recorder`.
    pub kind: &'static str,
    /// The owner's name for it.
    pub label: String,
    /// Its scopes (API tokens).
    pub scopes: Vec<String>,
    /// Prefix and last four characters.
    pub hint: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, if it expires.
    pub expires_at: Option<String>,
    /// RFC 3339: the last request, as of the last usage flush (a few seconds).
    pub last_used_at: Option<String>,
}

impl From<TokenSummary> for TokenView {
    fn from(t: TokenSummary) -> Self {
        Self {
            token_id: t.token_id,
            kind: t.kind.as_str(),
            label: t.label,
            scopes: t.scopes,
            hint: t.hint,
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(|e| e.to_rfc3339()),
            last_used_at: t.last_used_at.map(|e| e.to_rfc3339()),
        }
    }
}

/// A page of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Requests of one day by status class.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyUsageView {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// 2xx answers.
    pub ok: i64,
    /// 4xx answers.
    pub client_errors: i64,
    /// 5xx answers.
    pub server_errors: i64,
}

/// A token's usage log.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// The token.
    pub token_id: Uuid,
    /// Oldest first.
    pub days: Vec<DailyUsageView>,
    /// RFC 3339.
    pub last_used_at: Option<String>,
    /// The last request's client IP.
    pub last_ip: Option<String>,
    /// The last request's user agent.
    pub last_user_agent: Option<String>,
}
