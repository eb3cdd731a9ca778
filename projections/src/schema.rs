//! The tables a projector owns: their DDL, written once for SQLite and PostgreSQL with
//! `{t}` standing for the table's physical name, so that a rebuild can create the same
//! tables under new names and swap them in.

use std::collections::HashMap;
use store::{Backend, Database};

/// One table of a read model.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table's name when live.
    pub name: &'static str,
    /// Statements creating it; `{t}` is replaced by the physical table name (index names
    /// derive from it too, so they never collide with the live table's).
    pub ddl: &'static [&'static str],
}

/// Logical table name to physical table name, for one projector run.
#[derive(Debug, Clone, Default)]
pub struct Tables(HashMap<&'static str, String>);

impl Tables {
    /// The live tables.
    pub fn live(tables: &[Table]) -> Self {
        Self(tables.iter().map(|t| (t.name, t.name.to_owned())).collect())
    }

    /// Fresh tables for a rebuild: the live names plus `suffix`.
    pub fn shadow(tables: &[Table], suffix: &str) -> Self {
        Self(
            tables
                .iter()
                .map(|t| (t.name, format!("{}{suffix}", t.name)))
                .collect(),
        )
    }

    /// The physical name of `table`.
    ///
    /// # Panics
    /// If the projector asks for a table it did not declare: a programming error.
    pub fn get(&self, table: &str) -> &str {
        self.0
            .get(table)
            .unwrap_or_else(|| panic!("table {table} is not declared by its projector"))
    }

    /// Deletes the rows of `account_id` from each of the declared tables `names` (keyed by
    /// an `account_id` column): an account deleted, or a part of it replaced.
    pub async fn forget_account(
        &self,
        conn: &mut sqlx::AnyConnection,
        names: &[&str],
        account_id: &str,
    ) -> Result<(), sqlx::Error> {
        for name in names {
            sqlx::query(&format!(
                "DELETE FROM {} WHERE account_id = $1",
                self.get(name)
            ))
            .bind(account_id)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Whether a table exists.
pub async fn table_exists(db: &Database, name: &str) -> Result<bool, sqlx::Error> {
    let sql = match db.backend() {
        Backend::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Backend::Postgres => {
            "SELECT count(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let count: i64 = sqlx::query_scalar(sql)
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    Ok(count > 0)
}

/// The statements creating `table` under the physical name `physical`.
pub fn create_statements(table: &Table, physical: &str) -> Vec<String> {
    table
        .ddl
        .iter()
        .map(|sql| sql.replace("{t}", physical))
        .collect()
}
