//! Numbered placeholders (`$1, $2, …`) for statements whose size depends on their input,
//! written once for every crate that builds one (SQLite and PostgreSQL both read `$n`), and
//! their rewriting as SQLite's anonymous `?` ([`anonymous`]).

use sqlx::AnyConnection;
use std::borrow::Cow;

/// `sql` as `conn` binds it fastest: on SQLite with anonymous placeholders
/// ([`anonymous`]), on PostgreSQL as it is.
pub fn for_connection(conn: &AnyConnection, sql: String) -> String {
    if conn.backend_name() == "SQLite" {
        anonymous(&sql).into_owned()
    } else {
        sql
    }
}

/// `$from, $from+1, …`: `count` numbered placeholders.
pub fn numbered(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, $2), ($3, $4)`: `rows` groups of `width` numbered placeholders, for a multi-row
/// `VALUES` list.
pub fn placeholders(rows: usize, width: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..width {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * width + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `sql` with its numbered placeholders written as anonymous ones (`?`), when each of
/// `$1`, `$2`, … appears once and in that order outside quoted text, so that binding the
/// values in order binds the same ones; otherwise (or if `sql` has a `?` already) `sql` as
/// it is.
///
/// For SQLite, `$1` is a parameter's name: it keeps a statement's names in a list that it
/// scans from the start to find each one, and sqlx asks it for the name of every parameter
/// it binds, so binding a statement of `n` named parameters costs `n²` steps (a 256-value
/// statement, about a quarter of the SQLite thread's time in the credit ledger's rebuild).
/// Anonymous parameters have no names to look for.
pub fn anonymous(sql: &str) -> Cow<'_, str> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut next = 1u64;
    let mut quoted = false;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => quoted = !quoted,
            b'?' if !quoted => return Cow::Borrowed(sql),
            b'$' if !quoted && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if sql[i + 1..i + 1 + digits].parse::<u64>() != Ok(next) {
                    return Cow::Borrowed(sql);
                }
                next += 1;
                out.push_str(&sql[copied..i]);
                out.push('?');
                i += 1 + digits;
                copied = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{anonymous, numbered, placeholders};

    #[test]
    fn numbered_placeholders_in_order_become_anonymous() {
        assert_eq!(
            anonymous("INSERT INTO t VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"),
            "INSERT INTO t VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            anonymous("SELECT a FROM t WHERE k IN ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
            "SELECT a FROM t WHERE k IN (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        // Quoted text is left as it is.
        assert_eq!(
            anonymous("SELECT json_extract(d, '$.a'), '$1' FROM t WHERE k = $1"),
            "SELECT json_extract(d, '$.a'), '$1' FROM t WHERE k = ?"
        );
    }

    #[test]
    fn placeholders_out_of_order_or_repeated_stay_numbered() {
        for sql in [
            "SELECT a FROM t WHERE k = $2 AND j = $1",
            "SELECT a FROM t WHERE k = $1 OR j = $1",
            "SELECT a FROM t WHERE k = $1 AND j = $3",
            "SELECT a FROM t WHERE k = $1 AND j = ?",
            "SELECT a FROM t",
        ] {
            assert_eq!(anonymous(sql), sql);
        }
    }

    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(placeholders(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(1, 3), "($1, $2, $3)");
        assert_eq!(numbered(3, 2), "$3, $4");
        assert_eq!(numbered(1, 0), "");
    }
}
