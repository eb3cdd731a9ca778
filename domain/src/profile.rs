//! Profile value types.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a bio was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidBio(&'static str);

/// A public bio: at most 160 user-visible characters (not bytes), no control characters
/// but line breaks. Empty means none.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Bio(String);

impl Bio {
    /// Most characters allowed.
    pub const MAX_CHARS: usize = 160;

    /// Validates a bio (trimmed).
    pub fn parse(input: &str) -> Result<Self, InvalidBio> {
        let bio = input.trim();
        if bio.chars().count() > Self::MAX_CHARS {
            return Err(InvalidBio("the bio is longer than 160 characters"));
        }
        if bio.chars().any(|c| c.is_control() && c != '\n') {
            return Err(InvalidBio("the bio contains control characters"));
        }
        Ok(Self(bio.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Bio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bio(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_user_visible_characters() {
        assert!(Bio::parse(&"🎬".repeat(160)).is_ok());
        assert!(Bio::parse(&"🎬".repeat(161)).is_err());
        assert!(Bio::parse("line one\nline two").is_ok());
        assert!(Bio::parse("bell\u{7}").is_err());
        assert_eq!(Bio::parse("  hi ").unwrap().as_str(), "hi");
    }
}
