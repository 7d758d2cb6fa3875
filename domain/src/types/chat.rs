//! Whom a message goes to: a person (a phone number) or a group the
//! sending number is in.
//!
//! Stored as one string, so a message recorded before groups existed (its
//! recipient an E.164 number) reads as [`Chat::Person`]: `"+6281234567890"`
//! is a person, `"120363025246125486@g.us"` a group.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::phone::{Phone, PhoneError};

/// The longest group id accepted (WhatsApp's are about 30 characters).
pub const MAX_GROUP_ID_CHARS: usize = 128;

/// A WhatsApp group's id, as the drivers give it (`120363025246125486@g.us`,
/// or the older `6281234567890-1580000000@g.us`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(String);

/// Why a group id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a group id: {input:?} (a group id is letters, digits and dashes, then @g.us, as the session's groups list gives it)"
)]
pub struct GroupIdError {
    /// The input as given.
    pub input: String,
}

impl GroupId {
    /// The id, e.g. `"120363025246125486@g.us"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GroupId {
    type Err = GroupIdError;

    /// Reads a group id: a non-empty user part of ASCII letters, digits and
    /// dashes, then `@g.us`; at most [`MAX_GROUP_ID_CHARS`] characters.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let id = s.trim();
        let well_formed = id.len() <= MAX_GROUP_ID_CHARS
            && id.strip_suffix("@g.us").is_some_and(|user| {
                !user.is_empty() && user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if well_formed {
            Ok(Self(id.to_owned()))
        } else {
            Err(GroupIdError {
                input: s.to_owned(),
            })
        }
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whom a message goes to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Chat {
    /// A person, by phone number.
    Person(Phone),
    /// A group the sending number is in.
    Group(GroupId),
}

impl Chat {
    /// The person's number; `None` for a group.
    pub fn phone(&self) -> Option<&Phone> {
        match self {
            Self::Person(phone) => Some(phone),
            Self::Group(_) => None,
        }
    }

    /// The group; `None` for a person.
    pub fn group(&self) -> Option<&GroupId> {
        match self {
            Self::Person(_) => None,
            Self::Group(group) => Some(group),
        }
    }

    /// How it is stored and shown: E.164 for a person, the group id for a
    /// group.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Person(phone) => phone.as_str(),
            Self::Group(group) => group.as_str(),
        }
    }

    /// The WhatsApp Web chat id (`6281234567890@c.us`, or the group id).
    pub fn whatsapp_chat_id(&self) -> String {
        match self {
            Self::Person(phone) => phone.whatsapp_chat_id(),
            Self::Group(group) => group.as_str().to_owned(),
        }
    }
}

impl From<Phone> for Chat {
    fn from(phone: Phone) -> Self {
        Self::Person(phone)
    }
}

impl From<GroupId> for Chat {
    fn from(group: GroupId) -> Self {
        Self::Group(group)
    }
}

impl fmt::Display for Chat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a stored chat could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Not an E.164 number.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// Not a group id.
    #[error(transparent)]
    Group(#[from] GroupIdError),
}

impl FromStr for Chat {
    type Err = ChatError;

    /// Reads the stored form: a group id (`…@g.us`) or an E.164 number.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.ends_with("@g.us") {
            Ok(Self::Group(s.parse()?))
        } else {
            Ok(Self::Person(s.parse()?))
        }
    }
}

impl Serialize for Chat {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A stored person is read as [`Phone`]'s `Deserialize` reads it (shape
/// only); a stored group as [`GroupId`]'s `FromStr`.
impl<'de> Deserialize<'de> for Chat {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if s.ends_with("@g.us") {
            s.parse().map(Self::Group).map_err(serde::de::Error::custom)
        } else {
            Phone::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(s))
                .map(Self::Person)
        }
    }
}

impl utoipa::PartialSchema for Chat {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <String as utoipa::PartialSchema>::schema()
    }
}

/// Named `Recipient` in the API's description: `Chat` there is the inbox's
/// conversation.
impl utoipa::ToSchema for Chat {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Recipient")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_number_reads_as_a_person_and_a_group_id_as_a_group() {
        let person: Chat = serde_json::from_str("\"+6281234567890\"").unwrap();
        assert_eq!(person.phone().unwrap().as_str(), "+6281234567890");
        assert_eq!(person.whatsapp_chat_id(), "6281234567890@c.us");
        let group: Chat = serde_json::from_str("\"120363025246125486@g.us\"").unwrap();
        assert_eq!(group.group().unwrap().as_str(), "120363025246125486@g.us");
        assert_eq!(group.whatsapp_chat_id(), "120363025246125486@g.us");
        for chat in [person, group] {
            let json = serde_json::to_string(&chat).unwrap();
            assert_eq!(serde_json::from_str::<Chat>(&json).unwrap(), chat);
        }
    }

    #[test]
    fn group_ids_are_letters_digits_and_dashes_before_g_us() {
        for good in [
            "120363025246125486@g.us",
            "6281234567890-1580000000@g.us",
            " 0193a000-0001@g.us ",
        ] {
            assert!(good.parse::<GroupId>().is_ok(), "{good}");
        }
        let long = format!("{}@g.us", "1".repeat(MAX_GROUP_ID_CHARS));
        for bad in [
            "@g.us",
            "12 34@g.us",
            "1234@c.us",
            "1234",
            "a/b@g.us",
            long.as_str(),
        ] {
            assert!(bad.parse::<GroupId>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Chat>("\"x y@g.us\"").is_err());
        assert!(serde_json::from_str::<Chat>("\"0812\"").is_err());
    }
}
