//! The payment provider, behind a trait: checkouts for credit packs, charges for invoices,
//! the billing portal, and webhooks signed with HMAC-SHA256 and a timestamp (Stripe's
//! scheme). The embedded default is [`SandboxProvider`]: its checkout page is served by this
//! service and, when visited, completes the purchase in-process through the code a webhook
//! runs (nothing is signed, no request leaves the service). A real provider implements
//! [`PaymentProvider`] and signs its webhooks with the secret this service is given.

use async_trait::async_trait;
use domain::AccountId;
use domain::money::Money;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use uuid::Uuid;

/// The header carrying a webhook's signature: `t=<unix seconds>,v1=<hex HMAC>`.
pub const SIGNATURE_HEADER: &str = "payments-signature";
/// Webhooks signed longer ago (or further ahead) than this are refused.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);
/// The webhook event type confirming a paid checkout.
pub const CHECKOUT_COMPLETED: &str = "checkout.session.completed";

/// A checkout to open.
#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    /// Our purchase id (the provider's client reference).
    pub purchase_id: Uuid,
    /// The buyer.
    pub account_id: AccountId,
    /// What is bought.
    pub description: String,
    /// Its price.
    pub amount: Money,
    /// This service's public base URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
}

/// An opened checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The provider's session id.
    pub session_id: String,
    /// Where the buyer pays.
    pub url: String,
}

/// The result of charging the payment method on file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// Paid now.
    Paid {
        /// The provider's reference.
        reference: String,
    },
    /// The provider will confirm by webhook (`invoice.paid`).
    Pending,
}

/// Why the provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PaymentError(pub String);

/// A payment provider.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// Opens a checkout for a one-off payment.
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<Checkout, PaymentError>;

    /// Charges an invoice to the account's payment method.
    async fn charge(
        &self,
        account_id: AccountId,
        invoice_id: Uuid,
        amount: &Money,
    ) -> Result<ChargeOutcome, PaymentError>;

    /// A page where the account manages its payment methods and invoices.
    async fn portal_url(
        &self,
        account_id: AccountId,
        base_url: &str,
    ) -> Result<String, PaymentError>;
}

/// The embedded provider: checkouts and the portal are pages of this service, and charges
/// succeed at once. Never for a deployment that takes money: anyone who opens a checkout
/// link gets its credits.
#[derive(Debug, Default, Clone, Copy)]
pub struct SandboxProvider;

/// The sandbox's checkout session id for a purchase.
pub fn sandbox_session_id(purchase_id: Uuid) -> String {
    format!("cs_sandbox_{}", purchase_id.simple())
}

/// The purchase of a sandbox checkout session id.
pub fn sandbox_purchase_id(session_id: &str) -> Option<Uuid> {
    Uuid::parse_str(session_id.strip_prefix("cs_sandbox_")?).ok()
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    async fn create_checkout(&self, request: &CheckoutRequest) -> Result<Checkout, PaymentError> {
        let session_id = sandbox_session_id(request.purchase_id);
        Ok(Checkout {
            url: format!(
                "{}/sandbox/checkout/{session_id}",
                request.base_url.trim_end_matches('/')
            ),
            session_id,
        })
    }

    async fn charge(
        &self,
        _: AccountId,
        _: Uuid,
        _: &Money,
    ) -> Result<ChargeOutcome, PaymentError> {
        Ok(ChargeOutcome::Paid {
            reference: format!("ch_sandbox_{}", Uuid::new_v4().simple()),
        })
    }

    async fn portal_url(
        &self,
        account_id: AccountId,
        base_url: &str,
    ) -> Result<String, PaymentError> {
        Ok(format!(
            "{}/sandbox/portal/{}",
            base_url.trim_end_matches('/'),
            account_id
        ))
    }
}

/// A webhook event, in the provider's format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// The provider's event id: each is processed once.
    pub id: String,
    /// e.g. `checkout.session.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    /// The object concerned.
    pub data: WebhookData,
}

/// The object of a webhook event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookData {
    /// A checkout session.
    pub object: CheckoutSession,
}

/// A checkout session as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutSession {
    /// The session id.
    pub id: String,
    /// Our purchase id.
    pub client_reference_id: String,
    /// Amount paid, minor units.
    pub amount_total: i64,
    /// Lower-case currency.
    pub currency: String,
}

/// Why a webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No or malformed signature header.
    #[error("missing or malformed signature header")]
    Malformed,
    /// Signed too long ago or too far ahead.
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    /// The signature does not match.
    #[error("the signature does not match")]
    Mismatch,
}

/// Signs and verifies webhooks with a shared secret.
#[derive(Clone)]
pub struct WebhookSigner {
    secret: Vec<u8>,
}

impl std::fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSigner(<secret>)")
    }
}

