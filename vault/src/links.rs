//! The signed tokens of one-click unsubscribe links (RFC 8058): they change a promotional
//! preference without a session, so they are HMACs only this service can make.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::AccountId;
use domain::notifications::Toggle;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// The bytes of the HMAC a token keeps.
const SIGNATURE_BYTES: usize = 16;

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

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    fn signature(&self, payload: &str) -> String {
        URL_SAFE_NO_PAD.encode(&self.mac(payload).finalize().into_bytes()[..SIGNATURE_BYTES])
    }

    /// The token of a one-click unsubscribe link.
    pub fn token(&self, account: AccountId, toggle: Toggle) -> String {
        let payload = format!("{}.{}", account.0.simple(), toggle.as_str());
        format!("{payload}.{}", self.signature(&payload))
    }

    /// What a link's token unsubscribes, if this service signed it for a promotion.
    pub fn verify(&self, token: &str) -> Option<(AccountId, Toggle)> {
        let (payload, signature) = token.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // The whole truncated signature, compared in constant time (by `hmac`): a shorter
        // one would be a weaker check.
        if signature.len() != SIGNATURE_BYTES {
            return None;
        }
        self.mac(payload).verify_truncated_left(&signature).ok()?;
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
        // A signature cut short proves less: refused, even where it matches.
        let (payload, signature) = token.rsplit_once('.').unwrap();
        let short = URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(signature).unwrap()[..8]);
        assert_eq!(links.verify(&format!("{payload}.{short}")), None);
        let service = links.token(account, Toggle::CreditsLow);
        assert_eq!(
            links.verify(&service),
            None,
            "service mail is not unsubscribed by link"
        );
    }
}
