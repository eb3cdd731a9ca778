//! Set-based writes for projectors that fold a whole batch of events in memory: rows
//! written with one multi-row statement (in chunks under the databases' limits on bound
//! parameters) and rows looked up with one `IN` list, instead of a round trip per event.
//! Written once for SQLite and PostgreSQL, like every statement of the read models.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;
pub use store::sql::{numbered, placeholders};

/// Bound parameters per statement: under SQLite's limit (32,766) and PostgreSQL's (65,535).
const MAX_PARAMETERS: usize = 30_000;

/// Most rows (or keys looked up) per statement.
const ROWS_PER_STATEMENT: usize = 512;

/// Bound parameters per statement on SQLite. sqlx asks SQLite for the name of each
/// parameter it binds, which SQLite finds by a linear scan of the statement's names, so
/// binding a statement costs the square of its parameter count: with 512-row statements the
/// credit ledger rebuilt at 8,600 events/s on SQLite, with at most 256 parameters at 38,800
/// (64 to 1,024 measured; `cargo bench -p projections --bench rebuild`, README).
const SQLITE_MAX_PARAMETERS: usize = 256;

/// The most parameters a statement on `conn` binds.
fn max_parameters(conn: &AnyConnection) -> usize {
    if conn.backend_name() == "SQLite" {
        SQLITE_MAX_PARAMETERS
    } else {
        MAX_PARAMETERS
    }
}

/// One bound value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// A text.
    Text(String),
    /// A text or NULL.
    OptText(Option<String>),
}

fn bind<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    value: &'q Value,
) -> Query<'q, Any, AnyArguments<'q>> {
    match value {
        Value::Int(v) => query.bind(*v),
        Value::OptInt(v) => query.bind(*v),
        Value::Text(v) => query.bind(v.as_str()),
        Value::OptText(v) => query.bind(v.as_deref()),
    }
}

/// `rows` (each `width` bound values) in chunks as large as the statements allow, the rest
/// in chunks of decreasing powers of two: every statement has one of a few sizes, so each
/// connection keeps a few prepared statements per table and reuses them, instead of one for
/// every size a batch's last chunk can have (which filled the caches: 80 MiB more after
/// catching up on a million events) or preparing the last chunk's statement again for every
/// batch. The statements run on `conn`: on SQLite a chunk binds at most
/// `SQLITE_MAX_PARAMETERS` values.
pub fn chunks<'r, T>(
    conn: &AnyConnection,
    rows: &'r [T],
    width: usize,
) -> impl Iterator<Item = &'r [T]> + use<'r, T> {
    chunks_of_at_most(rows, width, max_parameters(conn))
}

