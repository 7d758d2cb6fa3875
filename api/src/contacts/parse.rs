//! Reading a contact file row by row: what it is (from its content, not
//! only its name), its header, then its rows, without holding the whole
//! file as strings.
//!
//! - CSV: UTF-8 (with or without a BOM); the delimiter (`,`, `;` or tab,
//!   as Excel writes it in locales with a decimal comma) is sniffed from
//!   the header line; streamed record by record with the `csv` crate.
//! - XLSX: the first sheet, streamed cell by cell with calamine's cell
//!   reader (the shared strings table is in memory: bounded by the upload
//!   limit). Formula cells are flagged so that the row can be refused.
//!
//! The header is the first row with a non-empty cell. The sources give
//! every row after it, blank ones included; the importer skips the blank
//! ones and numbers the others ([`Row::number`]: 1 = the first non-blank
//! row after the header, in both formats).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx, XlsxCellReader};
use csv::StringRecord;

use super::normalize::number_text;
use crate::{ApiError, ErrorCode};

/// The longest cell a file may hold at all (Excel's own limit): a longer
/// one means the file is not a contact list, and it is refused whole.
pub const MAX_FILE_CELL_BYTES: usize = 32_767 * 4;

/// The most columns a header may have.
pub const MAX_COLUMNS: usize = 1_000;

/// How much of the file is looked at to tell what it is.
const SNIFF_BYTES: usize = 8 * 1024;

/// What a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-, semicolon- or tab-separated text.
    Csv,
    /// An Office Open XML workbook.
    Xlsx,
}

/// 400 `unsupported_file`.
pub fn unsupported(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::UnsupportedFile, message)
}

/// Tells what a file is from its first bytes and its name. The content
/// decides; a name, when it has an extension, must be `.csv` or `.xlsx`
/// (`.txt` and `.tsv` pass for CSV, as Excel names tab-separated exports)
/// and agree with it.
pub fn sniff(head: &[u8], filename: Option<&str>) -> Result<Format, ApiError> {
    let extension = filename
        .and_then(|name| Path::new(name).extension())
        .map(|ext| ext.to_string_lossy().to_lowercase());
    match extension.as_deref() {
        None | Some("csv" | "xlsx" | "txt" | "tsv") => {}
        Some("xls") => {
            return Err(unsupported(
                "old Excel .xls files are not supported: save the sheet as .xlsx or CSV UTF-8",
            ));
        }
        Some(other) => {
            return Err(unsupported(format!(
                "a .{other} file cannot be imported: send a .csv or .xlsx file"
            )));
        }
    }
    if head.is_empty() {
        return Err(unsupported("the file is empty"));
    }
    let format = if infer::archive::is_zip(head) || infer::doc::is_xlsx(head) {
        Format::Xlsx
    } else if infer::doc::is_xls(head) {
        return Err(unsupported(
            "old Excel .xls files are not supported: save the sheet as .xlsx or CSV UTF-8",
        ));
    } else if let Some(kind) = infer::get(head) {
        return Err(unsupported(format!(
            "the file is {} ({}), not a CSV or XLSX file",
            kind.mime_type(),
            kind.extension()
        )));
    } else if looks_like_text(head) {
        Format::Csv
    } else {
        return Err(unsupported(
            "the file is neither UTF-8 text nor an XLSX workbook: save it as CSV UTF-8 or .xlsx",
        ));
    };
    match (extension.as_deref(), format) {
        (Some("xlsx"), Format::Csv) => Err(unsupported(
            "the file is named .xlsx but is text, not a workbook",
        )),
        (Some("csv" | "txt" | "tsv"), Format::Xlsx) => Err(unsupported(
            "the file is named .csv but is a zip archive (an XLSX workbook?): name it .xlsx",
        )),
        _ => Ok(format),
    }
}

/// UTF-8 (a character cut at the end of the sample is fine) without NUL
/// bytes.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(err) => err.error_len().is_none() && head.len() - err.valid_up_to() < 4,
    }
}

