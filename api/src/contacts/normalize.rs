//! One cell at a time: phone numbers to E.164, consent answers, and the
//! checks that keep spreadsheet formulas and oversized cells out.
//!
//! Phone numbers are read by the domain's [`Phone`] (libphonenumber with a
//! default region, `is_valid`, mobile numbers only); what is added here is
//! how a cell becomes text (a numeric XLSX cell `6281234567890.0` is the
//! digits `6281234567890`, never `6.28E12`) and which stable reason a
//! refusal gets.

use serde::Serialize;
use utoipa::ToSchema;
use wablast_domain::types::phone::{Phone, PhoneError, Region};

/// The longest cell (in characters) a contact may carry; a longer one
/// rejects its row ([`Reason::CellTooLong`]).
pub const MAX_CELL_CHARS: usize = 1_000;

/// Why a row was not imported: a stable snake_case code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = RejectionReason)]
pub enum Reason {
    /// The phone cell is empty.
    EmptyPhone,
    /// Not a valid phone number (wrong length, unassigned range, junk).
    InvalidPhone,
    /// A valid number that is not a mobile one (landline, toll-free): no
    /// WhatsApp there.
    NotMobile,
    /// The same number as an earlier row (named in `duplicate_of`).
    Duplicate,
    /// Rows added to a list: the list already has a contact with this
    /// number (named in `existing_row`).
    AlreadyInList,
    /// The consent cell says no, or is empty.
    NoConsent,
    /// The consent cell is neither a yes nor a no.
    InvalidConsent,
    /// A spreadsheet formula (an XLSX formula cell, or text starting with
    /// `=` and the like): refused so that it can never run in someone's
    /// spreadsheet later (CSV injection).
    Formula,
    /// A cell longer than [`MAX_CELL_CHARS`].
    CellTooLong,
    /// A group participant whose number WhatsApp hides from the session
    /// (an `@lid` id): nobody can message them by number.
    NumberHidden,
}

impl Reason {
    /// A human explanation.
    pub fn message(self) -> &'static str {
        match self {
            Self::EmptyPhone => "the phone cell is empty",
            Self::InvalidPhone => "not a valid phone number",
            Self::NotMobile => "not a mobile number (landline or service number): no WhatsApp",
            Self::Duplicate => "the same number as an earlier row",
            Self::AlreadyInList => "the list already has this number",
            Self::NoConsent => "the contact has not consented to receive messages",
            Self::InvalidConsent => {
                "the consent cell is not one of yes/y/true/1/ya/iya/setuju or no/n/false/0/tidak"
            }
            Self::Formula => "a spreadsheet formula; type the value itself",
            Self::CellTooLong => "a cell is longer than 1000 characters",
            Self::NumberHidden => "WhatsApp hides this participant's number from the session",
        }
    }
}

/// Reads a phone cell as E.164 with `region` for national numbers.
pub fn phone(text: &str, region: Region) -> Result<Phone, Reason> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Reason::EmptyPhone);
    }
    Phone::parse(text, region).map_err(|err| match err {
        PhoneError::NotMobile { .. } => Reason::NotMobile,
        _ if looks_like_formula(text) => Reason::Formula,
        _ => Reason::InvalidPhone,
    })
}

/// Reads a consent cell: `Some(true)` for yes/y/true/1/ya/iya/setuju,
/// `Some(false)` for no/n/false/0/tidak/tdk/empty (case-insensitive,
/// trimmed), `None` for anything else.
pub fn consent(text: &str) -> Option<bool> {
    let text = text.trim().to_lowercase();
    match text.as_str() {
        "yes" | "y" | "true" | "1" | "ya" | "iya" | "setuju" => Some(true),
        "" | "no" | "n" | "false" | "0" | "tidak" | "tdk" => Some(false),
        _ => None,
    }
}

/// Whether a text cell would be taken for a formula by a spreadsheet it is
/// exported to: it starts with `=`; or with `+` or `-` followed by letters
/// or formula punctuation (`+cmd|' /C calc'!A0`, `-A1`; but not `-`, `-10%`
/// or `+62 812…`); or with `@` and has a call (`@SUM(A1)`, but not an
/// `@handle`).
pub fn looks_like_formula(text: &str) -> bool {
    let text = text.trim_start();
    let mut chars = text.chars();
    match chars.next() {
        Some('=') => true,
        Some('+' | '-') => chars
            .as_str()
            .chars()
            .any(|c| c.is_alphabetic() || "(=|!@\"'".contains(c)),
        Some('@') => text.contains('('),
        _ => false,
    }
}

