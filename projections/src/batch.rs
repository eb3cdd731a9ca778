//! Set-based writes for projectors that fold a whole batch of events in memory: rows
//! written with one multi-row statement (in chunks under the databases' limits on bound
//! parameters) and rows looked up with one `IN` list, instead of a round trip per event.
//! Written once for SQLite and PostgreSQL, like every statement of the read models.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::any::{Any, AnyArguments};
use sqlx::query::Query;
pub use store::sql::{for_connection, numbered, placeholders};

/// Bound parameters per statement: under SQLite's limit (32,766) and PostgreSQL's (65,535).
/// On SQLite every statement here binds anonymous parameters ([`for_connection`]): with
/// numbered ones binding cost the square of their count there, and statements were kept to
/// 256 parameters, at which the credit ledger rebuilt on SQLite at 40,892 events/s against
/// 74,630 now, on 200,000 events (`cargo bench -p projections --bench rebuild`, README).
const MAX_PARAMETERS: usize = 30_000;

/// Most rows (or keys looked up) per statement.
const ROWS_PER_STATEMENT: usize = 512;

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
/// batch.
pub fn chunks<'r, T>(rows: &'r [T], width: usize) -> impl Iterator<Item = &'r [T]> + use<'r, T> {
    chunks_of_at_most(rows, width, MAX_PARAMETERS)
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
    for chunk in chunks(rows, width) {
        let sql = for_connection(
            conn,
            format!("{head} VALUES {} {tail}", placeholders(chunk.len(), width)),
        );
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
    for chunk in chunks(keys, columns.len()) {
        let sql = for_connection(
            conn,
            format!("{select} {}", key_condition(columns, chunk.len())),
        );
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
    for chunk in chunks(keys, columns.len()) {
        let sql = for_connection(
            conn,
            format!(
                "DELETE FROM {table} WHERE {}",
                key_condition(columns, chunk.len())
            ),
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
    for chunk in chunks(pairs, 3) {
        let sql = for_connection(
            conn,
            update_by_key_sql(table, column, key, chunk.len(), returning),
        );
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
        MAX_PARAMETERS, Value, chunks_of_at_most, delete_keys, for_connection, insert_rows,
        key_condition, placeholders, select_keys, update_by_key, update_by_key_sql,
    };
    use sqlx::{Connection, Row};

    /// On SQLite every statement built here binds anonymous parameters (numbered ones
    /// cost the square of their count to bind there).
    #[tokio::test]
    async fn sqlite_statements_bind_anonymous_parameters() {
        sqlx::any::install_default_drivers();
        let conn = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        for (sql, parameters) in [
            (
                format!(
                    "INSERT INTO t (a, b) VALUES {} ON CONFLICT DO NOTHING",
                    placeholders(3, 2)
                ),
                6,
            ),
            (
                format!("SELECT a FROM t WHERE {}", key_condition(&["a"], 4)),
                4,
            ),
            (
                format!("DELETE FROM t WHERE {}", key_condition(&["a", "b"], 2)),
                4,
            ),
            (update_by_key_sql("t", "c", "k", 3, "k"), 9),
        ] {
            let bound = for_connection(&conn, sql);
            assert!(!bound.contains('$'), "{bound}");
            assert_eq!(bound.matches('?').count(), parameters, "{bound}");
        }
    }

    /// Rows written, updated, selected and deleted on SQLite in statements of many chunks
    /// keep each value in its own row and column: anonymous parameters bind in order.
    #[tokio::test]
    async fn sqlite_batches_bind_every_value_where_it_belongs() {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, a INTEGER NOT NULL, b TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        let rows: Vec<Vec<Value>> = (0..12_000_i64)
            .map(|n| {
                vec![
                    Value::Text(format!("k{n}")),
                    Value::Int(n * 3),
                    Value::OptText((n % 2 == 0).then(|| format!("b{n}"))),
                ]
            })
            .collect();
        insert_rows(&mut conn, "INSERT INTO t (k, a, b)", "", 3, &rows)
            .await
            .unwrap();
        let pairs: Vec<(Value, Value)> = (0..11_000_i64)
            .step_by(7)
            .map(|n| (Value::Text(format!("k{n}")), Value::Int(-n)))
            .collect();
        let changed = update_by_key(&mut conn, "t", "a", "k", &pairs, "k, a")
            .await
            .unwrap();
        assert_eq!(changed.len(), pairs.len());
        let doomed: Vec<Vec<Value>> = (0..12_000_i64)
            .step_by(5)
            .map(|n| vec![Value::Text(format!("k{n}"))])
            .collect();
        delete_keys(&mut conn, "t", &["k"], &doomed).await.unwrap();
        let wanted: Vec<Vec<Value>> = (0..12_000_i64)
            .map(|n| vec![Value::Text(format!("k{n}"))])
            .collect();
        let found = select_keys(&mut conn, "SELECT k, a, b FROM t WHERE", &["k"], &wanted)
            .await
            .unwrap();
        assert_eq!(found.len(), 12_000 - 2_400);
        for row in found {
            let k: String = row.try_get(0).unwrap();
            let n: i64 = k[1..].parse().unwrap();
            assert_ne!(n % 5, 0, "{k} was deleted");
            let a: i64 = row.try_get(1).unwrap();
            let expected = if n % 7 == 0 && n < 11_000 { -n } else { n * 3 };
            assert_eq!(a, expected, "{k}");
            let b: Option<String> = row.try_get(2).unwrap();
            assert_eq!(b, (n % 2 == 0).then(|| format!("b{n}")), "{k}");
        }
    }

    #[test]
    fn wide_rows_go_one_at_a_time() {
        let rows: Vec<u32> = (0..10).collect();
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
