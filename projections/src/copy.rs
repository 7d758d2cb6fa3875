//! `COPY ... FROM STDIN (FORMAT binary)`: PostgreSQL's fastest way in for
//! rows that are only inserted. A batch's rows are encoded column by column
//! into one buffer and sent in one `COPY`, inside the caller's transaction.
//!
//! Values are encoded exactly as sqlx binds them (timestamps as
//! microseconds since 2000-01-01, truncated), so a row written by `COPY`
//! is the row an `INSERT` with the same values would have written.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// PostgreSQL's epoch for timestamps, 2000-01-01T00:00:00Z.
const PG_EPOCH_SECS: i64 = 946_684_800;

/// Rows in the binary `COPY` format, built up one field at a time.
pub(crate) struct BinaryRows {
    buf: Vec<u8>,
    fields: i16,
    rows: usize,
}

impl BinaryRows {
    /// An empty set of rows of `fields` columns.
    pub(crate) fn new(fields: i16, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(19 + capacity);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0_i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0_i32.to_be_bytes()); // header extension
        Self {
            buf,
            fields,
            rows: 0,
        }
    }

    /// Starts a row: its fields follow, in the statement's column order.
    pub(crate) fn row(&mut self) {
        self.buf.extend_from_slice(&self.fields.to_be_bytes());
        self.rows += 1;
    }

    pub(crate) fn uuid(&mut self, value: Uuid) {
        self.field(value.as_bytes());
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.field(value.as_bytes());
    }

    pub(crate) fn int4(&mut self, value: i32) {
        self.field(&value.to_be_bytes());
    }

    pub(crate) fn int8(&mut self, value: i64) {
        self.field(&value.to_be_bytes());
    }

    pub(crate) fn timestamptz(&mut self, value: DateTime<Utc>) {
        // What sqlx sends for a `DateTime<Utc>`: whole microseconds, the
        // nanoseconds beyond them dropped.
        let epoch = DateTime::from_timestamp(PG_EPOCH_SECS, 0).expect("2000-01-01");
        let micros = (value - epoch)
            .num_microseconds()
            .expect("chrono's dates are within ±2^63 µs of 2000");
        self.field(&micros.to_be_bytes());
    }

    /// A NULL.
    pub(crate) fn null(&mut self) {
        self.buf.extend_from_slice(&(-1_i32).to_be_bytes());
    }

    pub(crate) fn opt_text(&mut self, value: Option<&str>) {
        match value {
            Some(value) => self.text(value),
            None => self.null(),
        }
    }

    pub(crate) fn opt_uuid(&mut self, value: Option<Uuid>) {
        match value {
            Some(value) => self.uuid(value),
            None => self.null(),
        }
    }

    pub(crate) fn opt_timestamptz(&mut self, value: Option<DateTime<Utc>>) {
        match value {
            Some(value) => self.timestamptz(value),
            None => self.null(),
        }
    }

    fn field(&mut self, bytes: &[u8]) {
        let len = i32::try_from(bytes.len()).expect("a field under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    /// Sends the rows with `statement` (a `COPY <table> (<columns>) FROM
    /// STDIN (FORMAT binary)`).
    ///
    /// # Returns
    /// Rows written.
    pub(crate) async fn send(
        mut self,
        conn: &mut PgConnection,
        statement: &'static str,
    ) -> Result<u64, sqlx::Error> {
        if self.rows == 0 {
            return Ok(0);
        }
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
        let mut copy = conn.copy_in_raw(statement).await?;
        copy.send(self.buf).await?;
        copy.finish().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_microseconds_since_2000_truncated_like_sqlx() {
        let at = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.000002999Z")
            .unwrap()
            .to_utc();
        let mut rows = BinaryRows::new(1, 0);
        rows.row();
        rows.timestamptz(at);
        assert_eq!(&rows.buf[19..21], &1_i16.to_be_bytes());
        assert_eq!(&rows.buf[21..25], &8_i32.to_be_bytes());
        assert_eq!(&rows.buf[25..33], &1_000_002_i64.to_be_bytes());
    }
}
