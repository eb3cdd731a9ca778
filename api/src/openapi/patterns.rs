//! The `pattern`s of the document: the server's validations (in `domain` and
//! `commands`) written as regular expressions, so a client (or a fuzzer) can tell a
//! value the server takes from one it refuses without asking. Each is exact where the
//! rule is regular; where it is not (a password must not be a common one), the pattern
//! holds every other rule. Only ECMA-262 syntax that Rust's and Python's engines read
//! alike: no look-around, no `\p{…}`.
//!
//! The server trims names and addresses (Unicode `White_Space`, which is not quite
//! ECMA's `\s`), so their patterns allow that white space around the value and say the
//! length of what is left.

/// Unicode `White_Space`: what `str::trim` removes.
use std::sync::LazyLock;

macro_rules! white_space {
    () => {
        r"[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    };
}

/// A character that is neither `White_Space` nor a control character (`Cc`): what a
/// trimmed value can start and end with.
macro_rules! visible {
    () => {
        r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    };
}

/// A display name (and a token label): 1 to 64 characters once trimmed, no control
/// characters (`domain::email::DisplayName`).
pub const DISPLAY_NAME: &str = concat!(
    "^",
    white_space!(),
    "*",
    visible!(),
    r"(?:[^\x00-\x1f\x7f-\x9f]{0,62}",
    visible!(),
    ")?",
    white_space!(),
    "*$"
);

/// A bio: at most 160 characters once trimmed (empty removes it), no control characters
/// but line feeds (`domain::profile::Bio`).
pub const BIO: &str = concat!(
    "^",
    white_space!(),
    "*(?:",
    visible!(),
    r"(?:[^\x00-\x09\x0b-\x1f\x7f-\x9f]{0,158}",
    visible!(),
    ")?)?",
    white_space!(),
    "*$"
);

/// Part of an address before the `@`: no white space, control character, `@` or dot.
macro_rules! atom {
    () => {
        r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.]"
    };
}

/// A label of the domain: ASCII letters and digits, hyphens inside, 37 at most.
macro_rules! label {
    () => {
        r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,35}[A-Za-z0-9])?"
    };
}

/// An e-mail address `domain::email::EmailAddress` accepts: before the `@` up to four
/// dot-separated parts, 64 characters at most; after it two to five labels; 254
/// characters in all. The server also takes longer dotted names and non-ASCII domains;
/// the pattern keeps to the addresses every part of the rule can be checked on.
pub const EMAIL: &str = concat!(
    "^",
    white_space!(),
    "*",
    atom!(),
    r"{1,16}(?:\.",
    atom!(),
    r"{1,15}){0,3}@",
    label!(),
    r"(?:\.",
    label!(),
    "){1,4}",
    white_space!(),
    "*$"
);

/// A password with a number and a symbol in any order, as `domain::password` counts them
/// (`char::is_numeric`; neither alphanumeric, white space nor control); its length (8 to
/// 128 characters) is `minLength`/`maxLength`. The classes are built from those same
/// predicates rather than written with `\p{…}`: the server's Unicode version is then the
/// pattern's, whatever version the client's regex engine knows.
pub static PASSWORD: LazyLock<String> = LazyLock::new(|| {
    let number = format!("[{}]", class_ranges(char::is_numeric));
    let symbol = format!(
        "[^{}]",
        class_ranges(|c| c.is_alphanumeric() || c.is_whitespace() || c.is_control())
    );
    format!(r"^(?:[\s\S]*{number}[\s\S]*{symbol}|[\s\S]*{symbol}[\s\S]*{number})[\s\S]*$")
});

