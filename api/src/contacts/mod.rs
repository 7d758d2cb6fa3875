//! Contact lists: importing a CSV or XLSX file into a list of consented,
//! deduplicated WhatsApp numbers, writing lists without a file (JSON rows
//! in, contacts out), and reading lists back.
//!
//! Contacts are plain tables, not event-sourced (written by the API
//! directly, not rebuilt from the log). An import is
//! one transaction: the list row and its accepted contacts, so a refused
//! file creates nothing.
//!
//! # Layout
//!
//! - [`parse`]: what the file is (from its content), its header and rows,
//!   streamed.
//! - [`normalize`]: one cell at a time: E.164 phones, consent, formulas,
//!   oversized cells, and the stable rejection [`Reason`]s.
//! - [`store`]: the SQL: batched inserts, tenant-scoped reads, soft delete,
//!   and [`store::list_for_campaign`] for campaign creation.
//! - [`import`]: the whole path. The file is parsed on a blocking thread
//!   that hands accepted contacts over in batches of [`BATCH`] while the
//!   async side inserts them (`INSERT ... SELECT * FROM UNNEST(...)`), so
//!   parsing and storing overlap and memory stays bounded whatever the
//!   number of rows.
//! - [`edit`]: lists without a file: created from JSON rows, rows added,
//!   contacts removed. A JSON row becomes a [`Row`] of fixed columns
//!   (`phone`, `name`, `consent`, then its variables) and goes through the
//!   same checks as a file's rows (the one [`Checker`]), so both paths
//!   accept, refuse and report alike.
//!
//! # Decisions
//!
//! - **Mapping.** `{phone?, name?, consent?, variables?}`; a key left out
//!   takes its default: the column named `phone` (or `phone_e164`,
//!   `nomor`, `no_hp`, `whatsapp`), `name` (or `nama`), `consent` (or
//!   `persetujuan`),
//!   compared trimmed and case-insensitively. Left-out `variables` means
//!   every other column whose header is a template variable name
//!   (`[A-Za-z_][A-Za-z0-9_]*`, not `name` or `phone`); `variables: []`
//!   means none. A named column missing from the header, a header name
//!   given twice, or a named variable that cannot be a template variable
//!   is a 400 `validation_failed` naming it.
//! - **Consent** is required: a file with no consent column (none mapped,
//!   none named `consent`) is refused with 400, because importing contacts
//!   who never agreed is exactly what must not happen, and refusing every
//!   row instead would leave the user guessing.
//! - **Rows.** A row is accepted when its phone is a valid mobile number
//!   (national numbers read in `default_region`), its consent says yes,
//!   and its number did not appear on an earlier accepted row. Otherwise
//!   it is reported with a [`Reason`], checked in this order: a formula or
//!   oversized cell in a used column, then the phone, then consent, then
//!   duplicates (naming the first row). Blank rows are skipped and not
//!   counted: row 1 is the first non-blank row after the header, row 2 the
//!   next, in CSV and XLSX alike (in a sheet without blank rows, row `n` is
//!   the spreadsheet's row `n + 1`).
//! - **The report** lists the first [`MAX_REPORTED`] rejected rows;
//!   `rejected_count` is the total.
//! - **Whole-file refusals** (400, nothing created): not CSV/XLSX by
//!   content, not UTF-8, empty, no header, no data rows, a cell longer than
//!   a spreadsheet allows, bad mapping or region.

pub mod edit;
pub mod normalize;
pub mod parse;
pub mod store;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::sync::mpsc;
use utoipa::ToSchema;
use uuid::Uuid;
use wablast_domain::types::TenantId;
use wablast_domain::types::phone::Region;

pub use normalize::Reason;
use normalize::{MAX_CELL_CHARS, looks_like_formula, too_long};
use parse::{CsvRows, Format, Row, Rows, XlsxRows};

use crate::ApiError;

/// Contacts inserted per statement.
pub const BATCH: usize = 5_000;

/// Rejected rows listed in an import's answer (all are counted).
pub const MAX_REPORTED: usize = 1_000;

/// The longest a value shown in the report is, in characters.
const MAX_SHOWN_CHARS: usize = 100;

