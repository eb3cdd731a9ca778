//! `limit` and `cursor` of the lists an account reads page by page, as
//! `GET /me/credits/transactions` takes them: 1 to 100 entries (50 by default), and the
//! previous page's `next_cursor` (absent or empty for the first page). A malformed value is
//! 422 `validation_failed` naming the field; the document states the same bounds.

use crate::error::ApiError;
use crate::openapi::patterns;
use projections::{After, Page};
use serde::Deserialize;

/// Entries per page when `limit` is absent.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most entries a page may hold.
pub const MAX_LIMIT: i64 = 100;

/// A page of a list read newest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Entries per page, 1 to 100 (50 by default).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page; absent or empty for the first page.
    #[param(schema_with = patterns::schemas::page_cursor)]
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page asked for, or why it may not be.
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = checked_limit(self.limit)?;
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(text) => Some(
                parse_cursor(text)
                    .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))?,
            ),
            None => None,
        };
        Ok(Page { limit, after })
    }
}

/// A page of the consent history, oldest first.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryPageQuery {
    /// Entries per page, 1 to 100 (50 by default).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// The `Next-Cursor` header of the previous page; absent or empty for the first page.
    #[param(schema_with = patterns::schemas::history_cursor)]
    pub cursor: Option<String>,
}

impl HistoryPageQuery {
    /// How many entries to skip, and how many to return.
    pub fn page(&self) -> Result<(u64, usize), ApiError> {
        let (skip, limit) = self.after()?;
        Ok((skip.unwrap_or(0), limit))
    }

    /// The number the cursor holds (none on the first page), and how many entries to
    /// return: for a list whose cursor is the position of the previous page's last entry.
    pub fn after(&self) -> Result<(Option<u64>, usize), ApiError> {
        let limit = checked_limit(self.limit)?;
        let after = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(text) => Some(
                digits(text)
                    .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))?,
            ),
            None => None,
        };
        Ok((after, usize::try_from(limit).unwrap_or(usize::MAX)))
    }
}

fn checked_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ))
    }
}

/// 1 to 19 ASCII digits, as a number.
fn digits(text: &str) -> Option<u64> {
    (!text.is_empty() && text.len() <= 19 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// A cursor as [`next_cursor`] writes it (`patterns::PAGE_CURSOR`): a time in µs (1 to 19
/// digits; past the largest time, the end of time) and a key of 1 to 64 letters, digits
/// and hyphens.
pub fn parse_cursor(text: &str) -> Option<After> {
    let (at, key) = text.split_once('-')?;
    let at = i64::try_from(digits(at)?).unwrap_or(i64::MAX);
    let key_ok = (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    key_ok.then(|| After {
        at,
        key: key.to_owned(),
    })
}

/// The cursor of the page after `next`, if there is one.
pub fn next_cursor(next: Option<After>) -> Option<String> {
    next.map(|after| format!("{}-{}", after.at.max(0), after.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn cursors_are_what_the_lists_parse() {
        let page = Regex::new(patterns::PAGE_CURSOR).unwrap();
        let history = Regex::new(patterns::HISTORY_CURSOR).unwrap();
        let uuid = "0b5f3c2e-6f0a-4d55-9a3e-1c2d3e4f5a6b";
        for text in [
            "0-a".to_owned(),
            format!("1790000000000000-{uuid}"),
            "1790000000000000-2026-000001".into(),
            format!("{}-{}", "9".repeat(19), "z".repeat(64)),
            "5--".into(),
            "-".into(),
            "1-".into(),
            "x-1".into(),
            format!("{}-a", "1".repeat(20)),
            format!("1-{}", "a".repeat(65)),
            "1-a_b".into(),
            "1-é".into(),
            "12".into(),
        ] {
            assert_eq!(
                page.is_match(&text),
                parse_cursor(&text).is_some(),
                "{text:?}"
            );
        }
        for text in [
            "0",
            "42",
            &"9".repeat(19),
            &"9".repeat(20),
            "-1",
            "1a",
            " 1",
        ] {
            assert_eq!(history.is_match(text), digits(text).is_some(), "{text:?}");
        }
        assert!(history.is_match(""), "empty: the first page");
    }

    #[test]
    fn a_cursor_reads_back_what_was_written() {
        let after = After {
            at: 1_790_000_000_000_000,
            key: "2026-000001".into(),
        };
        let text = next_cursor(Some(after.clone())).unwrap();
        assert_eq!(parse_cursor(&text), Some(after));
        assert_eq!(next_cursor(None), None);
    }

    #[test]
    fn limits_out_of_bounds_are_refused() {
        for limit in [0, -1, 101] {
            let query = PageQuery {
                limit: Some(limit),
                cursor: None,
            };
            assert!(query.page().is_err(), "{limit}");
        }
        let query = PageQuery::default();
        assert_eq!(query.page().unwrap(), Page::first(DEFAULT_LIMIT));
    }
}
