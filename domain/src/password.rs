//! The password policy the product documents: 8 to 128 characters, at least one number
//! and one symbol, and not one of the most common passwords.

use std::collections::HashSet;
use std::sync::LazyLock;

/// The 10,000 most common passwords, lower-cased, one per line. Derived from the
/// password frequency list shipped with zxcvbn (MIT licence).
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().filter(|l| !l.is_empty()).collect());

/// Fewest characters accepted.
pub const MIN_CHARS: usize = 8;
/// Most characters accepted. Longer passwords are refused, never truncated.
pub const MAX_CHARS: usize = 128;

/// One reason a password does not meet the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Fewer than [`MIN_CHARS`] characters.
    TooShort,
    /// More than [`MAX_CHARS`] characters.
    TooLong,
    /// No digit.
    MissingNumber,
    /// No symbol (a character that is neither a letter, a digit nor a space).
    MissingSymbol,
    /// One of the most common passwords, possibly with symbols around it.
    TooCommon,
}

impl PasswordProblem {
    /// A sentence a user can act on.
    pub fn message(self) -> &'static str {
        match self {
            Self::TooShort => "must be at least 8 characters long",
            Self::TooLong => "must be at most 128 characters long",
            Self::MissingNumber => "must contain at least one number",
            Self::MissingSymbol => "must contain at least one symbol",
            Self::TooCommon => "is too common; choose a less predictable password",
        }
    }
}

/// Checks a password against the policy and returns every problem found.
pub fn check(password: &str) -> Result<(), Vec<PasswordProblem>> {
    let chars = password.chars().count();
    let mut problems = Vec::new();
    if chars < MIN_CHARS {
        problems.push(PasswordProblem::TooShort);
    }
    if chars > MAX_CHARS {
        problems.push(PasswordProblem::TooLong);
    }
    if !password.chars().any(|c| c.is_numeric()) {
        problems.push(PasswordProblem::MissingNumber);
    }
    if !password.chars().any(is_symbol) {
        problems.push(PasswordProblem::MissingSymbol);
    }
    if is_common(password) {
        problems.push(PasswordProblem::TooCommon);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn is_symbol(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

/// A common password stays common with a symbol bolted on either end
/// (`password1!`, `!qwerty123`), so those variants are refused too.
fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    let trimmed = lower.trim_matches(|c: char| !c.is_alphanumeric());
    COMMON.contains(lower.as_str()) || COMMON.contains(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ships_thousands_of_common_passwords() {
        assert!(
            COMMON.len() >= 5_000,
            "only {} common passwords",
            COMMON.len()
        );
        assert!(COMMON.contains("password"));
    }

    #[test]
    fn accepts_a_decent_password() {
        assert_eq!(check("correct-horse-7-battery"), Ok(()));
    }

    #[test]
    fn reports_every_problem() {
        assert_eq!(
            check("qwerty"),
            Err(vec![
                PasswordProblem::TooShort,
                PasswordProblem::MissingNumber,
                PasswordProblem::MissingSymbol,
                PasswordProblem::TooCommon
            ])
        );
        assert_eq!(
            check("abcdefgh1"),
            Err(vec![PasswordProblem::MissingSymbol])
        );
        assert_eq!(
            check("abcdefgh!"),
            Err(vec![PasswordProblem::MissingNumber])
        );
    }

    #[test]
    fn refuses_common_passwords_dressed_up_with_symbols() {
        assert_eq!(check("password1!"), Err(vec![PasswordProblem::TooCommon]));
        assert_eq!(check("#Qwerty123"), Err(vec![PasswordProblem::TooCommon]));
    }

    #[test]
    fn counts_characters_not_bytes_and_never_truncates() {
        // 8 characters, 16 bytes.
        assert_eq!(check("ééééé1!é"), Ok(()));
        let long = format!("{}1!", "x".repeat(127));
        assert_eq!(check(&long), Err(vec![PasswordProblem::TooLong]));
        let max = format!("{}1!", "x".repeat(126));
        assert_eq!(check(&max), Ok(()));
    }
}