impl WebhookSigner {
    /// A signer with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    fn mac(&self, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The signature header for `body` sent at `timestamp` (unix seconds).
    pub fn header(&self, timestamp: i64, body: &[u8]) -> String {
        let signature = hex::encode(self.mac(timestamp, body).finalize().into_bytes());
        format!("t={timestamp},v1={signature}")
    }

    /// Verifies a signature header against `body`, at `now` (unix seconds).
    ///
    /// The header is read before any hashing: at most [`MAX_SIGNATURE_HEADER`] bytes and
    /// [`MAX_SIGNATURES`] `v1` entries, each exactly a SHA-256 in hex, and a timestamp
    /// within the tolerance. The MAC of the body is then computed once and compared with
    /// each entry in constant time, so a forged header costs one hash of the body at most.
    pub fn verify(&self, header: &str, body: &[u8], now: i64) -> Result<(), WebhookError> {
        if header.len() > MAX_SIGNATURE_HEADER {
            return Err(WebhookError::Malformed);
        }
        let mut timestamp = None;
        let mut signatures: Vec<[u8; 32]> = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
                Some(("v1", value)) => {
                    if signatures.len() == MAX_SIGNATURES {
                        return Err(WebhookError::Malformed);
                    }
                    let mut signature = [0u8; 32];
                    hex::decode_to_slice(value, &mut signature)
                        .map_err(|_| WebhookError::Malformed)?;
                    signatures.push(signature);
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(WebhookError::Malformed)?;
        if signatures.is_empty() {
            return Err(WebhookError::Malformed);
        }
        if now.abs_diff(timestamp) > SIGNATURE_TOLERANCE.as_secs() {
            return Err(WebhookError::Stale);
        }
        let expected = self.mac(timestamp, body).finalize().into_bytes();
        // Constant-time comparison of each entry with the one MAC.
        let matches = signatures.iter().fold(false, |found, signature| {
            let difference = expected
                .iter()
                .zip(signature)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (difference == 0)
        });
        if matches {
            Ok(())
        } else {
            Err(WebhookError::Mismatch)
        }
    }
}

/// The longest signature header read (a provider sends a few signatures during a secret
/// rotation, never thousands).
pub const MAX_SIGNATURE_HEADER: usize = 1024;
/// The most `v1` signatures one header may carry.
pub const MAX_SIGNATURES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_body_verifies_within_the_tolerance_only() {
        let signer = WebhookSigner::new(b"secret".to_vec());
        let body = br#"{"id":"evt_1"}"#;
        let header = signer.header(1_000_000, body);
        assert!(header.starts_with("t=1000000,v1="));
        assert_eq!(signer.verify(&header, body, 1_000_100), Ok(()));
        assert_eq!(
            signer.verify(&header, body, 1_000_301),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            signer.verify(&header, body, 999_600),
            Err(WebhookError::Stale)
        );
        assert_eq!(
            signer.verify(&header, br#"{"id":"evt_2"}"#, 1_000_000),
            Err(WebhookError::Mismatch)
        );
        let other = WebhookSigner::new(b"other".to_vec());
        assert_eq!(
            other.verify(&header, body, 1_000_000),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            signer.verify("v1=00", body, 1_000_000),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            signer.verify("t=1000000", body, 1_000_000),
            Err(WebhookError::Malformed)
        );
    }

    #[test]
    fn a_header_stuffed_with_signatures_is_refused_before_hashing() {
        let signer = WebhookSigner::new(b"secret".to_vec());
        let body = br#"{"id":"evt_1"}"#;
        let good = signer.header(1_000_000, body);
        let empty_entries = format!("{good}{}", ",v1=".repeat(20_000));
        assert_eq!(
            signer.verify(&empty_entries, body, 1_000_000),
            Err(WebhookError::Malformed),
            "20,000 empty entries"
        );
        let one_empty = format!("{good},v1=");
        assert_eq!(
            signer.verify(&one_empty, body, 1_000_000),
            Err(WebhookError::Malformed)
        );
        let forged = format!(",v1={}", "00".repeat(32));
        let five = format!("t=1000000{}", forged.repeat(5));
        assert_eq!(
            signer.verify(&five, body, 1_000_000),
            Err(WebhookError::Malformed),
            "more than MAX_SIGNATURES"
        );
        let rotation = format!(
            "t=1000000{}{}",
            forged.repeat(3),
            &good["t=1000000".len()..]
        );
        assert_eq!(
            signer.verify(&rotation, body, 1_000_000),
            Ok(()),
            "the right one among a few"
        );
    }

    #[test]
    fn matches_an_independent_implementation() {
        // python3 -c "import hmac,hashlib;print(hmac.new(b'whsec', b'1700000000.{}', hashlib.sha256).hexdigest())"
        let header = WebhookSigner::new(b"whsec".to_vec()).header(1_700_000_000, b"{}");
        assert_eq!(
            header,
            "t=1700000000,v1=7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af"
        );
    }
}
