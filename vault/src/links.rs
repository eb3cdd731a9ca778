//! The signed tokens of one-click unsubscribe links (RFC 8058): they change a promotional
//! preference without a session, so they are HMACs only this service can make.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::AccountId;
use domain::notifications::Toggle;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Signs and verifies the tokens of one-click unsubscribe links (HMAC-SHA256 with a key
/// derived from the master key): `account.toggle.signature`.
#[derive(Clone)]
pub struct UnsubscribeLinks {
    key: [u8; 32],
}

impl UnsubscribeLinks {
    /// Links signed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn signature(&self, payload: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16])
    }

    /// The token of a one-click unsubscribe link.
    pub fn token(&self, account: AccountId, toggle: Toggle) -> String {
        let payload = format!("{}.{}", account.0.simple(), toggle.as_str());
        format!("{payload}.{}", self.signature(&payload))
    }

    /// What a link's token unsubscribes, if this service signed it for a promotion.
    pub fn verify(&self, token: &str) -> Option<(AccountId, Toggle)> {
        let (payload, signature) = token.rsplit_once('.')?;
        let expected = self.signature(payload);
        // Constant-time comparison: the signature is a secret until it matches.
        let same = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return None;
        }
        let (account, toggle) = payload.split_once('.')?;
        let toggle = Toggle::parse(toggle).filter(|t| !t.default_enabled())?;
        Some((AccountId(Uuid::parse_str(account).ok()?), toggle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsubscribe_links_are_signed_and_only_for_promotions() {
        let links = UnsubscribeLinks::new([1; 32]);
        let account = AccountId(Uuid::new_v4());
        let token = links.token(account, Toggle::Marketing);
        assert_eq!(links.verify(&token), Some((account, Toggle::Marketing)));
        let forged = token.replace("marketing", "newsletter");
        assert_eq!(links.verify(&forged), None);
        assert_eq!(UnsubscribeLinks::new([2; 32]).verify(&token), None);
        assert_eq!(links.verify("garbage"), None);
        let service = links.token(account, Toggle::CreditsLow);
        assert_eq!(
            links.verify(&service),
            None,
            "service mail is not unsubscribed by link"
        );
    }
}
