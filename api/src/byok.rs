//! Bring your own key: checking a provider credential's shape and verifying it with one
//! cheap read-only call to the provider, whose base URL is configurable
//! (`--provider-base-url <provider>=<url>`; the tests point them at local fakes).
//!
//! | provider | call | a wrong key |
//! |---|---|---|
//! | OpenAI | `GET /v1/models`, `Authorization: Bearer` | 401 |
//! | Anthropic | `GET /v1/models`, `x-api-key`, `anthropic-version` | 401 |
//! | Google (API key) | `GET /v1beta/models?key=` | 400 `API_KEY_INVALID`, 401, 403 |
//! | ElevenLabs | `GET /v1/user`, `xi-api-key` | 401 (`missing_permissions`: valid but limited) |
//!
//! A Google service account is checked for its shape only (`type: service_account`,
//! `client_email`, `private_key`, `project_id`): no token exchange is made, so it is saved
//! `unverified`.

use crate::error::ApiError;
use commands::provider_keys::NewCredential;
use domain::provider_key::{CredentialKind, KeyStatus, Provider, key_hint};
use std::collections::BTreeMap;
use std::time::Duration;

/// Longest API key accepted.
pub const MAX_KEY: usize = 512;
/// Longest service-account JSON accepted.
pub const MAX_SERVICE_ACCOUNT: usize = 16 * 1024;

/// Where each provider's API is, and the client that calls it.
#[derive(Clone)]
pub struct ProviderEndpoints {
    urls: BTreeMap<Provider, String>,
    client: reqwest::Client,
}

/// A provider's answer about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Valid,
    /// Accepted without a permission the check needs.
    Limited(String),
    /// Refused, with the provider's reason.
    Invalid(String),
    /// No answer, or one that says nothing about the key (5xx, 429…).
    Unreachable(String),
    /// Not checked with the provider (a service account: shape only).
    Unverified,
}

impl Verdict {
    /// The status it records and the problem shown with it.
    pub fn status(&self) -> (KeyStatus, Option<String>) {
        match self {
            Self::Valid => (KeyStatus::Valid, None),
            Self::Limited(why) => (KeyStatus::Limited, Some(why.clone())),
            Self::Invalid(why) => (KeyStatus::Invalid, Some(why.clone())),
            Self::Unreachable(_) | Self::Unverified => (KeyStatus::Unverified, None),
        }
    }
}

/// The default base URL of `provider`.
pub fn default_base_url(provider: Provider) -> &'static str {
    match provider {
        Provider::Google => "https://generativelanguage.googleapis.com",
        Provider::Openai => "https://api.openai.com",
        Provider::Anthropic => "https://api.anthropic.com",
        Provider::Elevenlabs => "https://api.elevenlabs.io",
    }
}

impl ProviderEndpoints {
    /// The endpoints, `overrides` being `provider=url` pairs.
    pub fn new(overrides: &[String], timeout: Duration) -> anyhow::Result<Self> {
        let mut urls: BTreeMap<Provider, String> = Provider::ALL
            .into_iter()
            .map(|p| (p, default_base_url(p).to_owned()))
            .collect();
        for pair in overrides {
            let (name, url) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--provider-base-url takes provider=url"))?;
            let provider = Provider::parse(name.trim())
                .ok_or_else(|| anyhow::anyhow!("--provider-base-url: no provider {name:?}"))?;
            let url = url.trim().trim_end_matches('/');
            reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("--provider-base-url {name}: {e}"))?;
            urls.insert(provider, url.to_owned());
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()?;
        Ok(Self { urls, client })
    }

    /// Verifies `secret` of `kind` with `provider`.
    pub async fn verify(&self, provider: Provider, kind: CredentialKind, secret: &str) -> Verdict {
        if kind == CredentialKind::ServiceAccount {
            return Verdict::Unverified;
        }
        let base = &self.urls[&provider];
        let request = match provider {
            Provider::Openai => self
                .client
                .get(format!("{base}/v1/models"))
                .bearer_auth(secret),
            Provider::Anthropic => self
                .client
                .get(format!("{base}/v1/models"))
                .header("x-api-key", secret)
                .header("anthropic-version", "2023-06-01"),
            Provider::Google => self
                .client
                .get(format!("{base}/v1beta/models"))
                .query(&[("key", secret), ("pageSize", "1")]),
            Provider::Elevenlabs => self
                .client
                .get(format!("{base}/v1/user"))
                .header("xi-api-key", secret),
        };
        let response = match request.send().await {
            Ok(response) => response,
            // The error may carry the URL, and Google's holds the key: never repeat it.
            Err(error) => {
                let why = if error.is_timeout() {
                    "the provider did not answer in time"
                } else {
                    "the provider could not be reached"
                };
                return Verdict::Unreachable(why.to_owned());
            }
        };
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let reason = scrub(&reason_of(&body, status), secret);
        if status.is_success() {
            return Verdict::Valid;
        }
        let refused = matches!(status.as_u16(), 401 | 403)
            || (provider == Provider::Google && status.as_u16() == 400);
        if provider == Provider::Elevenlabs && refused && body.contains("missing_permissions") {
            return Verdict::Limited(reason);
        }
        if refused {
            Verdict::Invalid(reason)
        } else {
            Verdict::Unreachable(format!("the provider answered {status}: {reason}"))
        }
    }
}

