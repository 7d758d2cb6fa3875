//! Rows of a batch: loaded once, changed in memory by every event of the
//! batch, written once. A batch of thousands of events costs a handful of
//! statements, and the outcome is the same wherever batches begin and end.
//!
//! Rows travel as JSON (`to_jsonb` out, `jsonb_populate_recordset` in), so a
//! table's row type is one serde struct whose field names are its columns.
//! Table names are unqualified: a rebuild points `search_path` at its own
//! schema and the same code fills the fresh tables.

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgConnection};
use uuid::Uuid;

/// A row of a table keyed by one UUID column.
pub(crate) trait Row: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The table.
    const TABLE: &'static str;
    /// The key column.
    const KEY: &'static str;
    /// Every column, key included, as named in the table and the struct.
    const COLUMNS: &'static [&'static str];

    /// The row's key.
    fn key(&self) -> Uuid;
}

/// The rows a batch touches: `Some` to write, `None` absent or deleted.
pub(crate) struct RowSet<R: Row> {
    rows: HashMap<Uuid, Option<R>>,
    changed: Vec<Uuid>,
}

impl<R: Row> Default for RowSet<R> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            changed: Vec::new(),
        }
    }
}

impl<R: Row> RowSet<R> {
    /// Loads the rows with these keys that are not loaded yet.
    pub(crate) async fn load(
        &mut self,
        conn: &mut PgConnection,
        keys: impl IntoIterator<Item = Uuid>,
    ) -> Result<(), sqlx::Error> {
        let mut wanted: Vec<Uuid> = keys
            .into_iter()
            .filter(|key| !self.rows.contains_key(key))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if wanted.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "select to_jsonb(t) from {table} t where {key} = any($1)",
            table = R::TABLE,
            key = R::KEY
        );
        let found: Vec<Json<R>> = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(&wanted)
            .fetch_all(&mut *conn)
            .await?;
        for key in wanted {
            self.rows.insert(key, None);
        }
        for Json(row) in found {
            self.rows.insert(row.key(), Some(row));
        }
        Ok(())
    }

    /// The row with this key, to change it (it will be written).
    pub(crate) fn get_mut(&mut self, key: Uuid) -> Option<&mut R> {
        let row = self.rows.get_mut(&key)?.as_mut()?;
        self.changed.push(key);
        Some(row)
    }

    /// Whether the row exists (loaded or created in this batch).
    pub(crate) fn contains(&self, key: Uuid) -> bool {
        matches!(self.rows.get(&key), Some(Some(_)))
    }

    /// Creates or replaces a row.
    pub(crate) fn put(&mut self, row: R) {
        let key = row.key();
        self.rows.insert(key, Some(row));
        self.changed.push(key);
    }

    /// Deletes a row.
    pub(crate) fn remove(&mut self, key: Uuid) {
        self.rows.insert(key, None);
        self.changed.push(key);
    }

    /// Writes every row created, changed or deleted.
    pub(crate) async fn flush(mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.changed.sort_unstable();
        self.changed.dedup();
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for key in &self.changed {
            match self.rows.get(key) {
                Some(Some(row)) => upserts.push(row),
                _ => deletes.push(*key),
            }
        }
        if !deletes.is_empty() {
            let sql = format!(
                "delete from {table} where {key} = any($1)",
                table = R::TABLE,
                key = R::KEY
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(&deletes)
                .execute(&mut *conn)
                .await?;
        }
        if !upserts.is_empty() {
            sqlx::query(AssertSqlSafe(upsert_sql::<R>()))
                .bind(Json(&upserts))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

fn upsert_sql<R: Row>() -> String {
    let columns = R::COLUMNS.join(", ");
    let others: Vec<&str> = R::COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != R::KEY)
        .collect();
    let excluded: Vec<String> = others.iter().map(|c| format!("excluded.{c}")).collect();
    format!(
        "insert into {table} ({columns}) \
         select {columns} from jsonb_populate_recordset(null::{table}, $1) \
         on conflict ({key}) do update set ({others}) = row({excluded})",
        table = R::TABLE,
        key = R::KEY,
        others = others.join(", "),
        excluded = excluded.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Thing {
        id: Uuid,
        name: String,
        size: i64,
    }

    impl Row for Thing {
        const TABLE: &'static str = "things";
        const KEY: &'static str = "id";
        const COLUMNS: &'static [&'static str] = &["id", "name", "size"];

        fn key(&self) -> Uuid {
            self.id
        }
    }

    #[test]
    fn an_upsert_writes_every_column_and_updates_all_but_the_key() {
        assert_eq!(
            upsert_sql::<Thing>(),
            "insert into things (id, name, size) \
             select id, name, size from jsonb_populate_recordset(null::things, $1) \
             on conflict (id) do update set (name, size) = row(excluded.name, excluded.size)"
        );
    }
}