const PHONE_NAMES: &[&str] = &["phone", "phone_e164", "nomor", "no_hp", "whatsapp"];
const NAME_NAMES: &[&str] = &["name", "nama"];
const CONSENT_NAMES: &[&str] = &["consent", "persetujuan"];

/// Which columns of the file mean what; a key left out takes its default
/// (see the module docs).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactMapping)]
pub struct Mapping {
    /// The column holding the phone number (default: `phone`,
    /// `phone_e164`, `nomor`, `no_hp` or `whatsapp`, the first the header
    /// has).
    pub phone: Option<String>,
    /// The column holding the contact's name (default: `name` or `nama`, if
    /// any).
    pub name: Option<String>,
    /// The column saying whether the contact agreed to be messaged
    /// (default: `consent`; required).
    pub consent: Option<String>,
    /// Columns that become template variables (default: every other column
    /// whose header is a variable name).
    pub variables: Option<Vec<String>>,
}

/// What to import.
#[derive(Clone, Debug)]
pub struct Upload {
    /// The file, on disk.
    pub path: PathBuf,
    /// Its name as uploaded.
    pub filename: Option<String>,
    /// The list's name.
    pub name: String,
    /// Which columns mean what.
    pub mapping: Mapping,
    /// Where national numbers are read.
    pub region: Region,
}

/// A row that was not imported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = RejectedRow)]
pub struct Rejection {
    /// The data row (1 = the first non-blank row after the header; blank
    /// rows are not counted), or the request's contact (1 = its first).
    pub row: u32,
    /// The offending cell as written (the phone cell, unless `column` names
    /// another); at most 100 characters.
    pub value: String,
    /// Why.
    pub reason: Reason,
    /// Why, for people.
    pub message: String,
    /// The column of the offending cell, when it is not the phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// For a duplicate: the row that has the number first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<u32>,
    /// For `already_in_list`: the list's contact that has the number (its
    /// `row`, the id `DELETE .../contacts/{contact_id}` takes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_row: Option<i32>,
}

/// The answer to an import, and to rows written without a file (a new
/// list, or rows added to one): what became of the rows read.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(as = ContactListImport)]
pub struct Imported {
    /// The list.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its template variables now (an import's: the mapped variable
    /// columns, in file order).
    pub columns: Vec<String>,
    /// Rows read: the file's data rows (blank rows not counted), or the
    /// request's contacts.
    pub total_rows: u32,
    /// Contacts stored from them.
    pub accepted: u32,
    /// The first 1,000 rejected rows, in file (or request) order.
    pub rejected: Vec<Rejection>,
    /// How many rows were rejected in all.
    pub rejected_count: u32,
    /// When the list was created.
    pub created_at: DateTime<Utc>,
}

/// An accepted row, ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// Its data row.
    pub row: i32,
    /// E.164.
    pub phone: String,
    /// Its name, if the file had one.
    pub name: Option<String>,
    /// Its variables as a JSON object (text).
    pub variables: String,
}

/// Which column index means what.
#[derive(Clone, Debug)]
struct Plan {
    phone: usize,
    name: Option<usize>,
    consent: usize,
    /// `(column index, variable name)` in file order.
    variables: Vec<(usize, String)>,
    /// Every column above: the cells a row is checked on.
    used: Vec<usize>,
    header: Vec<String>,
}

fn find(header: &[String], wanted: &str) -> Result<Option<usize>, ApiError> {
    let wanted = wanted.trim().to_lowercase();
    let mut found = header
        .iter()
        .enumerate()
        .filter(|(_, column)| column.to_lowercase() == wanted)
        .map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(_), Some(_)) => Err(ApiError::invalid_field(
            "mapping",
            format!("the header has the column {wanted:?} more than once"),
        )),
        (first, _) => Ok(first),
    }
}

fn require(header: &[String], field: &str, column: &str) -> Result<usize, ApiError> {
    find(header, column)?.ok_or_else(|| {
        ApiError::invalid_field(
            field,
            format!(
                "{field} names the column {column:?}, which the header does not have (it has: {})",
                shown_header(header)
            ),
        )
    })
}

