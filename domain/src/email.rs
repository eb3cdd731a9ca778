//! E-mail addresses and display names as validated value types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an e-mail address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

/// A syntactically valid e-mail address, as the user typed it (trimmed).
///
/// Uniqueness is case-insensitive: [`EmailAddress::canonical`] is the form that is
/// reserved and looked up.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Longest address accepted (RFC 5321 path limit).
    pub const MAX_LEN: usize = 254;

    /// Validates an address: one `@`, a local part of 1-64 characters, a domain with at
    /// least one dot made of letters, digits and hyphens, no spaces or control characters.
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        let address = input.trim();
        if address.is_empty() {
            return Err(InvalidEmail("the e-mail address is empty"));
        }
        if address.chars().count() > Self::MAX_LEN {
            return Err(InvalidEmail(
                "the e-mail address is longer than 254 characters",
            ));
        }
        if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail(
                "the e-mail address contains spaces or control characters",
            ));
        }
        let Some((local, domain)) = address.split_once('@') else {
            return Err(InvalidEmail("the e-mail address has no @"));
        };
        if domain.contains('@') {
            return Err(InvalidEmail("the e-mail address has more than one @"));
        }
        if local.is_empty() || local.chars().count() > 64 {
            return Err(InvalidEmail(
                "the part before the @ must be 1 to 64 characters",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InvalidEmail("the part before the @ has misplaced dots"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(InvalidEmail(
                "the domain of the e-mail address is not valid",
            ));
        }
        Ok(Self(address.to_owned()))
    }

    /// The address as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form used for uniqueness and look-ups.
    pub fn canonical(&self) -> String {
        self.0.to_lowercase()
    }

    /// The address with its local part hidden but for its first character
    /// (`a***@example.com`): enough for its owner to recognise it, in a message that may
    /// reach someone else (a notice to an address the account left).
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

impl fmt::Debug for EmailAddress {
    // Personal data: keep it out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDisplayName(&'static str);

/// A display name: 1 to 64 user-visible characters after trimming, no control characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Most characters allowed.
    pub const MAX_CHARS: usize = 64;

    /// Validates a display name.
    pub fn parse(input: &str) -> Result<Self, InvalidDisplayName> {
        let name = input.trim();
        if name.is_empty() {
            return Err(InvalidDisplayName("the display name is empty"));
        }
        if name.chars().count() > Self::MAX_CHARS {
            return Err(InvalidDisplayName(
                "the display name is longer than 64 characters",
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidDisplayName(
                "the display name contains control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DisplayName(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_folds_case() {
        let email = EmailAddress::parse("  Ada.Lovelace+films@Example.CO.uk ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace+films@Example.CO.uk");
        assert_eq!(email.canonical(), "ada.lovelace+films@example.co.uk");
    }

    #[test]
    fn a_masked_address_keeps_its_first_letter_and_domain() {
        let email = EmailAddress::parse("Ada.Lovelace@Example.CO.uk").unwrap();
        assert_eq!(email.masked(), "A***@Example.CO.uk");
        let short = EmailAddress::parse("é@example.com").unwrap();
        assert_eq!(short.masked(), "é***@example.com");
    }

    #[test]
    fn refuses_malformed_addresses() {
        for bad in [
            "",
            "plainaddress",
            "@example.com",
            "a@b",
            "a@@example.com",
            "a b@example.com",
            "a@exa mple.com",
            "a@-example.com",
            ".a@example.com",
            "a..b@example.com",
            "a@example..com",
        ] {
            assert!(
                EmailAddress::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn display_names_count_characters_not_bytes() {
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("bad\u{7}name").is_err());
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
    }

    #[test]
    fn debug_output_hides_personal_data() {
        let email = EmailAddress::parse("secret@example.com").unwrap();
        assert!(!format!("{email:?}").contains("secret"));
    }
}