/// Reads the first bytes of a file, then rewinds it.
pub fn head(file: &mut File) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    file.by_ref()
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(head)
}

/// One cell of a row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// Its text, trimmed (numbers as typed: `6281234567890`).
    pub text: String,
    /// Whether it is an XLSX formula cell (`text` is then its cached value).
    pub formula: bool,
}

/// One data row: its number and a cell per header column.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// Which data row it is (1 = the first non-blank row after the header).
    pub number: u32,
    /// One per header column, in header order.
    pub cells: Vec<Cell>,
}

impl Row {
    fn reset(&mut self, width: usize) {
        self.cells.resize_with(width, Cell::default);
        for cell in &mut self.cells {
            cell.text.clear();
            cell.formula = false;
        }
    }

    /// Whether every cell is empty.
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|cell| cell.text.is_empty())
    }
}

/// A file's rows, read one at a time.
pub trait Rows {
    /// The header (the first non-empty row), trimmed; `None` for a file
    /// with no non-empty row at all.
    fn header(&mut self) -> Result<Option<Vec<String>>, ApiError>;

    /// Reads the next data row into `row`; `false` at the end.
    fn next_row(&mut self, row: &mut Row) -> Result<bool, ApiError>;
}

fn check_header(header: &[String]) -> Result<(), ApiError> {
    if header.len() > MAX_COLUMNS {
        return Err(unsupported(format!(
            "the header has {} columns; at most {MAX_COLUMNS}",
            header.len()
        )));
    }
    Ok(())
}

/// `place` is where, as the user finds it: `line 12`, `sheet row 12`.
fn huge_cell(place: &str) -> ApiError {
    unsupported(format!(
        "{place} has a cell longer than any spreadsheet cell can be: this is not a contact list"
    ))
}

/// A CSV file's rows.
pub struct CsvRows {
    reader: csv::Reader<BufReader<File>>,
    record: StringRecord,
    width: usize,
}

impl CsvRows {
    /// Opens a CSV file whose first bytes are `head`: skips a BOM, sniffs
    /// the delimiter.
    pub fn open(mut file: File, head: &[u8]) -> Result<Self, ApiError> {
        let bom = head.starts_with(b"\xEF\xBB\xBF");
        if bom {
            file.seek(SeekFrom::Start(3)).map_err(ApiError::internal)?;
        }
        let head = if bom { &head[3..] } else { head };
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter(head))
            .from_reader(BufReader::with_capacity(64 * 1024, file));
        Ok(Self {
            reader,
            record: StringRecord::new(),
            width: 0,
        })
    }

    fn read(&mut self) -> Result<bool, ApiError> {
        self.reader
            .read_record(&mut self.record)
            .map_err(|err| csv_error(&err))
    }
}