fn default_column(header: &[String], names: &[&str]) -> Result<Option<usize>, ApiError> {
    for name in names {
        if let Some(i) = find(header, name)? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn shown_header(header: &[String]) -> String {
    let shown: Vec<String> = header
        .iter()
        .filter(|c| !c.is_empty())
        .take(20)
        .map(|c| format!("{:?}", shorten(c)))
        .collect();
    if shown.is_empty() {
        "no named columns".to_owned()
    } else {
        shown.join(", ")
    }
}

/// Whether a column name can be a template variable.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_reserved(name: &str) -> bool {
    name.eq_ignore_ascii_case("name") || name.eq_ignore_ascii_case("phone")
}

impl Plan {
    fn new(header: Vec<String>, mapping: &Mapping) -> Result<Self, ApiError> {
        let phone = match &mapping.phone {
            Some(column) => require(&header, "mapping.phone", column)?,
            None => default_column(&header, PHONE_NAMES)?.ok_or_else(|| {
                ApiError::invalid_field(
                    "mapping.phone",
                    format!(
                        "no phone column: name one `phone` or map it with mapping.phone (the header has: {})",
                        shown_header(&header)
                    ),
                )
            })?,
        };
        let name = match &mapping.name {
            Some(column) => Some(require(&header, "mapping.name", column)?),
            None => default_column(&header, NAME_NAMES)?,
        };
        let consent = match &mapping.consent {
            Some(column) => require(&header, "mapping.consent", column)?,
            None => default_column(&header, CONSENT_NAMES)?.ok_or_else(|| {
                ApiError::invalid_field(
                    "mapping.consent",
                    format!(
                        "no consent column: only contacts who agreed to receive messages may be imported; \
                         add a `consent` column (yes/no, ya/tidak) or map one with mapping.consent (the header has: {})",
                        shown_header(&header)
                    ),
                )
            })?,
        };
        if phone == consent || Some(phone) == name || (name.is_some() && name == Some(consent)) {
            return Err(ApiError::invalid_field(
                "mapping",
                "phone, name and consent must be different columns",
            ));
        }
        let mut variables = Vec::new();
        match &mapping.variables {
            Some(columns) => {
                for column in columns {
                    let index = require(&header, "mapping.variables", column)?;
                    let variable = header[index].clone();
                    if !is_variable_name(&variable) || is_reserved(&variable) {
                        return Err(ApiError::invalid_field(
                            "mapping.variables",
                            format!(
                                "the column {:?} cannot be a template variable: rename it to letters, digits and `_` \
                                 (starting with a letter), other than `name` and `phone`",
                                shorten(&variable)
                            ),
                        ));
                    }
                    if index == phone || index == consent {
                        return Err(ApiError::invalid_field(
                            "mapping.variables",
                            format!(
                                "the column {variable:?} is already the phone or consent column"
                            ),
                        ));
                    }
                    if variables.iter().any(|(i, _)| *i == index) {
                        return Err(ApiError::invalid_field(
                            "mapping.variables",
                            format!("the column {variable:?} is named twice"),
                        ));
                    }
                    variables.push((index, variable));
                }
                variables.sort_by_key(|(i, _)| *i);
            }
            None => {
                for (index, column) in header.iter().enumerate() {
                    let used = index == phone || index == consent || Some(index) == name;
                    if !used
                        && is_variable_name(column)
                        && !is_reserved(column)
                        && !variables.iter().any(|(_, v)| v == column)
                    {
                        variables.push((index, column.clone()));
                    }
                }
            }
        }
        let used = [Some(phone), name, Some(consent)]
            .into_iter()
            .flatten()
            .chain(variables.iter().map(|(i, _)| *i))
            .collect();
        Ok(Self {
            phone,
            name,
            consent,
            variables,
            used,
            header,
        })
    }

    /// The plan of rows that are not read from a file: the cells `phone`,
    /// `name`, `consent`, then one per variable of `columns`, in that
    /// order (their names checked by the caller).
    fn of_fields(columns: &[String]) -> Self {
        let header: Vec<String> = ["phone", "name", "consent"]
            .into_iter()
            .map(str::to_owned)
            .chain(columns.iter().cloned())
            .collect();
        Self {
            phone: 0,
            name: Some(1),
            consent: 2,
            variables: columns
                .iter()
                .enumerate()
                .map(|(i, column)| (FIXED_FIELDS + i, column.clone()))
                .collect(),
            used: (0..header.len()).collect(),
            header,
        }
    }

    fn columns(&self) -> Vec<String> {
        self.variables.iter().map(|(_, v)| v.clone()).collect()
    }
}

/// The cells of a row of [`Plan::of_fields`] before its variables.
const FIXED_FIELDS: usize = 3;

/// A number as the dedupe keys it, from its E.164 digits (without the
/// `+`): E.164 has at most 15 digits, always a `u64`.
fn number_key(digits: &str) -> u64 {
    digits.parse::<u64>().unwrap_or(u64::MAX)
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// What reading the file (or the JSON rows) found.
#[derive(Debug, Default)]
struct Summary {
    total_rows: u32,
    accepted: u32,
    rejected: Vec<Rejection>,
    rejected_count: u32,
}

impl Summary {
    /// The answer about the list `id`, whose columns are now `columns`.
    fn report(
        self,
        id: Uuid,
        name: String,
        columns: Vec<String>,
        created_at: DateTime<Utc>,
    ) -> Imported {
        Imported {
            id,
            name,
            columns,
            total_rows: self.total_rows,
            accepted: self.accepted,
            rejected: self.rejected,
            rejected_count: self.rejected_count,
            created_at,
        }
    }
}

/// What the parsing thread hands the storing side.
enum Message {
    /// The header was read and the mapping holds: what the file is, and
    /// the list's columns.
    Header(Format, Vec<String>),
    /// Accepted contacts.
    Contacts(Vec<Contact>),
}

/// Checks rows one by one.
struct Checker {
    plan: Plan,
    region: Region,
    /// The accepted numbers (E.164 digits as an integer: 15 digits at most)
    /// and their rows: the only state that grows with the file, by about
    /// 16 bytes per contact.
    seen: HashMap<u64, u32>,
    /// The numbers the list already has, and their contacts' rows (when
    /// rows are added to a list; empty for a new one).
    in_list: HashMap<u64, i32>,
    summary: Summary,
}

/// What a rejected row is a duplicate of.
#[derive(Clone, Copy, Debug)]
enum Earlier {
    /// An earlier row of the same input.
    Row(u32),
    /// A contact the list already has (its row).
    Contact(i32),
}

impl Checker {
    fn new(plan: Plan, region: Region) -> Self {
        Self {
            plan,
            region,
            seen: HashMap::new(),
            in_list: HashMap::new(),
            summary: Summary::default(),
        }
    }

    /// Counts and numbers the next non-blank row (blank ones are skipped,
    /// uncounted), then checks it: its contact, or why not (recorded).
    fn next(&mut self, row: &mut Row) -> Option<Contact> {
        if row.is_blank() {
            return None;
        }
        self.summary.total_rows += 1;
        row.number = self.summary.total_rows;
        let contact = self.check(row)?;
        self.summary.accepted += 1;
        Some(contact)
    }

    fn reject(
        &mut self,
        row: &Row,
        reason: Reason,
        column: Option<usize>,
        earlier: Option<Earlier>,
    ) {
        self.summary.rejected_count += 1;
        if self.summary.rejected.len() >= MAX_REPORTED {
            return;
        }
        let index = column.unwrap_or(self.plan.phone);
        let (message, duplicate_of, existing_row) = match earlier {
            Some(Earlier::Row(first)) => {
                (format!("the same number as row {first}"), Some(first), None)
            }
            Some(Earlier::Contact(contact)) => (
                format!("the list already has this number (its contact of row {contact})"),
                None,
                Some(contact),
            ),
            None => (reason.message().to_owned(), None, None),
        };
        self.summary.rejected.push(Rejection {
            row: row.number,
            value: shorten(&row.cells[index].text),
            reason,
            message,
            column: column
                .filter(|&i| i != self.plan.phone)
                .map(|i| self.plan.header[i].clone()),
            duplicate_of,
            existing_row,
        });
    }

    /// The row's contact, or why not.
    fn check(&mut self, row: &Row) -> Option<Contact> {
        for k in 0..self.plan.used.len() {
            let index = self.plan.used[k];
            let cell = &row.cells[index];
            if cell.formula {
                self.reject(row, Reason::Formula, Some(index), None);
                return None;
            }
            if too_long(&cell.text, MAX_CELL_CHARS) {
                self.reject(row, Reason::CellTooLong, Some(index), None);
                return None;
            }
            if index != self.plan.phone && looks_like_formula(&cell.text) {
                self.reject(row, Reason::Formula, Some(index), None);
                return None;
            }
        }
        let phone = match normalize::phone(&row.cells[self.plan.phone].text, self.region) {
            Ok(phone) => phone,
            Err(reason) => {
                self.reject(row, reason, None, None);
                return None;
            }
        };
        match normalize::consent(&row.cells[self.plan.consent].text) {
            Some(true) => {}
            Some(false) => {
                self.reject(row, Reason::NoConsent, Some(self.plan.consent), None);
                return None;
            }
            None => {
                self.reject(row, Reason::InvalidConsent, Some(self.plan.consent), None);
                return None;
            }
        }
        let key = number_key(phone.digits());
        if let Some(&contact) = self.in_list.get(&key) {
            self.reject(
                row,
                Reason::AlreadyInList,
                None,
                Some(Earlier::Contact(contact)),
            );
            return None;
        }
        if let Some(&first) = self.seen.get(&key) {
            self.reject(row, Reason::Duplicate, None, Some(Earlier::Row(first)));
            return None;
        }
        self.seen.insert(key, row.number);
        let name = self
            .plan
            .name
            .map(|i| row.cells[i].text.clone())
            .filter(|n| !n.is_empty());
        let variables: serde_json::Map<String, serde_json::Value> = self
            .plan
            .variables
            .iter()
            .map(|(i, v)| {
                (
                    v.clone(),
                    serde_json::Value::String(row.cells[*i].text.clone()),
                )
            })
            .collect();
        Some(Contact {
            row: i32::try_from(row.number).unwrap_or(i32::MAX),
            phone: phone.as_str().to_owned(),
            name,
            variables: serde_json::Value::Object(variables).to_string(),
        })
    }
}

/// Reads the file (on a blocking thread), sending its header first, then
/// accepted contacts in batches. Stops early, with an error, when the
/// receiver is gone.
fn read_file(upload: &Upload, out: &mpsc::Sender<Message>) -> Result<Summary, ApiError> {
    let mut file = File::open(&upload.path).map_err(ApiError::internal)?;
    let head = parse::head(&mut file).map_err(ApiError::internal)?;
    let format = parse::sniff(&head, upload.filename.as_deref())?;
    match format {
        Format::Csv => check_rows(&mut CsvRows::open(file, &head)?, format, upload, out),
        Format::Xlsx => {
            let mut workbook = parse::open_xlsx(file)?;
            check_rows(
                &mut XlsxRows::first_sheet(&mut workbook)?,
                format,
                upload,
                out,
            )
        }
    }
}

fn check_rows(
    rows: &mut impl Rows,
    format: Format,
    upload: &Upload,
    out: &mpsc::Sender<Message>,
) -> Result<Summary, ApiError> {
    let gone = || ApiError::internal("the import was abandoned");
    let Some(header) = rows.header()? else {
        return Err(parse::unsupported(
            "the file has no header row: the first row must name the columns (phone, name, consent, ...)",
        ));
    };
    let plan = Plan::new(header, &upload.mapping)?;
    out.blocking_send(Message::Header(format, plan.columns()))
        .map_err(|_| gone())?;
    let mut checker = Checker::new(plan, upload.region);
    let mut row = Row::default();
    let mut batch = Vec::with_capacity(BATCH);
    while rows.next_row(&mut row)? {
        if let Some(contact) = checker.next(&mut row) {
            batch.push(contact);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                out.blocking_send(Message::Contacts(full))
                    .map_err(|_| gone())?;
            }
        }
    }
    if !batch.is_empty() {
        out.blocking_send(Message::Contacts(batch))
            .map_err(|_| gone())?;
    }
    if checker.summary.total_rows == 0 {
        return Err(ApiError::validation(
            "the file has a header but no data rows",
        ));
    }
    Ok(checker.summary)
}

/// Imports a file as a new list of `tenant`: parses, normalises, checks
/// and stores it in one transaction. A refused file (400) creates nothing.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn import(pool: &PgPool, tenant: TenantId, upload: Upload) -> Result<Imported, ApiError> {
    let (sender, mut receiver) = mpsc::channel(2);
    let reader = {
        let upload = upload.clone();
        tokio::task::spawn_blocking(move || read_file(&upload, &sender))
    };
    let (format, columns) = match receiver.recv().await {
        Some(Message::Header(format, columns)) => (format, columns),
        // The file was refused before its rows were read: the reader's error.
        _ => {
            drop(receiver);
            return Err(match reader.await.map_err(ApiError::internal)? {
                Err(err) => err,
                Ok(_) => ApiError::internal("the reader ended without a header"),
            });
        }
    };
    let mut list = Creation::begin(
        pool,
        tenant,
        upload.name,
        columns,
        format.into(),
        upload.filename.as_deref(),
        None,
    )
    .await?;
    while let Some(message) = receiver.recv().await {
        if let Message::Contacts(contacts) = message {
            list.insert(&contacts).await?;
        }
    }
    let summary = reader.await.map_err(ApiError::internal)??;
    list.finish(summary).await
}

