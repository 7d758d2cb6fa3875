//! Uploaded media: what a file is (decided from its content, not its
//! name), where its bytes are kept ([`storage`]), and the `media` table.
//!
//! # Layout
//!
//! - [`MediaType`]: the kinds we accept and how each is recognised.
//! - [`display_name`]: the uploaded file name, made safe to show.
//! - [`storage`]: [`storage::MediaStorage`] and its local filesystem
//!   implementation.
//! - [`MediaRow`], [`insert`], [`find`]: the metadata.

pub mod storage;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use storage::{LocalStorage, MediaStorage};

/// Largest upload: 10 MiB.
pub const MAX_SIZE: usize = 10 * 1024 * 1024;

/// A kind of file we accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// PDF document.
    Pdf,
    /// Word 97-2003 document (OLE2 compound file).
    Doc,
    /// Word document (Office Open XML).
    Docx,
    /// Excel 97-2003 workbook (OLE2 compound file).
    Xls,
    /// Excel workbook (Office Open XML).
    Xlsx,
    /// MP4 video (what a template's video header shows).
    Mp4,
}

const DOCX_MIME: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX_MIME: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

impl MediaType {
    /// Every accepted kind.
    pub const ALL: [Self; 8] = [
        Self::Png,
        Self::Jpeg,
        Self::Pdf,
        Self::Doc,
        Self::Docx,
        Self::Xls,
        Self::Xlsx,
        Self::Mp4,
    ];

    /// Its MIME type.
    pub fn mime_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Pdf => "application/pdf",
            Self::Doc => "application/msword",
            Self::Docx => DOCX_MIME,
            Self::Xls => "application/vnd.ms-excel",
            Self::Xlsx => XLSX_MIME,
            Self::Mp4 => "video/mp4",
        }
    }

    /// File name extensions it goes by (the first is the usual one).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Png => &["png"],
            Self::Jpeg => &["jpg", "jpeg"],
            Self::Pdf => &["pdf"],
            Self::Doc => &["doc"],
            Self::Docx => &["docx"],
            Self::Xls => &["xls"],
            Self::Xlsx => &["xlsx"],
            Self::Mp4 => &["mp4"],
        }
    }

    /// Short human name.
    pub fn label(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Pdf => "PDF",
            Self::Doc => "DOC",
            Self::Docx => "DOCX",
            Self::Xls => "XLS",
            Self::Xlsx => "XLSX",
            Self::Mp4 => "MP4",
        }
    }

    /// The kind a file name's extension claims, if it is one we accept.
    pub fn from_extension(extension: &str) -> Option<Self> {
        let extension = extension.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|kind| kind.extensions().contains(&extension.as_str()))
    }

    /// What `content` is, judged from its bytes alone.
    ///
    /// Magic numbers come from `infer`. OLE2 compound files are told apart
    /// by their root entry's class id (as Word and Excel write it: `infer`
    /// parses the compound file). Office Open XML files are zip archives:
    /// `infer` guesses from the order of the first entries, which not every
    /// writer follows, so a zip is decided by the entries its central
    /// directory lists (`word/document.xml`, `xl/workbook.xml`).
    pub fn detect(content: &[u8]) -> Option<Self> {
        let inferred = infer::get(content).map(|kind| kind.mime_type());
        match inferred? {
            "image/png" => Some(Self::Png),
            "image/jpeg" => Some(Self::Jpeg),
            "application/pdf" => Some(Self::Pdf),
            "application/msword" => Some(Self::Doc),
            "application/vnd.ms-excel" => Some(Self::Xls),
            "video/mp4" => Some(Self::Mp4),
            mime @ (DOCX_MIME | XLSX_MIME | "application/zip") => {
                ooxml_kind(content).or(match mime {
                    DOCX_MIME => Some(Self::Docx),
                    XLSX_MIME => Some(Self::Xlsx),
                    _ => None,
                })
            }
            _ => None,
        }
    }
}