/// The delimiter of the first line: whichever of `,`, `;` and tab occurs
/// most outside quotes (`,` when none does).
pub fn delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &byte in head {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

fn csv_error(err: &csv::Error) -> ApiError {
    let line = err.position().map(|p| p.line()).unwrap_or(0);
    match err.kind() {
        csv::ErrorKind::Utf8 { .. } => unsupported(format!(
            "line {line} is not UTF-8 text: save the file as CSV UTF-8"
        )),
        csv::ErrorKind::Io(io) => ApiError::internal(io),
        _ => unsupported(format!("the CSV file cannot be read: {err}")),
    }
}

impl Rows for CsvRows {
    fn header(&mut self) -> Result<Option<Vec<String>>, ApiError> {
        while self.read()? {
            if self.record.iter().any(|field| !field.trim().is_empty()) {
                if self.record.iter().any(|f| f.len() > MAX_FILE_CELL_BYTES) {
                    return Err(huge_cell("the header"));
                }
                let header: Vec<String> = self.record.iter().map(|f| f.trim().to_owned()).collect();
                check_header(&header)?;
                self.width = header.len();
                return Ok(Some(header));
            }
        }
        Ok(None)
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool, ApiError> {
        if !self.read()? {
            return Ok(false);
        }
        if self.record.iter().any(|f| f.len() > MAX_FILE_CELL_BYTES) {
            let line = self.record.position().map_or(0, |p| p.line());
            return Err(huge_cell(&format!("line {line}")));
        }
        row.reset(self.width);
        for (cell, field) in row.cells.iter_mut().zip(self.record.iter()) {
            cell.text.push_str(field.trim());
        }
        Ok(true)
    }
}

/// Opens an XLSX workbook (refusing what calamine cannot read, and zip
/// bombs: see [`check_expansion`]).
pub fn open_xlsx(mut file: File) -> Result<Xlsx<BufReader<File>>, ApiError> {
    check_expansion(&mut file)?;
    file.seek(SeekFrom::Start(0)).map_err(ApiError::internal)?;
    Xlsx::new(BufReader::with_capacity(64 * 1024, file))
        .map_err(|err| unsupported(format!("not a readable XLSX workbook: {err}")))
}

/// The most a workbook may expand to, all parts together.
pub const MAX_XLSX_EXPANDED: u64 = 1024 * 1024 * 1024;

/// The most its shared strings may expand to (calamine holds them in
/// memory; the sheets themselves are streamed).
pub const MAX_XLSX_SHARED_STRINGS: u64 = 256 * 1024 * 1024;

/// Refuses a workbook whose zip directory announces more than
/// [`MAX_XLSX_EXPANDED`] bytes, or shared strings above
/// [`MAX_XLSX_SHARED_STRINGS`], before anything is decompressed: a few MB
/// of zip can expand to gigabytes. Zip64 (only needed above 4 GB) is
/// refused too.
pub fn check_expansion(file: &mut (impl Read + Seek)) -> Result<(), ApiError> {
    let not_a_zip = || unsupported("not a readable XLSX workbook: no zip directory");
    let too_big = || {
        unsupported(format!(
            "the workbook expands to more than {} MB: split it, or save it as CSV",
            MAX_XLSX_EXPANDED / 1024 / 1024
        ))
    };
    let len = file.seek(SeekFrom::End(0)).map_err(ApiError::internal)?;
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(ApiError::internal)?;
    let mut tail = vec![0; tail_len as usize];
    file.read_exact(&mut tail).map_err(ApiError::internal)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(not_a_zip)?;
    let u16_at = |b: &[u8], i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let u32_at =
        |b: &[u8], i: usize| u64::from(u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let entries = u16_at(&tail, eocd + 10);
    let size = u32_at(&tail, eocd + 12);
    let offset = u32_at(&tail, eocd + 16);
    if entries == 0xFFFF || size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        return Err(too_big());
    }
    if offset + size > len {
        return Err(not_a_zip());
    }
    let mut directory = vec![0; size as usize];
    file.seek(SeekFrom::Start(offset))
        .map_err(ApiError::internal)?;
    file.read_exact(&mut directory)
        .map_err(ApiError::internal)?;
    let (mut at, mut total) = (0usize, 0u64);
    for _ in 0..entries {
        if directory.len() < at + 46 || !directory[at..].starts_with(b"PK\x01\x02") {
            return Err(not_a_zip());
        }
        let expanded = u32_at(&directory, at + 24);
        let name_len = u16_at(&directory, at + 28) as usize;
        let extra_len = u16_at(&directory, at + 30) as usize;
        let comment_len = u16_at(&directory, at + 32) as usize;
        let name = directory
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(not_a_zip)?;
        if expanded == 0xFFFF_FFFF {
            return Err(too_big());
        }
        if name.eq_ignore_ascii_case(b"xl/sharedStrings.xml") && expanded > MAX_XLSX_SHARED_STRINGS
        {
            return Err(too_big());
        }
        total += expanded;
        if total > MAX_XLSX_EXPANDED {
            return Err(too_big());
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(())
}

/// A cell and its `(row, column)` in the sheet.
type Positioned = ((u32, u32), Cell);

/// A sheet row's index and its `(column, cell)` pairs.
type SheetRow = (u32, Vec<(u32, Cell)>);

/// The first sheet's rows of a workbook.
pub struct XlsxRows<'a> {
    cells: XlsxCellReader<'a, BufReader<File>>,
    pending: Option<Positioned>,
    done: bool,
    width: usize,
}

impl<'a> XlsxRows<'a> {
    /// The rows of the first sheet.
    pub fn first_sheet(workbook: &'a mut Xlsx<BufReader<File>>) -> Result<Self, ApiError> {
        let Some(sheet) = workbook.sheet_names().first().cloned() else {
            return Err(unsupported("the workbook has no sheet"));
        };
        let cells = workbook
            .worksheet_cells_reader(&sheet)
            .map_err(|err| unsupported(format!("the sheet {sheet:?} cannot be read: {err}")))?;
        Ok(Self {
            cells,
            pending: None,
            done: false,
            width: 0,
        })
    }

    fn next_cell(&mut self) -> Result<Option<Positioned>, ApiError> {
        if let Some(pending) = self.pending.take() {
            return Ok(Some(pending));
        }
        if self.done {
            return Ok(None);
        }
        let Some(record) = self
            .cells
            .next_cell_with_formula_metadata()
            .map_err(|err| unsupported(format!("the sheet cannot be read: {err}")))?
        else {
            // The reader must not be asked again past the end of the sheet.
            self.done = true;
            return Ok(None);
        };
        let text = match record.value {
            DataRef::Empty => String::new(),
            DataRef::String(s) => s.trim().to_owned(),
            DataRef::SharedString(s) => s.trim().to_owned(),
            DataRef::Int(i) => i.to_string(),
            DataRef::Float(f) => number_text(f),
            DataRef::Bool(b) => b.to_string(),
            DataRef::DateTime(dt) => {
                let (y, mo, d, h, mi, s, _) = dt.to_ymd_hms_milli();
                if (h, mi, s) == (0, 0, 0) {
                    format!("{y:04}-{mo:02}-{d:02}")
                } else {
                    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
                }
            }
            DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s,
            DataRef::Error(err) => err.to_string(),
        };
        if text.len() > MAX_FILE_CELL_BYTES {
            return Err(huge_cell(&format!("sheet row {}", record.pos.0 + 1)));
        }
        Ok(Some((
            record.pos,
            Cell {
                text,
                formula: record.formula.is_some(),
            },
        )))
    }

    /// The cells of the next sheet row that has any: its row index and
    /// `(column, cell)` pairs.
    fn next_sheet_row(&mut self) -> Result<Option<SheetRow>, ApiError> {
        let Some(((row, col), cell)) = self.next_cell()? else {
            return Ok(None);
        };
        let mut cells = vec![(col, cell)];
        while let Some(((r, c), cell)) = self.next_cell()? {
            if r != row {
                self.pending = Some(((r, c), cell));
                break;
            }
            cells.push((c, cell));
        }
        Ok(Some((row, cells)))
    }
}

impl Rows for XlsxRows<'_> {
    fn header(&mut self) -> Result<Option<Vec<String>>, ApiError> {
        while let Some((_, cells)) = self.next_sheet_row()? {
            if cells.iter().all(|(_, cell)| cell.text.is_empty()) {
                continue;
            }
            let width = cells
                .iter()
                .filter(|(_, cell)| !cell.text.is_empty())
                .map(|&(col, _)| col as usize + 1)
                .max()
                .unwrap_or(0);
            if width > MAX_COLUMNS {
                return Err(unsupported(format!(
                    "the header has {width} columns; at most {MAX_COLUMNS}"
                )));
            }
            let mut header = vec![String::new(); width];
            for (col, cell) in cells {
                if let Some(slot) = header.get_mut(col as usize) {
                    *slot = cell.text;
                }
            }
            check_header(&header)?;
            self.width = width;
            return Ok(Some(header));
        }
        Ok(None)
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool, ApiError> {
        let Some((_, cells)) = self.next_sheet_row()? else {
            return Ok(false);
        };
        row.reset(self.width);
        for (col, cell) in cells {
            if let Some(slot) = row.cells.get_mut(col as usize) {
                *slot = cell;
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_and_the_name_must_agree() {
        let csv = b"phone,name\n0812,Budi\n";
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
        let zip = b"PK\x03\x04\x14\0\0\0\x08\0";
        assert_eq!(sniff(csv, Some("kontak.csv")).unwrap(), Format::Csv);
        assert_eq!(sniff(csv, Some("KONTAK.CSV")).unwrap(), Format::Csv);
        assert_eq!(sniff(csv, None).unwrap(), Format::Csv);
        assert_eq!(sniff(zip, Some("kontak.xlsx")).unwrap(), Format::Xlsx);
        assert_eq!(sniff(zip, None).unwrap(), Format::Xlsx);
        for (head, name) in [
            (&png[..], Some("kontak.csv")),
            (&png[..], None),
            (&zip[..], Some("kontak.csv")),
            (&csv[..], Some("kontak.xlsx")),
            (&csv[..], Some("kontak.png")),
            (&csv[..], Some("kontak.xls")),
            (&b""[..], Some("kontak.csv")),
            (&b"\xff\xfe\x00p\x00h"[..], Some("kontak.csv")),
            (&b"nama,telp\nJos\xe9,0812\n"[..], Some("kontak.csv")),
        ] {
            let err = sniff(head, name).unwrap_err();
            assert_eq!(err.code(), crate::ErrorCode::UnsupportedFile, "{name:?}");
        }
    }

    #[test]
    fn a_utf8_character_cut_by_the_sample_is_still_text() {
        let text = "nama\nBudi é".as_bytes();
        assert!(looks_like_text(&text[..text.len() - 1]));
        assert!(!looks_like_text(b"a\0b"));
    }

    /// A zip holding only a central directory that announces one entry of
    /// `expanded` bytes named `name`.
    fn zip_directory(name: &str, expanded: u32) -> Vec<u8> {
        let mut directory = b"PK\x01\x02".to_vec();
        directory.extend_from_slice(&[0; 20]);
        directory.extend_from_slice(&expanded.to_le_bytes());
        directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
        directory.extend_from_slice(&[0; 16]);
        directory.extend_from_slice(name.as_bytes());
        let mut zip = b"PK\x03\x04 local data".to_vec();
        let offset = zip.len() as u32;
        zip.extend_from_slice(&directory);
        zip.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
        zip.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        zip.extend_from_slice(&offset.to_le_bytes());
        zip.extend_from_slice(&[0, 0]);
        zip
    }

    #[test]
    fn zip_bombs_are_refused_before_decompressing() {
        let check = |zip: Vec<u8>| check_expansion(&mut std::io::Cursor::new(zip));
        assert!(check(zip_directory("xl/worksheets/sheet1.xml", 10_000_000)).is_ok());
        for zip in [
            zip_directory("xl/sharedStrings.xml", 300 * 1024 * 1024),
            zip_directory("xl/worksheets/sheet1.xml", 0xFFFF_FFFE),
            zip_directory("xl/worksheets/sheet1.xml", 0xFFFF_FFFF),
        ] {
            assert_eq!(
                check(zip).unwrap_err().code(),
                crate::ErrorCode::UnsupportedFile
            );
        }
        assert!(check(b"PK\x03\x04 no directory".to_vec()).is_err());
        let mut workbook = rust_xlsxwriter::Workbook::new();
        workbook
            .add_worksheet()
            .write_string(0, 0, "phone")
            .unwrap();
        assert!(check(workbook.save_to_buffer().unwrap()).is_ok());
    }

    #[test]
    fn the_delimiter_is_sniffed_from_the_header_line() {
        assert_eq!(delimiter(b"phone,name,consent\n"), b',');
        assert_eq!(delimiter(b"phone;name;consent\r\n0812,5;x"), b';');
        assert_eq!(delimiter(b"phone\tname\n"), b'\t');
        assert_eq!(delimiter(b"\"a;b\",c\n"), b',');
        assert_eq!(delimiter(b"phone\n0812;x;y;z"), b',');
    }
}