/// The characters for which `holds` is true, as the ranges of a character class: those of
/// the Basic Multilingual Plane as `\uXXXX`, the others as themselves (the spellings
/// ECMA-262, Python and Rust all read).
fn class_ranges(holds: impl Fn(char) -> bool) -> String {
    let spell = |code: u32| match char::from_u32(code) {
        Some(c) if code > 0xFFFF => c.to_string(),
        _ => format!("\\u{code:04x}"),
    };
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for code in 0..=0x10FFFF_u32 {
        if !char::from_u32(code).is_some_and(&holds) {
            continue;
        }
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == code => *end = code,
            _ => ranges.push((code, code)),
        }
    }
    ranges
        .into_iter()
        .map(|(first, last)| match first == last {
            true => spell(first),
            false => format!("{}-{}", spell(first), spell(last)),
        })
        .collect()
}

/// A generation id: 1 to 128 of `A-Z a-z 0-9 - _ . :` (`commands::credits::check_generation_id`).
pub const GENERATION_ID: &str = r"^[A-Za-z0-9._:-]{1,128}$";

/// A cursor of the credit history as the API gives it (`<position>-<index>`), or empty
/// for the first page.
pub const CURSOR: &str = r"^(?:[0-9]{1,19}-[0-9]{1,19})?$";

/// A cursor of a list read newest first (sessions, tokens, invoices) as the API gives it
/// (`<microseconds>-<key>`), or empty for the first page.
pub const PAGE_CURSOR: &str = r"^(?:[0-9]{1,19}-[0-9A-Za-z-]{1,64})?$";

/// A cursor of the consent history (how many entries came before), or empty for the first
/// page.
pub const HISTORY_CURSOR: &str = r"^[0-9]{0,19}$";

/// A workspace's name: 1 to 80 characters once trimmed, no control characters
/// (`domain::workspace`).
pub const WORKSPACE_NAME: &str = concat!(
    "^",
    white_space!(),
    "*",
    visible!(),
    r"(?:[^\x00-\x1f\x7f-\x9f]{0,78}",
    visible!(),
    ")?",
    white_space!(),
    "*$"
);

/// The token of an invitation link (`vault::InvitationLinks`): `inv_` and 64 bytes in
/// base64url.
pub const INVITATION_TOKEN: &str = r"^inv_[A-Za-z0-9_-]{86}$";

/// The token of an e-mail verification link (`vault::AccountLinks`): `ver_` and 52
/// bytes in base64url.
pub const VERIFICATION_TOKEN: &str = r"^ver_[A-Za-z0-9_-]{70}$";

/// The token of a password reset link (`vault::AccountLinks`): `pwr_` and 52 bytes in
/// base64url.
pub const PASSWORD_RESET_TOKEN: &str = r"^pwr_[A-Za-z0-9_-]{70}$";

/// The token of a change-of-address link (`vault::AccountLinks`): `emc_` and 52 bytes in
/// base64url.
pub const EMAIL_CHANGE_TOKEN: &str = r"^emc_[A-Za-z0-9_-]{70}$";

