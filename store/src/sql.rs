//! Numbered placeholders (`$1, $2, …`) for statements whose size depends on their input,
//! written once for every crate that builds one (SQLite and PostgreSQL both read `$n`).

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

#[cfg(test)]
mod tests {
    use super::{numbered, placeholders};

    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(placeholders(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholders(1, 3), "($1, $2, $3)");
        assert_eq!(numbered(3, 2), "$3, $4");
        assert_eq!(numbered(1, 0), "");
    }
}
