//! Rows of a batch: loaded once, changed in memory by every event of the
//! batch, written once. A batch of thousands of events costs a handful of
//! statements, and the outcome is the same wherever batches begin and end.
//!
//! Rows travel as JSON by default (`to_jsonb` out, `jsonb_populate_recordset`
//! in), so a table's row type is one serde struct whose field names are its
//! columns. A row type on a hot path (`messages`) reads and writes its
//! columns as typed arrays instead ([`Row::fetch`], [`Row::upsert`]), which
//! spares both sides building and parsing JSON. Table names are unqualified:
//! a rebuild points `search_path` at its own schema and the same code fills
//! the fresh tables.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Timelike, Utc};
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

    /// Reads the rows with these keys (as JSON unless overridden).
    fn fetch(
        conn: &mut PgConnection,
        keys: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Self>, sqlx::Error>> + Send {
        async move {
            let sql = format!(
                "select to_jsonb(t) from {table} t where {key} = any($1)",
                table = Self::TABLE,
                key = Self::KEY
            );
            let found: Vec<Json<Self>> = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(keys)
                .fetch_all(&mut *conn)
                .await?;
            Ok(found.into_iter().map(|Json(row)| row).collect())
        }
    }

    /// Inserts these rows, none of which is stored yet (an upsert unless
    /// overridden).
    fn insert(
        conn: &mut PgConnection,
        rows: &[&Self],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        Self::upsert(conn, rows)
    }

    /// Inserts these rows, or replaces every column but the key of those
    /// that exist (as JSON unless overridden).
    fn upsert(
        conn: &mut PgConnection,
        rows: &[&Self],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send {
        async move {
            let source = format!("jsonb_populate_recordset(null::{}, $1)", Self::TABLE);
            sqlx::query(AssertSqlSafe(upsert_sql::<Self>(&source)))
                .bind(Json(rows))
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    }
}

/// The instant PostgreSQL stores when given this one as JSON text (RFC 3339,
/// up to nine fractional digits): its parser reads the fraction as a double
/// and rounds it to the microsecond with `rint`. Rows written as typed
/// values pass their instants through this, so that they hold exactly what
/// the JSON path held (sqlx's binary encoding would truncate instead).
pub(crate) fn as_stored_from_json(at: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = at.nanosecond();
    if nanos.is_multiple_of(1_000) || nanos >= 1_000_000_000 {
        return at;
    }
    let fraction: f64 = format!("0.{nanos:09}").parse().unwrap_or(0.0);
    let micros = (fraction * 1_000_000.0).round_ties_even() as i64;
    at.with_nanosecond(0).unwrap_or(at) + chrono::TimeDelta::microseconds(micros)
}

/// The rows a batch touches: `Some` to write, `None` absent or deleted.
pub(crate) struct RowSet<R: Row> {
    rows: HashMap<Uuid, Option<R>>,
    /// Keys of the rows found in the table when loaded.
    stored: HashSet<Uuid>,
    changed: Vec<Uuid>,
}

impl<R: Row> Default for RowSet<R> {
    fn default() -> Self {
        Self {
            rows: HashMap::new(),
            stored: HashSet::new(),
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
        let found = R::fetch(conn, &wanted).await?;
        for key in wanted {
            self.rows.insert(key, None);
        }
        for row in found {
            self.stored.insert(row.key());
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

    /// Writes every row created, changed or deleted. A row that was not
    /// found when loaded (or never loaded: the fold knows it is new) is
    /// inserted, the others are upserted.
    pub(crate) async fn flush(mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.changed.sort_unstable();
        self.changed.dedup();
        let mut inserts = Vec::new();
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for key in &self.changed {
            match self.rows.get(key) {
                Some(Some(row)) if self.stored.contains(key) => upserts.push(row),
                Some(Some(row)) => inserts.push(row),
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
            R::upsert(conn, &upserts).await?;
        }
        if !inserts.is_empty() {
            R::insert(conn, &inserts).await?;
        }
        Ok(())
    }
}

/// `insert ... select <columns> from <source> on conflict (<key>) do
/// update` every other column.
pub(crate) fn upsert_sql<R: Row>(source: &str) -> String {
    let columns = R::COLUMNS.join(", ");
    let others: Vec<&str> = R::COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != R::KEY)
        .collect();
    let excluded: Vec<String> = others.iter().map(|c| format!("excluded.{c}")).collect();
    format!(
        "insert into {table} ({columns}) \
         select {columns} from {source} \
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
            upsert_sql::<Thing>("jsonb_populate_recordset(null::things, $1)"),
            "insert into things (id, name, size) \
             select id, name, size from jsonb_populate_recordset(null::things, $1) \
             on conflict (id) do update set (name, size) = row(excluded.name, excluded.size)"
        );
    }

    /// 2026-03-01T10:00:00 plus `fraction` of a second (`".123"`), UTC.
    fn instant(fraction: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-03-01T10:00:00{fraction}Z"))
            .unwrap()
            .to_utc()
    }

    #[test]
    fn an_instant_is_rounded_to_the_microsecond_as_postgres_rounds_json_text() {
        for (given, stored) in [
            ("", ""),
            (".123456", ".123456"),
            (".123456499", ".123456"),
            (".123456501", ".123457"),
            // Ties go to the even microsecond (checked against PostgreSQL 15).
            (".000002500", ".000002"),
            (".000001500", ".000002"),
            (".000000500", ""),
        ] {
            assert_eq!(
                as_stored_from_json(instant(given)),
                instant(stored),
                "{given}"
            );
        }
        assert_eq!(
            as_stored_from_json(instant(".999999900")),
            instant("") + chrono::TimeDelta::seconds(1)
        );
    }
}
