//! Reads of the query tables, every one scoped to a tenant.
//!
//! Every function that reads tenant-owned rows takes the caller's
//! [`TenantId`](wablast_domain::types::TenantId) and filters on it in SQL, so
//! it can never return another tenant's rows: a get by the id of another
//! tenant's row answers `None` (a 404 to the client), a list never holds
//! them. Plans are platform-wide and take no tenant.
//!
//! Lists are paginated by key ([`Page`], [`Paged`]): a page carries an
//! opaque cursor, the sort key of the last row of the previous page, and
//! reads the rows after it through the table's index, so a page costs the
//! same wherever it is and rows written meanwhile are neither skipped nor
//! repeated.
//!
//! - [`sessions`]: linked numbers, with `sent_today` in the tenant's time
//!   zone.
//! - [`campaigns`]: campaigns with their message counts.
//! - [`contact_lists`]: a contact list's facts for the commands that use it.
//! - [`messages`]: a campaign's messages, and their CSV export.
//! - [`history`]: every message sent or received, newest first.
//! - [`chats`]: conversations per session and peer, and their read marks.
//! - [`number_checks`]: whether numbers are on WhatsApp, as checked.
//! - [`list_checks`]: checks of contact lists' numbers, and their progress.
//! - [`whatsapp_templates`]: Cloud API sessions' templates, as synced.
//! - [`orders`]: orders paid through the payment gateway.
//! - [`wallet`]: the balance, the plan and the history of points.
//! - [`schedule`]: active hours.
//! - [`plans`]: the plans on offer (platform-wide).
//! - [`events`]: where events are in the log, for audits.
//! - [`auto_replies`]: the rules the auto-responder answers with.
//! - [`webhooks`]: webhook subscriptions and their deliveries.
//! - [`members`]: tenants' teams and invitations, and what
//!   authentication starts from.
//! - [`operator`]: every tenant and user, for the platform admin.
//! - [`stats`]: statistics from the `stats` projection.

use std::fmt::Write as _;

use serde::Serialize;
use uuid::Uuid;

pub mod auto_replies;
pub mod campaigns;
pub mod chats;
pub mod contact_lists;
pub mod events;
pub mod history;
pub mod list_checks;
pub mod members;
pub mod messages;
pub mod number_checks;
pub mod operator;
pub mod orders;
pub mod plans;
pub mod schedule;
pub mod sessions;
pub mod stats;
pub mod wallet;
pub mod webhooks;
pub mod whatsapp_templates;

pub use wallet::TransactionCursor;

/// Rows a page holds when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;

/// The most rows a page holds.
pub const MAX_LIMIT: u32 = 500;

/// The sort key of a list, carried between pages as an opaque cursor.
///
/// Its text is a tag naming the kind of list and the key in hex: URL-safe,
/// and a cursor of one kind of list is refused by the others.
pub trait Cursor: Sized {
    /// The letter its text starts with.
    const TAG: char;

    /// The key, in URL-safe characters.
    fn payload(&self) -> String;

    /// The key back from [`Cursor::payload`]; `None` if it is not one.
    fn from_payload(payload: &str) -> Option<Self>;

    /// The cursor's text: what `next_cursor` holds.
    fn encode(&self) -> String {
        let mut text = String::with_capacity(33);
        text.push(Self::TAG);
        text.push_str(&self.payload());
        text
    }

    /// Reads a cursor's text.
    fn decode(text: &str) -> Result<Self, CursorError> {
        let mut chars = text.chars();
        match chars.next() {
            Some(tag) if tag == Self::TAG => {
                Self::from_payload(chars.as_str()).ok_or_else(|| CursorError::malformed(text))
            }
            Some(tag) if tag.is_ascii_lowercase() && looks_like_hex(chars.as_str()) => {
                Err(CursorError::OtherList(shorten(text)))
            }
            _ => Err(CursorError::malformed(text)),
        }
    }
}

/// Lists ordered by id (UUID v7: creation order): the cursor is the last id.
impl Cursor for Uuid {
    const TAG: char = 'i';

    fn payload(&self) -> String {
        self.simple().to_string()
    }

    fn from_payload(payload: &str) -> Option<Self> {
        if payload.len() != 32 || !looks_like_hex(payload) {
            return None;
        }
        Uuid::try_parse(payload).ok()
    }
}

fn looks_like_hex(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// At most 64 characters of a client's text, for an error message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// A cursor that is not one this list handed out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a cursor at all.
    #[error(
        "invalid cursor {0:?}: pass back the next_cursor of the previous page unchanged, or none for the first page"
    )]
    Malformed(String),
    /// A cursor of another kind of list.
    #[error("cursor {0:?} belongs to another list")]
    OtherList(String),
}

impl CursorError {
    fn malformed(text: &str) -> Self {
        Self::Malformed(shorten(text))
    }
}

/// Which page of a list to read: at most `limit` rows after `cursor`.
///
/// `C` is the list's sort key: [`Uuid`] for lists ordered by id,
/// [`TransactionCursor`] for the wallet's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<C = Uuid> {
    limit: u32,
    cursor: Option<C>,
}