/// A new list being written in one transaction: its row, then its
/// contacts, then what its rows gave.
struct Creation {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    id: Uuid,
    tenant: TenantId,
    name: String,
    columns: Vec<String>,
    source: store::Source,
    created_at: DateTime<Utc>,
}

impl Creation {
    /// Starts the transaction with the list's row.
    async fn begin(
        pool: &PgPool,
        tenant: TenantId,
        name: String,
        columns: Vec<String>,
        source: store::Source,
        filename: Option<&str>,
        group: Option<store::GroupOrigin<'_>>,
    ) -> Result<Self, ApiError> {
        let id = Uuid::now_v7();
        let created_at = Utc::now();
        let mut tx = pool.begin().await?;
        store::insert_list(
            &mut tx,
            &store::NewList {
                id,
                tenant,
                name: &name,
                columns: &columns,
                source,
                filename,
                group,
                created_at,
            },
        )
        .await?;
        Ok(Self {
            tx,
            id,
            tenant,
            name,
            columns,
            source,
            created_at,
        })
    }

    /// Stores accepted contacts (at most [`BATCH`] a statement).
    async fn insert(&mut self, contacts: &[Contact]) -> Result<(), ApiError> {
        for batch in contacts.chunks(BATCH) {
            store::insert_contacts(&mut self.tx, self.id, self.tenant, batch).await?;
        }
        Ok(())
    }

