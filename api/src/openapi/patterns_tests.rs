//! Each pattern against the validation it describes, on strings drawn from characters
//! where the two could disagree (white space of every kind, control characters, marks,
//! numbers that are not digits, symbols, letters that are symbols to the eye).

use super::*;
use domain::email::{DisplayName, EmailAddress};
use domain::profile::Bio;
use regex::Regex;

const ALPHABET: &[char] = &[
    'a',
    'Z',
    'é',
    'ß',
    'ж',
    '中',
    '0',
    '7',
    '½',
    'Ⅻ',
    '٣',
    '!',
    '-',
    '.',
    '@',
    '_',
    ':',
    '+',
    '#',
    '€',
    '🎬',
    '\u{301}',
    '\u{345}',
    'Ⓐ',
    '\u{1F130}',
    '\u{88F}',
    '\u{E000}',
    '\u{10FFFD}',
    '\u{E01EF}',
    ' ',
    '\t',
    '\n',
    '\r',
    '\u{b}',
    '\u{85}',
    '\u{a0}',
    '\u{2003}',
    '\u{2028}',
    '\u{3000}',
    '\u{feff}',
    '\u{180e}',
    '\u{0}',
    '\u{1f}',
    '\u{7f}',
    '\u{9f}',
    '\u{200b}',
];

/// A deterministic stream of strings (xorshift), short and long.
fn strings(seed: u64, count: usize, max_len: usize) -> Vec<String> {
    let mut state = seed;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() % (max_len as u64 + 1)) as usize;
            (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect()
        })
        .collect()
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("the pattern compiles")
}

/// The pattern and `accepts` agree on every string drawn, and on `also`.
fn agree(pattern: &str, accepts: impl Fn(&str) -> bool, max_len: usize, also: &[&str]) {
    let re = regex(pattern);
    let drawn = strings(0x9e37_79b9_7f4a_7c15, 20_000, max_len);
    for s in drawn.iter().map(String::as_str).chain(also.iter().copied()) {
        assert_eq!(re.is_match(s), accepts(s), "{s:?}");
    }
}

#[test]
fn display_names_match_exactly_what_the_server_takes() {
    let names = [
        "Ada",
        "  Ada Lovelace \u{3000}",
        &"x".repeat(64),
        &format!(" {} ", "x".repeat(64)),
        &"x".repeat(65),
        "a\tb",
        "\u{85}a\u{85}",
        "",
        "   ",
    ];
    agree(DISPLAY_NAME, |s| DisplayName::parse(s).is_ok(), 80, &names);
}

#[test]
fn bios_match_exactly_what_the_server_takes() {
    let bios = [
        "",
        "  ",
        "line one\nline two",
        &"🎬".repeat(160),
        &"🎬".repeat(161),
        "bell\u{7}",
    ];
    agree(BIO, |s| Bio::parse(s).is_ok(), 200, &bios);
}

#[test]
fn generation_ids_match_exactly_what_the_server_takes() {
    let ids = ["gen-1", "a:b.c_d-e", "", &"a".repeat(128), &"a".repeat(129)];
    agree(
        GENERATION_ID,
        |s| commands::credits::check_generation_id(s).is_ok(),
        140,
        &ids,
    );
}

#[test]
fn every_address_the_pattern_admits_is_accepted() {
    let re = regex(EMAIL);
    for good in [
        "ada@example.com",
        " ada.lovelace@mail.example.co.uk ",
        "élodie+tag@example.fr",
    ] {
        assert!(re.is_match(good), "{good}");
        assert!(EmailAddress::parse(good).is_ok(), "{good}");
    }
    for bad in [
        "ada@localhost",
        "a..b@example.com",
        ".a@example.com",
        "a b@example.com",
    ] {
        assert!(!re.is_match(bad), "{bad}");
    }
    let longest = format!(
        "{}@{}",
        [
            "x".repeat(16),
            "y".repeat(15),
            "y".repeat(15),
            "y".repeat(15)
        ]
        .join("."),
        vec!["d".repeat(37); 5].join(".")
    );
    assert_eq!(longest.chars().count(), 254);
    assert!(re.is_match(&longest) && EmailAddress::parse(&longest).is_ok());
    for s in strings(7, 50_000, 40) {
        let s = format!("{s}@example.com");
        if re.is_match(&s) {
            assert!(EmailAddress::parse(&s).is_ok(), "{s:?}");
        }
    }
}

#[test]
fn passwords_match_the_policy_but_for_common_ones() {
    let re = regex(&PASSWORD);
    let within = |s: &str| (8..=128).contains(&s.chars().count());
    let mut admitted = 0;
    for s in strings(11, 50_000, 140).into_iter().filter(|s| within(s)) {
        let policy = domain::password::check(&s);
        let common_only =
            matches!(&policy, Err(p) if p == &[domain::password::PasswordProblem::TooCommon]);
        assert_eq!(re.is_match(&s), policy.is_ok() || common_only, "{s:?}");
        admitted += usize::from(re.is_match(&s));
    }
    assert!(
        admitted > 1000,
        "only {admitted} drawn passwords were admitted"
    );
    assert!(re.is_match("correct-horse-7-battery"));
    // Symbols to the eye that the policy counts as letters, numbers that are not digits,
    // marks and unassigned code points that it counts as symbols.
    for (password, ok) in [
        ("abcdefghⒶ1", false),
        ("abcdefgh\u{1F130}1", false),
        ("abcdefgh½!", true),
        ("abc\u{301}defg1", true),
        ("abcdefgh\u{E000}1", true),
        ("abcdefgh\u{10FFFD}1", true),
    ] {
        assert_eq!(re.is_match(password), ok, "{password:?}");
        assert_eq!(
            domain::password::check(password).is_ok(),
            ok,
            "{password:?}"
        );
    }
}

#[test]
fn cursors_are_what_the_history_parses() {
    let re = regex(CURSOR);
    for good in ["", "0-0", "123-4", &format!("{0}-{0}", "9".repeat(19))] {
        assert!(re.is_match(good), "{good}");
    }
    for bad in ["-", "1-", "+1-2", "1-2-3", &format!("{}-1", "1".repeat(20))] {
        assert!(!re.is_match(bad), "{bad}");
    }
}