/// The text of a numeric cell as a person would type it: integers without
/// a decimal point or exponent (`6281234567890`), other numbers as Rust
/// prints them (`12.5`).
pub fn number_text(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

/// Whether a cell is longer than [`MAX_CELL_CHARS`] characters (counted
/// cheaply: bytes first, characters only for the few long cells).
pub fn too_long(text: &str, max_chars: usize) -> bool {
    text.len() > max_chars && text.chars().count() > max_chars
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDI: &str = "+6281234567890";

    fn id(text: &str) -> Result<String, Reason> {
        phone(text, Region::ID).map(|p| p.to_string())
    }

    #[test]
    fn messy_indonesian_numbers_become_e164() {
        for text in [
            "0812-3456-7890",
            "+62 812 3456 7890",
            "62812 3456 7890",
            "812 3456 7890",
            "(0812) 34567890",
            "'081234567890",
            "'+6281234567890",
            " 0812 3456 7890 ",
            "6281234567890",
            &number_text(6281234567890.0),
            &number_text(81234567890.0),
        ] {
            assert_eq!(id(text), Ok(BUDI.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn refusals_get_stable_reasons() {
        assert_eq!(id(""), Err(Reason::EmptyPhone));
        assert_eq!(id("   "), Err(Reason::EmptyPhone));
        assert_eq!(id("12345"), Err(Reason::InvalidPhone));
        assert_eq!(id("0812 3456 789x"), Err(Reason::InvalidPhone));
        assert_eq!(id("+999"), Err(Reason::InvalidPhone));
        assert_eq!(id("021-5555-1234"), Err(Reason::NotMobile));
        assert_eq!(id("=HYPERLINK(\"http://x\")"), Err(Reason::Formula));
        assert_eq!(id("+cmd|' /C calc'!A0"), Err(Reason::Formula));
        assert_eq!(id("@SUM(A1:A2)"), Err(Reason::Formula));
        // A float written out by a spreadsheet is no number.
        assert_eq!(id("8.1234567890E+10"), Err(Reason::InvalidPhone));
    }

    #[test]
    fn other_regions_read_national_numbers() {
        let de = Region::parse("DE").unwrap();
        assert_eq!(
            phone("01512 3456789", de).map(|p| p.to_string()),
            Ok("+4915123456789".to_owned())
        );
        assert_eq!(
            phone("0812 3456 7890", de).map(|p| p.to_string()),
            Err(Reason::NotMobile)
        );
    }

    #[test]
    fn consent_answers_in_english_and_indonesian() {
        for yes in [
            "yes", "Y", "TRUE", "1", "ya", "Ya", "iya", "Setuju", " yes ",
        ] {
            assert_eq!(consent(yes), Some(true), "{yes:?}");
        }
        for no in ["no", "N", "false", "0", "tidak", "Tidak", "tdk", "", "  "] {
            assert_eq!(consent(no), Some(false), "{no:?}");
        }
        for junk in ["maybe", "2", "yess", "nanti", "x"] {
            assert_eq!(consent(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn formulas_are_told_from_ordinary_text() {
        for formula in [
            "=1+1",
            " =A1",
            "+A1",
            "-A1",
            "-2+3*cmd|x",
            "+cmd|' /C calc'!A0",
            "@SUM(A1)",
            "=HYPERLINK(\"http://evil\",\"klik\")",
        ] {
            assert!(looks_like_formula(formula), "{formula:?}");
        }
        for text in [
            "Budi",
            "-",
            "-10%",
            "+62 812 3456 7890",
            "-5",
            "@budi",
            "Rp 10.000",
            "",
        ] {
            assert!(!looks_like_formula(text), "{text:?}");
        }
    }

    #[test]
    fn numbers_print_without_exponent_or_decimals() {
        assert_eq!(number_text(6281234567890.0), "6281234567890");
        assert_eq!(number_text(81234567890.0), "81234567890");
        assert_eq!(number_text(1.0), "1");
        assert_eq!(number_text(0.0), "0");
        assert_eq!(number_text(12.5), "12.5");
        assert_eq!(number_text(-3.0), "-3");
    }

    #[test]
    fn long_cells_are_counted_in_characters() {
        assert!(!too_long(&"é".repeat(1000), MAX_CELL_CHARS));
        assert!(too_long(&"é".repeat(1001), MAX_CELL_CHARS));
        assert!(too_long(&"a".repeat(1001), MAX_CELL_CHARS));
        assert!(!too_long("", MAX_CELL_CHARS));
    }
}