/// Why a file is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// The content is none of the accepted kinds.
    #[error(
        "the file is not a PNG, JPEG, PDF, DOC, DOCX, XLS, XLSX or MP4 (judged from its content)"
    )]
    Content,
    /// The name's extension is not one of the accepted kinds.
    #[error(
        "files named .{0} are not accepted; send a PNG, JPEG, PDF, DOC, DOCX, XLS, XLSX or MP4"
    )]
    Extension(String),
    /// The content and the name disagree.
    #[error("the content is {content} but the name ends in .{extension}")]
    Mismatch {
        /// What the content is.
        content: &'static str,
        /// What the name says.
        extension: String,
    },
}

/// What an upload named `filename` with `content` is: its content decides,
/// and its name's extension, if it has one, must agree.
pub fn classify(filename: &str, content: &[u8]) -> Result<MediaType, Unsupported> {
    let extension = extension(filename);
    let claimed = match extension {
        Some(extension) => Some(
            MediaType::from_extension(extension)
                .ok_or_else(|| Unsupported::Extension(extension.to_owned()))?,
        ),
        None => None,
    };
    let detected = MediaType::detect(content).ok_or(Unsupported::Content)?;
    match claimed {
        Some(claimed) if claimed != detected => Err(Unsupported::Mismatch {
            content: detected.label(),
            extension: extension.unwrap_or_default().to_owned(),
        }),
        _ => Ok(detected),
    }
}

fn extension(filename: &str) -> Option<&str> {
    let (stem, extension) = filename.rsplit_once('.')?;
    (!stem.is_empty() && !extension.is_empty()).then_some(extension)
}

/// Most characters of a displayed file name.
const MAX_NAME_CHARS: usize = 200;

/// The uploaded file name made safe to show and to put in a
/// `Content-Disposition`: no directories, no control characters, trimmed,
/// at most 200 characters (keeping the extension). Empty when nothing is
/// left. It never names a file on disk.
pub fn display_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return cleaned.to_owned();
    }
    let extension = match cleaned.rsplit_once('.') {
        Some((_, extension)) if extension.chars().count() <= 10 => extension,
        _ => "",
    };
    let keep = MAX_NAME_CHARS - extension.chars().count() - usize::from(!extension.is_empty());
    let stem: String = cleaned.chars().take(keep).collect();
    if extension.is_empty() {
        stem
    } else {
        format!("{stem}.{extension}")
    }
}

/// The kind of an Office Open XML package, from the entries its zip central
/// directory lists; `None` for any other zip (or no readable directory).
fn ooxml_kind(content: &[u8]) -> Option<MediaType> {
    let names = zip_entry_names(content)?;
    if !names.contains(&b"[Content_Types].xml".as_slice()) {
        return None;
    }
    if names.contains(&b"word/document.xml".as_slice()) {
        Some(MediaType::Docx)
    } else if names.contains(&b"xl/workbook.xml".as_slice()) {
        Some(MediaType::Xlsx)
    } else {
        None
    }
}

/// The entry names of a zip archive, read from its central directory
/// (APPNOTE.TXT 4.3.12 and 4.3.16; zip64 is not needed below 10 MiB).
fn zip_entry_names(content: &[u8]) -> Option<Vec<&[u8]>> {
    const END_OF_DIRECTORY: [u8; 4] = *b"PK\x05\x06";
    const DIRECTORY_ENTRY: [u8; 4] = *b"PK\x01\x02";
    let u16_at = |at: usize| -> Option<usize> {
        Some(u16::from_le_bytes(content.get(at..at + 2)?.try_into().ok()?).into())
    };
    let u32_at = |at: usize| -> Option<usize> {
        usize::try_from(u32::from_le_bytes(
            content.get(at..at + 4)?.try_into().ok()?,
        ))
        .ok()
    };
    // The end record is 22 bytes plus a comment of at most 65,535.
    let last = content.len().checked_sub(22)?;
    let first = last.saturating_sub(u16::MAX.into());
    let end = (first..=last)
        .rev()
        .find(|&at| content[at..at + 4] == END_OF_DIRECTORY)?;
    let entries = u16_at(end + 10)?;
    let mut at = u32_at(end + 16)?;
    let mut names = Vec::with_capacity(entries);
    for _ in 0..entries {
        if content.get(at..at + 4)? != DIRECTORY_ENTRY {
            return None;
        }
        let name_length = u16_at(at + 28)?;
        let extra_length = u16_at(at + 30)?;
        let comment_length = u16_at(at + 32)?;
        names.push(content.get(at + 46..at + 46 + name_length)?);
        at += 46 + name_length + extra_length + comment_length;
    }
    Some(names)
}