/// The provider's message in an error body, else the status.
fn reason_of(body: &str, status: reqwest::StatusCode) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = [
        &json["error"]["message"],
        &json["detail"]["message"],
        &json["message"],
        &json["detail"],
    ]
    .into_iter()
    .find_map(|v| v.as_str().map(str::to_owned));
    let mut reason = message.unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    if reason.chars().count() > 300 {
        reason = reason.chars().take(300).collect::<String>() + "…";
    }
    reason
}

/// `text` without `secret` (a provider may echo the key it refused).
fn scrub(text: &str, secret: &str) -> String {
    if secret.len() < 4 {
        return text.to_owned();
    }
    text.replace(secret, &key_hint(secret))
}

/// Checks a credential's shape: an API key for any provider, or (Google only) a service
/// account's JSON key.
pub fn check_shape(
    provider: Provider,
    api_key: Option<String>,
    service_account_json: Option<String>,
) -> Result<NewCredential, ApiError> {
    match (api_key, service_account_json) {
        (Some(key), None) => {
            let key = key.trim().to_owned();
            let length = key.chars().count();
            if !(20..=MAX_KEY).contains(&length) || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(ApiError::invalid(
                    "api_key",
                    format!("must be 20 to {MAX_KEY} printable ASCII characters without spaces"),
                ));
            }
            let prefix = match provider {
                Provider::Openai => Some("sk-"),
                Provider::Anthropic => Some("sk-ant-"),
                Provider::Google => Some("AIza"),
                Provider::Elevenlabs => None,
            };
            if let Some(prefix) = prefix
                && !key.starts_with(prefix)
            {
                return Err(ApiError::invalid(
                    "api_key",
                    format!("a {} key starts with {prefix}", provider.title()),
                ));
            }
            Ok(NewCredential {
                kind: CredentialKind::ApiKey,
                hint: key_hint(&key),
                secret: key,
                service_account_email: None,
                project_id: None,
            })
        }
        (None, Some(json)) => {
            if provider != Provider::Google {
                return Err(ApiError::invalid(
                    "service_account_json",
                    "only Google takes a service account",
                ));
            }
            service_account(json)
        }
        _ => Err(ApiError::invalid(
            "body",
            "give exactly one of api_key and service_account_json",
        )),
    }
}

fn service_account(json: String) -> Result<NewCredential, ApiError> {
    let invalid = |message: &str| ApiError::invalid("service_account_json", message);
    if json.len() > MAX_SERVICE_ACCOUNT {
        return Err(invalid("is over 16 KiB"));
    }
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|_| invalid("is not JSON"))?;
    let field = |name: &str| {
        value[name]
            .as_str()
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if field("type") != Some("service_account") {
        return Err(invalid("type must be service_account"));
    }
    let email = field("client_email")
        .filter(|e| e.contains('@') && e.len() <= 320)
        .ok_or_else(|| invalid("client_email must be an e-mail address"))?;
    let project = field("project_id")
        .filter(|p| p.len() <= 64)
        .ok_or_else(|| invalid("project_id is required"))?;
    if !field("private_key").is_some_and(|k| k.contains("PRIVATE KEY")) {
        return Err(invalid("private_key must be a PEM private key"));
    }
    Ok(NewCredential {
        kind: CredentialKind::ServiceAccount,
        hint: email.to_owned(),
        service_account_email: Some(email.to_owned()),
        project_id: Some(project.to_owned()),
        secret: json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_per_provider() {
        let key = |p, k: &str| check_shape(p, Some(k.into()), None);
        assert!(key(Provider::Openai, "sk-proj-0123456789abcdefghij").is_ok());
        assert!(key(Provider::Openai, "pk-proj-0123456789abcdefghij").is_err());
        assert!(key(Provider::Anthropic, "sk-ant-api03-0123456789abcdef").is_ok());
        assert!(key(Provider::Google, "AIzaSyA0123456789abcdefghijklmnopqrs").is_ok());
        assert!(key(Provider::Elevenlabs, "sk_0123456789abcdef0123").is_ok());
        assert!(key(Provider::Elevenlabs, "short").is_err());
        assert!(key(Provider::Elevenlabs, "with a space 0123456789").is_err());
        assert!(check_shape(Provider::Openai, None, None).is_err());
        let sa = serde_json::json!({"type": "service_account", "client_email": "r@p.iam.gserviceaccount.com",
            "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"})
        .to_string();
        let checked = check_shape(Provider::Google, None, Some(sa.clone())).unwrap();
        assert_eq!(checked.hint, "r@p.iam.gserviceaccount.com");
        assert!(check_shape(Provider::Openai, None, Some(sa)).is_err());
        assert!(check_shape(Provider::Google, None, Some("{\"type\":\"user\"}".into())).is_err());
    }

    #[test]
    fn a_reason_never_repeats_the_key() {
        let key = "AIzaSyA0123456789abcdefghijklmnopqrs";
        let body = format!("{{\"error\":{{\"message\":\"key {key} not valid\"}}}}");
        let reason = scrub(&reason_of(&body, reqwest::StatusCode::BAD_REQUEST), key);
        assert!(!reason.contains(key));
        assert!(reason.contains("not valid"));
    }
}
