//! Phone numbers of WhatsApp recipients and senders, in E.164.
//!
//! Parsing is libphonenumber's (the `phonenumber` crate, metadata 9.0.33);
//! the only thing added on top is trimming the input, checking `is_valid`
//! (the parser alone accepts junk like `12345`) and requiring a mobile
//! number type, because WhatsApp accounts live on mobile numbers.
//!
//! What libphonenumber accepts with the default region `ID`, all giving
//! `+6281234567890`:
//!
//! | input | why |
//! | --- | --- |
//! | `0812-3456-7890`, `0812.3456.7890`, `(0812) 3456 7890` | national format; spaces, dashes, dots and parentheses are punctuation; the trunk prefix `0` is dropped |
//! | `+62 812 3456 7890`, `+62-812-3456-7890`, `+62 (812) 3456-7890` | international format |
//! | `+62 0812 3456 7890`, `62 0812 3456 7890` | the trunk `0` after the country code is dropped too |
//! | `6281234567890` | the country code without `+` is recognised because `62…` alone is not a valid national number while the rest is |
//! | `81234567890` | a national significant number without its trunk `0` |
//! | `tel:+62-812-3456-7890` | RFC 3966 |
//! | `Hp: 0812 3456 7890`, `'081234567890` | leading text is skipped |
//!
//! What it refuses: `0062 812 3456 7890` (`00` is not Indonesia's
//! international prefix, so this reads as a national number and is invalid),
//! numbers of the wrong length, landlines (`021-5555-1234` is a Jakarta
//! fixed line: [`PhoneError::NotMobile`]), toll-free and premium numbers.
//!
//! Quirks inherited from the crate, not corrected here (no rules beyond
//! libphonenumber's): an extension (`0812 3456 7890 ext. 12`) is accepted
//! and dropped, as E.164 has no extensions; letters after digits are read
//! as a keypad spelling (`08123456789O` with a letter O gives
//! `+6281234567896`); a spreadsheet float like `81234567890.0` keeps the
//! trailing `0` as a digit. Importers should hand over cells as text.

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, PhoneNumber, Type};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::RefusalCode;

/// Why a phone number or a region was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Not a phone number at all, or not a valid one for its region
    /// (wrong length, unassigned range, empty input).
    #[error("not a valid phone number: {input:?}")]
    Invalid {
        /// The input as given.
        input: String,
    },
    /// A valid number, but not a mobile one (a landline, toll-free, premium
    /// rate, ...): WhatsApp cannot reach it.
    #[error("not a mobile phone number: {input:?}")]
    NotMobile {
        /// The input as given.
        input: String,
    },
    /// Not written in E.164 (`+` then digits only, canonical form), where
    /// E.164 is required ([`Phone::from_str`], deserialization).
    #[error("not an e.164 phone number (expected +<country code><number>): {input:?}")]
    NotE164 {
        /// The input as given.
        input: String,
    },
    /// Not an ISO 3166-1 alpha-2 code libphonenumber has metadata for.
    #[error("unknown region code: {code:?}")]
    UnknownRegion {
        /// The code as given.
        code: String,
    },
}

impl PhoneError {
    /// The stable API error code: `invalid_phone`, except `validation_failed`
    /// for an unknown region (a bad `default_region` field, not a bad number).
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::Invalid { .. } | Self::NotMobile { .. } | Self::NotE164 { .. } => {
                RefusalCode::InvalidPhone
            }
            Self::UnknownRegion { .. } => RefusalCode::ValidationFailed,
        }
    }
}

/// A region (country) as an ISO 3166-1 alpha-2 code, used to read numbers
/// written in national format. Parsed case-insensitively, shown and
/// serialized upper case (`"ID"`). The default is [`Region::ID`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region(Id);

impl Region {
    /// Indonesia, the default region.
    pub const ID: Self = Self(Id::ID);

    /// Parses a code such as `ID`, `id` or `De` (surrounding whitespace
    /// ignored).
    pub fn parse(code: &str) -> Result<Self, PhoneError> {
        let unknown = || PhoneError::UnknownRegion {
            code: code.to_owned(),
        };
        let trimmed = code.trim();
        if trimmed.len() != 2 || !trimmed.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(unknown());
        }
        let upper = trimmed.to_ascii_uppercase();
        let id = Id::from_str(&upper).map_err(|_| unknown())?;
        // An id without metadata could not read any number.
        if DATABASE.by_id(&upper).is_none() {
            return Err(unknown());
        }
        Ok(Self(id))
    }

    /// The upper-case code, e.g. `"ID"`.
    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }

    /// The `phonenumber` crate's id for this region.
    pub const fn id(&self) -> Id {
        self.0
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::ID
    }
}

