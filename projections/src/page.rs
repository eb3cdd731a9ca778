//! Pages of the lists the owner of an account reads newest first (sessions, tokens,
//! invoices): keyset pagination by a time and a tie-breaking key, so a page never skips or
//! repeats an entry whatever is added meanwhile.

use sqlx::Row;
use sqlx::any::AnyRow;

/// One page of a list: at most `limit` entries, after `after` (the last entry of the
/// previous page) or from the newest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Entries at most.
    pub limit: i64,
    /// Where the previous page ended.
    pub after: Option<After>,
}

impl Page {
    /// The first `limit` entries.
    pub fn first(limit: i64) -> Self {
        Self { limit, after: None }
    }

    /// The bounds of a query: the time and key to start after, and one entry more than the
    /// page, to tell whether another page follows. The first page starts after the end of
    /// time (no entry is that late, so the key never decides).
    pub fn bounds(&self) -> (i64, &str, i64) {
        match &self.after {
            Some(after) => (after.at, after.key.as_str(), self.limit.saturating_add(1)),
            None => (i64::MAX, "", self.limit.saturating_add(1)),
        }
    }

    /// The same bounds for a list read oldest first: the first page starts after the
    /// beginning of time.
    pub(crate) fn bounds_oldest_first(&self) -> (i64, &str, i64) {
        match &self.after {
            Some(after) => (after.at, after.key.as_str(), self.limit.saturating_add(1)),
            None => (i64::MIN, "", self.limit.saturating_add(1)),
        }
    }
}

/// The position of an entry in a list newest first: its time (µs) and a key that orders
/// entries of the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// Microseconds since the epoch.
    pub at: i64,
    /// The tie-breaker (an id, an invoice number).
    pub key: String,
}

/// Entries of one page, and where the next page starts if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    /// At most the page's limit.
    pub items: Vec<T>,
    /// The position of the last entry, when more follow.
    pub next: Option<After>,
}

impl<T> Paged<T> {
    /// Cuts `rows` (fetched with one more than `page.limit`) to the page, the position of
    /// each given by `position`.
    pub fn cut(mut rows: Vec<T>, page: &Page, position: impl Fn(&T) -> After) -> Self {
        let more = truncate(&mut rows, page);
        let next = if more {
            rows.last().map(position)
        } else {
            None
        };
        Self { items: rows, next }
    }
}

impl Paged<AnyRow> {
    /// Cuts `rows` (fetched with one more than `page.limit`) to the page, as
    /// [`Paged::cut`] does, the position of a row read from its columns `at` and `key`.
    pub(crate) fn cut_rows(
        mut rows: Vec<AnyRow>,
        page: &Page,
        at: &str,
        key: &str,
    ) -> Result<Self, sqlx::Error> {
        let more = truncate(&mut rows, page);
        let next = match rows.last().filter(|_| more) {
            Some(row) => Some(After {
                at: row.try_get(at)?,
                key: row.try_get(key)?,
            }),
            None => None,
        };
        Ok(Self { items: rows, next })
    }
}

/// Keeps the first `page.limit` of `rows`; whether more followed.
fn truncate<T>(rows: &mut Vec<T>, page: &Page) -> bool {
    let limit = usize::try_from(page.limit.max(0)).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}