    /// Records what the rows gave, commits, and answers the report.
    async fn finish(mut self, summary: Summary) -> Result<Imported, ApiError> {
        store::count_rows(
            &mut self.tx,
            self.id,
            &self.columns,
            summary.total_rows,
            summary.accepted,
            summary.rejected_count,
        )
        .await?;
        self.tx.commit().await?;
        tracing::info!(
            list_id = %self.id,
            source = self.source.as_str(),
            total_rows = summary.total_rows,
            accepted = summary.accepted,
            rejected = summary.rejected_count,
            "contact list created"
        );
        Ok(summary.report(self.id, self.name, self.columns, self.created_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(columns: &[&str]) -> Vec<String> {
        columns.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn default_mapping_finds_columns_case_insensitively() {
        let plan = Plan::new(
            header(&[
                "No",
                "Phone",
                "NAMA",
                "Consent",
                "kota",
                "Nama Toko",
                "diskon",
            ]),
            &Mapping::default(),
        )
        .unwrap();
        assert_eq!((plan.phone, plan.name, plan.consent), (1, Some(2), 3));
        // `No` is a valid name too; `Nama Toko` is not.
        assert_eq!(plan.columns(), ["No", "kota", "diskon"]);
    }

    #[test]
    fn a_phone_e164_column_is_the_phone_by_default() {
        let plan = Plan::new(
            header(&["Phone_E164", "nama", "consent", "kota"]),
            &Mapping::default(),
        )
        .unwrap();
        assert_eq!((plan.phone, plan.name, plan.consent), (0, Some(1), 2));
        assert_eq!(plan.columns(), ["kota"]);
        // `phone` itself comes first; `phone_e164` is then a variable.
        let plan = Plan::new(
            header(&["phone_e164", "phone", "consent"]),
            &Mapping::default(),
        )
        .unwrap();
        assert_eq!(plan.phone, 1);
        assert_eq!(plan.columns(), ["phone_e164"]);
    }

    #[test]
    fn explicit_mapping_is_checked_against_the_header() {
        let cols = header(&["Nomor HP", "Nama Pelanggan", "Setuju?", "kota", "Nama Toko"]);
        let mapping = Mapping {
            phone: Some("nomor hp".into()),
            name: Some("Nama Pelanggan".into()),
            consent: Some("Setuju?".into()),
            variables: Some(vec!["kota".into()]),
        };
        let plan = Plan::new(cols.clone(), &mapping).unwrap();
        assert_eq!((plan.phone, plan.name, plan.consent), (0, Some(1), 2));
        assert_eq!(plan.columns(), ["kota"]);

        for bad in [
            Mapping {
                variables: Some(vec!["alamat".into()]),
                ..mapping.clone()
            },
            Mapping {
                variables: Some(vec!["Nama Toko".into()]),
                ..mapping.clone()
            },
            Mapping {
                variables: Some(vec!["kota".into(), "KOTA".into()]),
                ..mapping.clone()
            },
            Mapping {
                consent: None,
                ..mapping.clone()
            },
            Mapping {
                phone: None,
                ..mapping.clone()
            },
            Mapping {
                consent: Some("Nomor HP".into()),
                ..mapping.clone()
            },
        ] {
            let err = Plan::new(cols.clone(), &bad).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::ValidationFailed, "{bad:?}");
        }
    }

    #[test]
    fn a_column_named_twice_in_the_header_is_ambiguous() {
        let err =
            Plan::new(header(&["phone", "Phone", "consent"]), &Mapping::default()).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::ValidationFailed);
    }

    #[test]
    fn rows_are_checked_in_order_and_duplicates_name_the_first_row() {
        let plan = Plan::new(
            header(&["phone", "name", "consent", "kota"]),
            &Mapping::default(),
        )
        .unwrap();
        let mut checker = Checker::new(plan, Region::ID);
        let row = |number: u32, cells: [&str; 4]| Row {
            number,
            cells: cells
                .iter()
                .map(|t| parse::Cell {
                    text: (*t).to_owned(),
                    formula: false,
                })
                .collect(),
        };
        let first = checker
            .check(&row(1, ["0812-3456-7890", "Budi", "ya", "Bandung"]))
            .unwrap();
        assert_eq!(first.phone, "+6281234567890");
        assert_eq!(first.name.as_deref(), Some("Budi"));
        assert_eq!(first.variables, r#"{"kota":"Bandung"}"#);
        for (cells, reason) in [
            (["+62 812 3456 7890", "Budi", "yes", ""], Reason::Duplicate),
            (["0813 1111 2222", "Siti", "tidak", ""], Reason::NoConsent),
            (
                ["0813 1111 2222", "Siti", "mungkin", ""],
                Reason::InvalidConsent,
            ),
            (["", "Siti", "ya", ""], Reason::EmptyPhone),
            (["021 5555 1234", "Kantor", "ya", ""], Reason::NotMobile),
            (["0813 1111 2222", "=1+1", "ya", ""], Reason::Formula),
            (
                ["0813 1111 2222", "Siti", "ya", &"x".repeat(1001)],
                Reason::CellTooLong,
            ),
        ] {
            assert_eq!(checker.check(&row(9, cells)), None);
            assert_eq!(checker.summary.rejected.last().unwrap().reason, reason);
        }
        let duplicate = &checker.summary.rejected[0];
        assert_eq!(duplicate.duplicate_of, Some(1));
        assert_eq!(duplicate.message, "the same number as row 1");
        let formula = &checker.summary.rejected[5];
        assert_eq!(formula.column.as_deref(), Some("name"));
        assert_eq!(formula.value, "=1+1");
        let long = checker.summary.rejected.last().unwrap();
        assert_eq!(long.value.chars().count(), MAX_SHOWN_CHARS + 1);
    }
}