impl From<Region> for Id {
    fn from(region: Region) -> Self {
        region.0
    }
}

impl FromStr for Region {
    type Err = PhoneError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::parse(code)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for Region {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Region {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Region {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

/// A valid mobile phone number in E.164 (`+6281234567890`): what WhatsApp
/// can reach. See the module docs for which inputs are accepted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

impl Phone {
    /// Reads a number as people write it (`0812-3456-7890`,
    /// `+62 812 3456 7890`, `62812…`), national formats read in
    /// `default_region`. Refuses invalid numbers ([`PhoneError::Invalid`]) and
    /// valid numbers that are not mobile ([`PhoneError::NotMobile`]); a number
    /// whose type the metadata cannot tell (`FixedLineOrMobile`, as in the US)
    /// is accepted.
    pub fn parse(input: &str, default_region: Region) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        let invalid = || PhoneError::Invalid {
            input: input.to_owned(),
        };
        if trimmed.is_empty() {
            return Err(invalid());
        }
        // libphonenumber reads letters as phone-keypad digits, so a typo
        // like `08123456789O` (letter O) would become someone else's valid
        // number. Past the first digit only digits and separators may follow.
        if let Some(first_digit) = trimmed.find(|c: char| c.is_ascii_digit())
            && trimmed[first_digit..]
                .chars()
                .any(|c| !(c.is_ascii_digit() || " -.()/+\u{a0}".contains(c)))
        {
            return Err(invalid());
        }
        let number =
            phonenumber::parse(Some(default_region.id()), trimmed).map_err(|_| invalid())?;
        Self::checked(&number, input)
    }

    /// Checks validity and type, and gives the E.164 form.
    fn checked(number: &PhoneNumber, input: &str) -> Result<Self, PhoneError> {
        if !number.is_valid() {
            return Err(PhoneError::Invalid {
                input: input.to_owned(),
            });
        }
        match number.number_type(&DATABASE) {
            Type::Mobile | Type::FixedLineOrMobile => {
                Ok(Self(number.format().mode(Mode::E164).to_string()))
            }
            _ => Err(PhoneError::NotMobile {
                input: input.to_owned(),
            }),
        }
    }

    /// The E.164 form, e.g. `"+6281234567890"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the leading `+`, e.g. `"6281234567890"` (the form
    /// WhatsApp APIs take).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The WhatsApp Web chat id of this number, e.g. `"6281234567890@c.us"`
    /// (WAHA takes it as `chatId`).
    pub fn whatsapp_chat_id(&self) -> String {
        format!("{}@c.us", self.digits())
    }
}

impl FromStr for Phone {
    type Err = PhoneError;

    /// Reads a number already in canonical E.164 (`+6281234567890`: no
    /// spaces, no trunk prefix), as stored in events and sent by the API's
    /// own clients; anything else is [`PhoneError::NotE164`]. The number must
    /// still be valid and mobile.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let not_e164 = || PhoneError::NotE164 {
            input: s.to_owned(),
        };
        let digits = s.strip_prefix('+').ok_or_else(not_e164)?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_e164());
        }
        let number = phonenumber::parse(None, s).map_err(|_| PhoneError::Invalid {
            input: s.to_owned(),
        })?;
        let phone = Self::checked(&number, s)?;
        // `+62 0812…` style spellings are not canonical; nor is anything the
        // parser had to rewrite.
        if phone.0 != s {
            return Err(not_e164());
        }
        Ok(phone)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Reading a stored number checks its shape only (`+` and 8 to 15 digits),
/// not libphonenumber's metadata: the metadata changes with every release,
/// and an event recorded with a number valid then must stay readable.
/// Numbers coming in from outside go through [`Phone::parse`] or `FromStr`.
impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        let well_formed = s.strip_prefix('+').is_some_and(|digits| {
            (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        });
        if well_formed {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom(PhoneError::NotE164 { input: s }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDI: &str = "+6281234567890";

    fn id(input: &str) -> Result<Phone, PhoneError> {
        Phone::parse(input, Region::ID)
    }

    #[test]
    fn reads_indonesian_mobile_numbers_as_people_write_them() {
        for input in [
            "0812-3456-7890",
            "0812 3456 7890",
            "0812.3456.7890",
            "(0812) 3456 7890",
            "(0812) 3456-7890",
            "081234567890",
            "  0812 3456 7890  ",
            "\t081234567890\n",
            "+62 812 3456 7890",
            "+62-812-3456-7890",
            "+62 (812) 3456-7890",
            "+62.812.3456.7890",
            "+6281234567890",
            "+62 0812 3456 7890",
            "62 812 3456 7890",
            "62-812-3456-7890",
            "6281234567890",
            "62 0812 3456 7890",
            "81234567890",
            "812 3456 7890",
            "tel:+62-812-3456-7890",
            "Hp: 0812 3456 7890",
            "'081234567890",
        ] {
            assert_eq!(
                id(input).map(|p| p.to_string()),
                Ok(BUDI.into()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn reads_other_indonesian_mobile_ranges_and_lengths() {
        for (input, e164) in [
            ("0857 1234 5678", "+6285712345678"),
            ("0811-1234-567", "+628111234567"),
            ("0811123456", "+62811123456"),
            ("+62 878 1234 5678", "+6287812345678"),
            ("0896-1234-5678", "+6289612345678"),
        ] {
            assert_eq!(
                id(input).map(|p| p.to_string()),
                Ok(e164.into()),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_junk() {
        for input in [
            "",
            "   ",
            "+",
            "abc",
            "12345",
            "0812345",
            "08123456789012345",
            "0062 812 3456 7890",
            "+62 809 1234 5678",
            "0812 3456 7890 a.n. Budi",
            "0812-3456-7890 / 0813 1111 2222",
            "8.1234567890E+10",
        ] {
            assert_eq!(
                id(input),
                Err(PhoneError::Invalid {
                    input: input.into()
                }),
                "{input:?}"
            );
        }
    }

    #[test]
    fn refuses_landlines_and_service_numbers() {
        for input in [
            "021-5555-1234",
            "(021) 5555 1234",
            "+62 21 5555 1234",
            "0800 1234 567",
        ] {
            assert_eq!(
                id(input),
                Err(PhoneError::NotMobile {
                    input: input.into()
                }),
                "{input:?}"
            );
        }
        assert!(matches!(
            Phone::parse("+49 30 1234567", Region::ID),
            Err(PhoneError::NotMobile { .. })
        ));
        assert!(matches!(
            Phone::parse("+1 800 555 0123", Region::ID),
            Err(PhoneError::NotMobile { .. })
        ));
    }

    #[test]
    fn reads_numbers_of_other_regions() {
        let de = Region::parse("DE").unwrap();
        let us = Region::parse("us").unwrap();
        for (input, region, e164) in [
            ("01512 3456789", de, "+4915123456789"),
            ("+49 1512 3456789", de, "+4915123456789"),
            ("+49 1512 3456789", Region::ID, "+4915123456789"),
            // The US metadata cannot tell mobiles from landlines.
            ("(202) 555-0123", us, "+12025550123"),
            ("+1 650 253 0000", Region::ID, "+16502530000"),
            ("+6281234567890", us, BUDI),
            ("+31 6 12345678", Region::ID, "+31612345678"),
            ("+65 8123 4567", Region::ID, "+6581234567"),
            ("+60 12-345 6789", Region::ID, "+60123456789"),
        ] {
            assert_eq!(
                Phone::parse(input, region).map(|p| p.to_string()),
                Ok(e164.into()),
                "{input:?} in {region}"
            );
        }
        // The same national digits mean something else in another region.
        assert!(Phone::parse("01512 3456789", Region::ID).is_err());
        assert!(matches!(
            Phone::parse("0812 3456 7890", de),
            Err(PhoneError::NotMobile { .. })
        ));
    }

    #[test]
    fn gives_e164_and_the_whatsapp_chat_id() {
        let phone = id("0812-3456-7890").unwrap();
        assert_eq!(phone.as_str(), BUDI);
        assert_eq!(phone.as_ref(), BUDI);
        assert_eq!(phone.digits(), "6281234567890");
        assert_eq!(phone.whatsapp_chat_id(), "6281234567890@c.us");
    }

    #[test]
    fn from_str_takes_only_canonical_e164() {
        assert_eq!(BUDI.parse::<Phone>().unwrap().as_str(), BUDI);
        assert_eq!(
            "+4915123456789".parse::<Phone>().unwrap().as_str(),
            "+4915123456789"
        );
        for input in [
            "081234567890",
            "6281234567890",
            "+62 812 3456 7890",
            "+62-812-3456-7890",
            "+62081234567890",
            " +6281234567890",
            "+",
            "",
        ] {
            assert_eq!(
                input.parse::<Phone>(),
                Err(PhoneError::NotE164 {
                    input: input.into()
                }),
                "{input:?}"
            );
        }
        assert!(matches!(
            "+6212345".parse::<Phone>(),
            Err(PhoneError::Invalid { .. })
        ));
        assert!(matches!(
            "+622155551234".parse::<Phone>(),
            Err(PhoneError::NotMobile { .. })
        ));
    }

    #[test]
    fn round_trips_through_display_and_serde() {
        for input in ["0812-3456-7890", "+49 1512 3456789", "+1 650 253 0000"] {
            let phone = id(input).unwrap();
            assert_eq!(phone.to_string().parse::<Phone>(), Ok(phone.clone()));
            assert_eq!(Phone::parse(phone.as_str(), Region::ID), Ok(phone.clone()));
            let json = serde_json::to_string(&phone).unwrap();
            assert_eq!(json, format!("\"{phone}\""));
            assert_eq!(serde_json::from_str::<Phone>(&json).unwrap(), phone);
        }
    }

    #[test]
    fn deserializing_checks_the_e164_shape() {
        for json in [
            "\"081234567890\"",
            "\"+6212345\"",
            "\"+62 812 3456 7890\"",
            "\"\"",
            "6281234567890",
        ] {
            assert!(serde_json::from_str::<Phone>(json).is_err(), "{json}");
        }
    }

    #[test]
    fn errors_have_lowercase_messages_and_codes() {
        let invalid = id("12345").unwrap_err();
        assert_eq!(invalid.to_string(), "not a valid phone number: \"12345\"");
        assert_eq!(invalid.code(), "invalid_phone");
        let landline = id("021-5555-1234").unwrap_err();
        assert_eq!(
            landline.to_string(),
            "not a mobile phone number: \"021-5555-1234\""
        );
        assert_eq!(landline.code(), "invalid_phone");
        assert_eq!("0812".parse::<Phone>().unwrap_err().code(), "invalid_phone");
        let region = Region::parse("XX").unwrap_err();
        assert_eq!(region.to_string(), "unknown region code: \"XX\"");
        assert_eq!(region.code(), "validation_failed");
    }

    #[test]
    fn regions_parse_case_insensitively_and_serialize_as_the_code() {
        assert_eq!(Region::default(), Region::ID);
        for code in ["ID", "id", "Id", " id "] {
            assert_eq!(Region::parse(code), Ok(Region::ID), "{code:?}");
        }
        let de: Region = "de".parse().unwrap();
        assert_eq!(de.as_str(), "DE");
        assert_eq!(de.to_string(), "DE");
        assert_eq!(Id::from(de), Id::DE);
        assert_eq!(Region::ID.id(), Id::ID);
        assert_eq!(serde_json::to_string(&de).unwrap(), "\"DE\"");
        assert_eq!(serde_json::from_str::<Region>("\"de\"").unwrap(), de);
        for code in ["", "X", "XX", "IDN", "62", "i d", "ÍD"] {
            assert_eq!(
                Region::parse(code),
                Err(PhoneError::UnknownRegion { code: code.into() }),
                "{code:?}"
            );
        }
        assert!(serde_json::from_str::<Region>("\"XX\"").is_err());
    }

    #[test]
    fn letters_inside_a_number_are_refused_not_read_as_keypad_digits() {
        assert!(matches!(
            id("08123456789O"),
            Err(PhoneError::Invalid { .. })
        ));
        assert!(matches!(
            id("0812 3456 789x"),
            Err(PhoneError::Invalid { .. })
        ));
        assert!(matches!(
            id("0812-3456-7890 ext. 12"),
            Err(PhoneError::Invalid { .. })
        ));
        assert_eq!(id("Hp: 0812-3456-7890").unwrap().as_str(), BUDI);
    }

    #[test]
    fn stored_numbers_stay_readable_whatever_the_metadata_says_now() {
        // Shape-valid but not a number today's metadata knows as mobile.
        let stored: Phone = serde_json::from_str("\"+62215551234\"").unwrap();
        assert_eq!(stored.as_str(), "+62215551234");
        assert!(serde_json::from_str::<Phone>("\"0812\"").is_err());
        assert!(serde_json::from_str::<Phone>("\"+62abc\"").is_err());
    }
}