/// [`chunks`] of at most `parameters` bound values each (at least one row).
fn chunks_of_at_most<T>(rows: &[T], width: usize, parameters: usize) -> impl Iterator<Item = &[T]> {
    let full = (parameters / width).clamp(1, ROWS_PER_STATEMENT);
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= full {
            full
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// Runs `{head} VALUES (...), (...) {tail}` for every row of `rows` (each `width` values),
/// e.g. a multi-row `INSERT ... ON CONFLICT ...`.
///
/// # Panics
/// If a row does not have `width` values: a programming error.
pub async fn insert_rows(
    conn: &mut AnyConnection,
    head: &str,
    tail: &str,
    width: usize,
    rows: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    for chunk in chunks(conn, rows, width) {
        let sql = format!("{head} VALUES {} {tail}", placeholders(chunk.len(), width));
        let mut query = sqlx::query(&sql);
        for row in chunk {
            assert_eq!(row.len(), width, "a row of {head} has the wrong width");
            for value in row {
                query = bind(query, value);
            }
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One-column keys for [`select_keys`] and [`delete_keys`]: each id as text.
pub fn text_keys<T: ToString>(ids: impl IntoIterator<Item = T>) -> Vec<Vec<Value>> {
    ids.into_iter()
        .map(|id| vec![Value::Text(id.to_string())])
        .collect()
}

/// `columns` equal to one of `keys` keys, numbered from `$1`: an `IN` list for one
/// column, an `OR` of `AND`s for more (both databases answer either from the index).
fn key_condition(columns: &[&str], keys: usize) -> String {
    let width = columns.len();
    if width == 1 {
        return format!("{} IN ({})", columns[0], numbered(1, keys));
    }
    let terms: Vec<String> = (0..keys)
        .map(|k| {
            let equal: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(c, column)| format!("{column} = ${}", k * width + c + 1))
                .collect();
            format!("({})", equal.join(" AND "))
        })
        .collect();
    terms.join(" OR ")
}

/// The rows of `select` (a statement ending in `WHERE`) that match one of `keys`, each
/// key being `columns.len()` values compared for equality with `columns`.
pub async fn select_keys(
    conn: &mut AnyConnection,
    select: &str,
    columns: &[&str],
    keys: &[Vec<Value>],
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut found = Vec::new();
    for chunk in chunks(conn, keys, columns.len()) {
        let sql = format!("{select} {}", key_condition(columns, chunk.len()));
        let mut query = sqlx::query(&sql);
        for value in chunk.iter().flatten() {
            query = bind(query, value);
        }
        found.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(found)
}

/// Deletes the rows of `table` matching one of `keys` (as in [`select_keys`]).
pub async fn delete_keys(
    conn: &mut AnyConnection,
    table: &str,
    columns: &[&str],
    keys: &[Vec<Value>],
) -> Result<(), sqlx::Error> {
    for chunk in chunks(conn, keys, columns.len()) {
        let sql = format!(
            "DELETE FROM {table} WHERE {}",
            key_condition(columns, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for value in chunk.iter().flatten() {
            query = bind(query, value);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `UPDATE {table} SET {column} = CASE {key} WHEN $1 THEN $2 … END WHERE {key} IN (…)`
/// for `pairs` pairs, with `RETURNING {returning}` unless that is empty.
fn update_by_key_sql(
    table: &str,
    column: &str,
    key: &str,
    pairs: usize,
    returning: &str,
) -> String {
    let mut sql = format!("UPDATE {table} SET {column} = CASE {key}");
    for n in 0..pairs {
        sql.push_str(&format!(" WHEN ${} THEN ${}", 2 * n + 1, 2 * n + 2));
    }
    sql.push_str(&format!(
        " END WHERE {key} IN ({})",
        numbered(2 * pairs + 1, pairs)
    ));
    if !returning.is_empty() {
        sql.push_str(" RETURNING ");
        sql.push_str(returning);
    }
    sql
}

/// Sets `column` of each row of `table` whose `key` is the first value of one of `pairs`
/// to that pair's second, a chunk of pairs per statement; answers the `returning` columns
/// of the rows changed (nothing when `returning` is empty).
pub(crate) async fn update_by_key(
    conn: &mut AnyConnection,
    table: &str,
    column: &str,
    key: &str,
    pairs: &[(Value, Value)],
    returning: &str,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    let mut changed = Vec::new();
    // Three bound values per pair: the key twice and the value.
    for chunk in chunks(conn, pairs, 3) {
        let sql = update_by_key_sql(table, column, key, chunk.len(), returning);
        let mut query = sqlx::query(&sql);
        for (key, value) in chunk {
            query = bind(bind(query, key), value);
        }
        for (key, _) in chunk {
            query = bind(query, key);
        }
        changed.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::{
        MAX_PARAMETERS, SQLITE_MAX_PARAMETERS, chunks_of_at_most, key_condition, max_parameters,
        update_by_key_sql,
    };
    use sqlx::Connection;

    /// On SQLite a statement binds at most 256 parameters (binding costs their square
    /// there), on PostgreSQL up to the usual 512 rows.
    #[tokio::test]
    async fn sqlite_statements_bind_few_parameters() {
        sqlx::any::install_default_drivers();
        let conn = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        assert_eq!(max_parameters(&conn), SQLITE_MAX_PARAMETERS);
        let rows: Vec<u32> = (0..1_000).collect();
        let sizes: Vec<usize> = chunks_of_at_most(&rows, 11, max_parameters(&conn))
            .map(<[u32]>::len)
            .collect();
        assert!(sizes.iter().all(|rows| rows * 11 <= 256), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 1_000);
        // One row even when a row alone is wider.
        assert!(chunks_of_at_most(&rows, 300, 256).all(|chunk| chunk.len() == 1));
    }

    #[test]
    fn chunks_have_few_sizes() {
        let rows: Vec<u32> = (0..1_300).collect();
        let sizes: Vec<usize> = chunks_of_at_most(&rows, 1, MAX_PARAMETERS)
            .map(<[u32]>::len)
            .collect();
        assert_eq!(sizes, [512, 512, 256, 16, 4]);
        let again: Vec<u32> = chunks_of_at_most(&rows, 1, MAX_PARAMETERS)
            .flatten()
            .copied()
            .collect();
        assert_eq!(again, rows);
        assert_eq!(
            chunks_of_at_most(&rows[..3], 1, MAX_PARAMETERS)
                .map(<[u32]>::len)
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(chunks_of_at_most::<u32>(&[], 1, MAX_PARAMETERS).count(), 0);
        // Wide rows: as many as fit under the parameter limit.
        let wide: Vec<usize> = chunks_of_at_most(&rows, 100, MAX_PARAMETERS)
            .map(<[u32]>::len)
            .collect();
        assert_eq!(wide, [300, 300, 300, 300, 64, 32, 4]);
    }

    #[test]
    fn key_conditions_number_every_value() {
        assert_eq!(key_condition(&["a"], 2), "a IN ($1, $2)");
        assert_eq!(
            key_condition(&["a", "b"], 2),
            "(a = $1 AND b = $2) OR (a = $3 AND b = $4)"
        );
    }

    #[test]
    fn an_update_by_key_numbers_the_pairs_then_the_keys() {
        assert_eq!(
            update_by_key_sql("t", "c", "k", 2, "k, a"),
            "UPDATE t SET c = CASE k WHEN $1 THEN $2 WHEN $3 THEN $4 END \
             WHERE k IN ($5, $6) RETURNING k, a"
        );
        assert_eq!(
            update_by_key_sql("t", "c", "k", 1, ""),
            "UPDATE t SET c = CASE k WHEN $1 THEN $2 END WHERE k IN ($3)"
        );
    }
}