/// Schemas of strings with these patterns, for `#[schema(schema_with = …)]`: attributes
/// take only literals, and each pattern is written once, above.
pub mod schemas {
    use std::borrow::Cow;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};

    fn string(pattern: &str, description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .description(Some(description))
    }

    fn nullable(builder: ObjectBuilder) -> Object {
        builder
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .build()
    }

    const EMAIL: &str = "Unique, case-insensitively. One `@`; before it up to 64 characters, no \
        white space, no dot first, last or doubled; after it a domain of letters, digits and \
        inner hyphens with at least one dot; 254 characters in all (white space around it is \
        trimmed).";
    const PASSWORD: &str = "8 to 128 characters (not bytes) with a number and a symbol; not one \
        of the 10,000 most common passwords, with or without symbols around it.";
    const DISPLAY_NAME: &str = "1 to 64 characters once trimmed, no control characters.";
    const BIO: &str = "Up to 160 characters once trimmed, no control characters but line feeds; empty removes it.";
    const LABEL: &str = "1 to 64 characters once trimmed, no control characters.";

    /// A new account's e-mail address.
    pub fn email() -> Object {
        string(super::EMAIL, EMAIL)
            .examples(["ada@example.com"])
            .build()
    }

    /// A new password, as a component of its own (`#[schema(value_type = NewPassword)]`):
    /// its pattern spells out every number and every character that is not a symbol, so it
    /// is written once in the document.
    #[derive(Debug)]
    pub struct NewPassword;

    impl utoipa::PartialSchema for NewPassword {
        fn schema() -> RefOr<Schema> {
            password().into()
        }
    }

    impl utoipa::ToSchema for NewPassword {
        fn name() -> Cow<'static, str> {
            "NewPassword".into()
        }
    }

    /// A new password.
    pub fn password() -> Object {
        string(&super::PASSWORD, PASSWORD)
            .min_length(Some(8))
            .max_length(Some(128))
            .build()
    }

    /// A display name.
    pub fn display_name() -> Object {
        string(super::DISPLAY_NAME, DISPLAY_NAME)
            .examples(["Ada Lovelace"])
            .build()
    }

    /// A display name to change to, or `null` to keep it.
    pub fn display_name_or_null() -> Object {
        nullable(string(super::DISPLAY_NAME, DISPLAY_NAME))
    }

    /// A bio to change to, or `null` to keep it.
    pub fn bio_or_null() -> Object {
        nullable(string(super::BIO, BIO))
    }

    /// A token's label.
    pub fn label() -> Object {
        string(super::DISPLAY_NAME, LABEL)
            .examples(["CI pipeline"])
            .build()
    }

    /// A cursor of the credit history.
    pub fn cursor() -> Object {
        string(
            super::CURSOR,
            "`next_cursor` of the previous page; absent or empty for the first page.",
        )
        .build()
    }

    /// A cursor of a list read newest first.
    pub fn page_cursor() -> Object {
        string(
            super::PAGE_CURSOR,
            "`next_cursor` of the previous page; absent or empty for the first page.",
        )
        .build()
    }

    /// A cursor of the consent history.
    pub fn history_cursor() -> Object {
        string(
            super::HISTORY_CURSOR,
            "The `Next-Cursor` header of the previous page; absent or empty for the first page.",
        )
        .build()
    }

    /// A cursor of a list paged by log position (the audit routes, the security log).
    pub fn position_cursor() -> Object {
        string(
            super::HISTORY_CURSOR,
            "`next_cursor` of the previous page (a log position); absent or empty for the first page.",
        )
        .build()
    }

    /// A workspace's name.
    pub fn workspace_name() -> Object {
        string(
            super::WORKSPACE_NAME,
            "1 to 80 characters once trimmed, no control characters.",
        )
        .examples(["Northwind Studio"])
        .build()
    }

    /// The token of an invitation link.
    pub fn invitation_token() -> Object {
        string(
            super::INVITATION_TOKEN,
            "The token of the invitation link (`inv_…`), from the e-mail.",
        )
        .build()
    }

    /// The token of an e-mail verification link.
    pub fn verification_token() -> Object {
        string(
            super::VERIFICATION_TOKEN,
            "The token of the verification link (`ver_…`), from the e-mail.",
        )
        .build()
    }

    /// The token of a change-of-address link.
    pub fn email_change_token() -> Object {
        string(
            super::EMAIL_CHANGE_TOKEN,
            "The token of the link e-mailed to the new address (`emc_…`).",
        )
        .build()
    }

    /// The token of a password reset link.
    pub fn password_reset_token() -> Object {
        string(
            super::PASSWORD_RESET_TOKEN,
            "The token of the password reset link (`pwr_…`), from the e-mail.",
        )
        .build()
    }

    /// A client's generation id.
    pub fn generation_id() -> Object {
        string(
            super::GENERATION_ID,
            "The client's id for the generation: 1 to 128 of `A-Z a-z 0-9 - _ . :`; retries reuse it.",
        )
        .examples(["gen-2026-001"])
        .build()
    }
}

#[cfg(test)]
#[path = "patterns_tests.rs"]
mod tests;