/// A medium as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MediaRow {
    /// Its id.
    pub id: Uuid,
    /// Whose it is.
    pub tenant_id: Uuid,
    /// The uploaded name, sanitised.
    pub filename: String,
    /// Detected from the content.
    pub mime_type: String,
    /// Bytes.
    pub size: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Where the storage keeps it.
    pub storage_key: String,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// Records a stored medium.
pub async fn insert(db: &sqlx::PgPool, row: &MediaRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into media (id, tenant_id, filename, mime_type, size, sha256, storage_key, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(row.id)
    .bind(row.tenant_id)
    .bind(&row.filename)
    .bind(&row.mime_type)
    .bind(row.size)
    .bind(&row.sha256)
    .bind(&row.storage_key)
    .bind(row.created_at)
    .execute(db)
    .await?;
    Ok(())
}

/// A tenant's medium; `None` when there is no such medium in this tenant.
pub async fn find(
    db: &sqlx::PgPool,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<MediaRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, tenant_id, filename, mime_type, size, sha256, storage_key, created_at
         from media where tenant_id = $1 and id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

/// 404 (naming the field `media_id`) unless the tenant has this medium:
/// what a campaign or an auto-reply that attaches one checks first.
pub async fn require(
    db: &sqlx::PgPool,
    tenant_id: Uuid,
    id: Option<Uuid>,
) -> Result<(), crate::ApiError> {
    let Some(id) = id else {
        return Ok(());
    };
    match find(db, tenant_id, id).await? {
        Some(_) => Ok(()),
        None => Err(crate::ApiError::not_found("medium")
            .with_details(serde_json::json!({"field": "media_id", "id": id}))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 13]);
        bytes.extend_from_slice(b"IHDR");
        bytes.extend_from_slice(&[0; 17]);
        bytes
    }

    /// A stored (uncompressed) zip with these entries, as a writer that puts
    /// the content types last would write it.
    fn zip(entries: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut directory = Vec::new();
        for name in entries {
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&[0; 12]); // crc, sizes: empty entries
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            directory.extend_from_slice(b"PK\x01\x02");
            directory.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            directory.extend_from_slice(&[0; 12]);
            directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
            directory.extend_from_slice(&[0; 12]);
            directory.extend_from_slice(&offset.to_le_bytes());
            directory.extend_from_slice(name.as_bytes());
        }
        let start = out.len() as u32;
        out.extend_from_slice(&directory);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn content_decides_and_the_extension_must_agree() {
        assert_eq!(classify("logo.png", &png()), Ok(MediaType::Png));
        assert_eq!(classify("LOGO.PNG", &png()), Ok(MediaType::Png));
        assert_eq!(classify("logo", &png()), Ok(MediaType::Png));
        assert_eq!(
            classify("logo.pdf", &png()),
            Err(Unsupported::Mismatch {
                content: "PNG",
                extension: "pdf".into()
            })
        );
        assert_eq!(
            classify("logo.exe", &png()),
            Err(Unsupported::Extension("exe".into()))
        );
        assert_eq!(
            classify("notes.pdf", b"just some text"),
            Err(Unsupported::Content)
        );
        assert_eq!(
            classify("a.jpeg", &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            Ok(MediaType::Jpeg)
        );
        // An MP4 begins with its `ftyp` box.
        let mp4 = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom";
        assert_eq!(classify("promo.mp4", mp4), Ok(MediaType::Mp4));
        assert_eq!(MediaType::Mp4.mime_type(), "video/mp4");
    }

    #[test]
    fn office_packages_are_told_apart_by_their_entries_whatever_their_order() {
        let docx = zip(&["word/document.xml", "_rels/.rels", "[Content_Types].xml"]);
        let xlsx = zip(&["xl/workbook.xml", "[Content_Types].xml"]);
        assert_eq!(MediaType::detect(&docx), Some(MediaType::Docx));
        assert_eq!(MediaType::detect(&xlsx), Some(MediaType::Xlsx));
        assert_eq!(MediaType::detect(&zip(&["a.txt", "b.txt"])), None);
        assert_eq!(
            classify("report.docx", &xlsx),
            Err(Unsupported::Mismatch {
                content: "XLSX",
                extension: "docx".into()
            })
        );
    }

    #[test]
    fn a_real_xlsx_is_an_xlsx() {
        let mut workbook = rust_xlsxwriter::Workbook::new();
        workbook
            .add_worksheet()
            .write_string(0, 0, "phone")
            .unwrap();
        let bytes = workbook.save_to_buffer().unwrap();
        assert_eq!(MediaType::detect(&bytes), Some(MediaType::Xlsx));
    }

    /// A minimal OLE2 compound file (MS-CFB version 3, 512-byte sectors):
    /// the header, one FAT sector and one directory sector holding only the
    /// root entry, whose class id says which application wrote it.
    fn compound_file(class_id: [u8; 16]) -> Vec<u8> {
        const FREE: u32 = 0xFFFF_FFFF;
        const END_OF_CHAIN: u32 = 0xFFFF_FFFE;
        const FAT_SECTOR: u32 = 0xFFFF_FFFD;
        let mut header = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        header.extend_from_slice(&[0; 16]);
        for half in [0x003E_u16, 3, 0xFFFE, 9, 6] {
            header.extend_from_slice(&half.to_le_bytes());
        }
        header.extend_from_slice(&[0; 6]);
        for word in [0, 1, 1, 0, 4096, END_OF_CHAIN, 0, END_OF_CHAIN, 0, 0] {
            header.extend_from_slice(&u32::to_le_bytes(word));
        }
        for _ in 1..109 {
            header.extend_from_slice(&FREE.to_le_bytes());
        }
        let mut fat = Vec::new();
        for word in [FAT_SECTOR, END_OF_CHAIN] {
            fat.extend_from_slice(&u32::to_le_bytes(word));
        }
        fat.resize(512, 0xFF);
        let mut root = vec![0; 128];
        for (i, unit) in "Root Entry".encode_utf16().enumerate() {
            root[2 * i..2 * i + 2].copy_from_slice(&unit.to_le_bytes());
        }
        root[64..66].copy_from_slice(&22u16.to_le_bytes());
        root[66] = 5; // root storage
        root[67] = 1; // black
        root[68..80].fill(0xFF); // no siblings, no children
        root[80..96].copy_from_slice(&class_id);
        root[116..120].copy_from_slice(&END_OF_CHAIN.to_le_bytes());
        let mut directory = root;
        for _ in 0..3 {
            let mut unused = vec![0; 128];
            unused[68..80].fill(0xFF);
            directory.extend_from_slice(&unused);
        }
        [header, fat, directory].concat()
    }

    #[test]
    fn compound_files_are_told_apart_by_their_class_id() {
        // {00020906-0000-0000-C000-000000000046}, as stored (little-endian
        // fields): Word; {00020820-...}: Excel.
        let word = [6, 9, 2, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46];
        let excel = [0x20, 8, 2, 0, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46];
        assert_eq!(
            MediaType::detect(&compound_file(word)),
            Some(MediaType::Doc)
        );
        assert_eq!(
            MediaType::detect(&compound_file(excel)),
            Some(MediaType::Xls)
        );
        assert_eq!(MediaType::detect(&compound_file([0; 16])), None);
    }

    #[test]
    fn an_ole2_header_alone_is_not_a_document() {
        let mut bytes = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        bytes.resize(1024, 0);
        assert_eq!(MediaType::detect(&bytes), None);
    }

    #[test]
    fn display_names_lose_directories_and_control_characters() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("C:\\Users\\budi\\promo.png"), "promo.png");
        assert_eq!(display_name(" bad\r\nname\".pdf "), "badname.pdf");
        assert_eq!(display_name("/"), "");
        let long = format!("{}.docx", "a".repeat(500));
        let shown = display_name(&long);
        assert_eq!(shown.chars().count(), 200);
        assert!(shown.ends_with(".docx"));
    }
}