impl<C> Page<C> {
    /// A page of `limit` rows ([`DEFAULT_LIMIT`] when `None`, held to
    /// `1..=`[`MAX_LIMIT`]) after `cursor` (from the start when `None`).
    pub fn new(limit: Option<u32>, cursor: Option<C>) -> Self {
        Self {
            limit: limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            cursor,
        }
    }

    /// The first page of `limit` rows (see [`Page::new`]).
    pub fn first(limit: Option<u32>) -> Self {
        Self::new(limit, None)
    }

    /// The most rows it holds.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The key its rows come after.
    pub fn cursor(&self) -> Option<&C> {
        self.cursor.as_ref()
    }

    /// How many rows to fetch: one more than the page, to know whether a
    /// next page exists.
    pub fn fetch(&self) -> i64 {
        i64::from(self.limit) + 1
    }
}

impl<C: Cursor> Page<C> {
    /// The page a request asks for, from its `?limit=` and `?cursor=` (an
    /// empty cursor is no cursor).
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, CursorError> {
        let cursor = match cursor {
            None | Some("") => None,
            Some(text) => Some(C::decode(text)?),
        };
        Ok(Self::new(limit, cursor))
    }
}

impl<C> Default for Page<C> {
    fn default() -> Self {
        Self::new(None, None)
    }
}

/// One page of a list: `{"items": [...], "next_cursor": "..."|null}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Paged<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// A page from rows fetched with [`Page::fetch`] (one more than the
    /// page when a next page exists): `key` is the sort key of a row.
    pub fn from_rows<C: Cursor>(mut rows: Vec<T>, page: &Page<C>, key: impl Fn(&T) -> C) -> Self {
        let limit = page.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| key(row).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// The same page with every item changed.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Writes `n` as 16 hex digits (a non-negative `i64`; negative ones, which
/// sequences never are, as their two's complement).
pub(crate) fn hex16(out: &mut String, n: i64) {
    let _ = write!(out, "{:016x}", n as u64);
}

/// Reads 16 hex digits written by [`hex16`] back, refusing what is above
/// `i64::MAX`.
pub(crate) fn parse_hex16(text: &str) -> Option<i64> {
    if text.len() != 16 || !looks_like_hex(text) {
        return None;
    }
    u64::from_str_radix(text, 16)
        .ok()
        .and_then(|n| i64::try_from(n).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        assert_eq!(Page::<Uuid>::new(None, None).limit(), 50);
        assert_eq!(Page::<Uuid>::new(Some(0), None).limit(), 1);
        assert_eq!(Page::<Uuid>::new(Some(2), None).limit(), 2);
        assert_eq!(Page::<Uuid>::new(Some(500), None).limit(), 500);
        assert_eq!(Page::<Uuid>::new(Some(501), None).limit(), 500);
        assert_eq!(Page::<Uuid>::new(Some(u32::MAX), None).fetch(), 501);
    }

    #[test]
    fn id_cursors_round_trip() {
        let id = Uuid::now_v7();
        let text = id.encode();
        assert_eq!(text.len(), 33);
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(Uuid::decode(&text), Ok(id));
        let page = Page::<Uuid>::parse(Some(10), Some(&text)).unwrap();
        assert_eq!(page.cursor(), Some(&id));
        assert_eq!(Page::<Uuid>::parse(None, Some("")).unwrap().cursor(), None);
    }

    #[test]
    fn junk_cursors_are_refused() {
        for junk in [
            "x",
            "i",
            "i123",
            "izzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "I0190f5a0c0d07a3b8e1f2a3b4c5d6e7f",
            "i0190f5a0-c0d0-7a3b-8e1f-2a3b4c5d6e7f",
            "i0190f5a0c0d07a3b8e1f2a3b4c5d6e7f0",
            " i0190f5a0c0d07a3b8e1f2a3b4c5d6e7f",
            "i0190f5a0c0d07a3b8e1f2a3b4c5d6e7\u{e9}",
            "🙂",
        ] {
            assert!(
                matches!(Uuid::decode(junk), Err(CursorError::Malformed(_))),
                "{junk:?}"
            );
            assert!(Page::<Uuid>::parse(None, Some(junk)).is_err(), "{junk:?}");
        }
        let other = TransactionCursor {
            stream_sequence: 7,
            event_sequence: 1,
        }
        .encode();
        assert!(matches!(
            Uuid::decode(&other),
            Err(CursorError::OtherList(_))
        ));
        assert!(matches!(
            TransactionCursor::decode(&Uuid::now_v7().encode()),
            Err(CursorError::OtherList(_))
        ));
        let long = "j".repeat(10_000);
        assert!(Uuid::decode(&long).unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn transaction_cursors_round_trip() {
        for (s, e) in [(0, 0), (1, 2), (123_456_789, 42), (i64::MAX, i64::MAX)] {
            let cursor = TransactionCursor {
                stream_sequence: s,
                event_sequence: e,
            };
            assert_eq!(TransactionCursor::decode(&cursor.encode()), Ok(cursor));
        }
        // Above i64::MAX.
        assert!(TransactionCursor::decode("w80000000000000000000000000000000").is_err());
        assert!(TransactionCursor::decode("w0000000000000001").is_err());
    }
}
