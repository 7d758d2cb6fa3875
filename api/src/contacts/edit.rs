//! Contact lists written without a file: a list created from JSON rows,
//! rows added to a list, a contact removed.
//!
//! A JSON row is checked as a file's row is, by the one [`Checker`]: its
//! fields are the cells `phone`, `name`, `consent` and one per variable,
//! trimmed as a file's cells are; the same E.164 normalisation in
//! `default_region`, formula and length checks, consent, dedupe and
//! per-row report follow. What differs from an import:
//!
//! - **Shape.** A body that is not the documented shape (a field missing
//!   or of another type, an unknown field, a variable given twice in a
//!   row) is a 400 `validation_failed` naming it, and nothing is written;
//!   a row whose content is refused (its number, consent, a formula, a
//!   duplicate) is reported, as a file's row is, and the others are
//!   stored. `consent` is a boolean: `false` is `no_consent`.
//! - **Rows.** A report's `row` is the contact's place in the request
//!   (1 = the first). A stored contact's `row` (its id in the list)
//!   continues the list's: a list that was given `total_rows` rows so far
//!   numbers the next from `total_rows + 1`, so a row is never reused and
//!   an added contact comes after every earlier one.
//! - **Columns.** A list's columns are the variables templates may use.
//!   A new list's are the variables its rows name, in the order they first
//!   appear; rows added to a list may name new ones, appended to its
//!   columns (its earlier contacts have no value for them, as a contact
//!   with a blank cell has none: a campaign's start counts them). A
//!   variable's name must be one a template can use (letters, digits and
//!   `_`, not `name` or `phone`), as an import's variable columns must;
//!   a list has at most [`MAX_COLUMNS`] of them.
//! - **Duplicates** of a number the list already has are refused as
//!   `already_in_list`, naming its contact; nothing is added twice.
//! - **Campaigns.** A started campaign's recipients are the first
//!   `recipients` contacts of its list in row order, as many as its start
//!   counted. Added contacts come after them, so the contacts added after
//!   a start are never among its recipients. A removed contact is not in
//!   the campaigns started after; a campaign's fan-out queues every
//!   recipient right after its start, and a contact already queued keeps
//!   its message.
//! - **Limits.** At most [`MAX_CONTACTS`] rows a request (refused while the
//!   body is read, before the rows are held: 400) in a body of at most
//!   [`MAX_BODY_BYTES`] (413).
//!
//! Changes of one list run one at a time: each locks the list's row first.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;
use wablast_domain::types::TenantId;
use wablast_domain::types::phone::Region;

use super::normalize::{self, MAX_CELL_CHARS};
use super::parse::{Cell, MAX_COLUMNS, Row};
use super::{
    BATCH, Checker, Contact, Creation, FIXED_FIELDS, Imported, Plan, Summary, is_reserved,
    is_variable_name, number_key, shorten, store,
};
use crate::{ApiError, ErrorCode};

/// The most contacts one request may carry.
pub const MAX_CONTACTS: usize = 10_000;

/// The largest body of a request carrying contacts: 10,000 contacts of
/// about 1.6 KB each.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// A new list: `POST /api/v1/contact-lists`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactListCreate)]
pub struct NewList {
    /// The list's name (1 to 200 characters).
    #[schema(example = "Pelanggan Bandung")]
    pub name: String,
    /// ISO 3166-1 alpha-2 region in which numbers without a country code
    /// are read (default `ID`).
    #[schema(example = "ID")]
    pub default_region: Option<String>,
    /// Its contacts (none is fine: add them later).
    #[schema(value_type = Vec<Entry>, max_items = 10000)]
    pub contacts: Entries,
}

/// Contacts for a list: `POST /api/v1/contact-lists/{id}/contacts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactListAdd)]
pub struct MoreContacts {
    /// ISO 3166-1 alpha-2 region in which numbers without a country code
    /// are read (default `ID`).
    #[schema(example = "ID")]
    pub default_region: Option<String>,
    /// The contacts to add.
    #[schema(value_type = Vec<Entry>, max_items = 10000)]
    pub contacts: Entries,
}

/// One contact, as a row of a file would give it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ContactInput)]
pub struct Entry {
    /// The number, written in any way an import reads it
    /// (`0812-3456-7890`, `+62 812 3456 7890`, ...).
    #[schema(example = "0812-3456-7890")]
    pub phone: String,
    /// The contact's name.
    #[schema(example = "Budi")]
    pub name: Option<String>,
    /// Whether the contact agreed to receive messages; only contacts who
    /// did are stored.
    pub consent: bool,
    /// Template variables: `{"kota": "Bandung"}`. Names of letters, digits
    /// and `_` (not `name` or `phone`); text values.
    #[serde(default)]
    #[schema(value_type = HashMap<String, String>, example = json!({"kota": "Bandung"}))]
    pub variables: Variables,
}

/// The contacts of a request, at most [`MAX_CONTACTS`]: a longer array is
/// refused as it is read.
#[derive(Debug, Default)]
pub struct Entries(pub Vec<Entry>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bounded;

        impl<'de> Visitor<'de> for Bounded {
            type Value = Entries;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an array of at most {MAX_CONTACTS} contacts")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(entry) = seq.next_element()? {
                    if entries.len() == MAX_CONTACTS {
                        return Err(de::Error::custom(format!(
                            "at most {MAX_CONTACTS} contacts a request: send the rest with \
                             POST /api/v1/contact-lists/{{id}}/contacts"
                        )));
                    }
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_seq(Bounded)
    }
}

/// A contact's variables, in the order written; a name given twice is
/// refused.
#[derive(Debug, Default)]
pub struct Variables(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Variables {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;

        impl<'de> Visitor<'de> for InOrder {
            type Value = Variables;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of text values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Variables, A::Error> {
                let mut variables: Vec<(String, String)> = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    if variables.iter().any(|(known, _)| *known == name) {
                        return Err(de::Error::custom(format!(
                            "the variable {:?} is given twice",
                            shorten(&name)
                        )));
                    }
                    variables.push((name, value));
                }
                Ok(Variables(variables))
            }
        }

        deserializer.deserialize_map(InOrder)
    }
}

/// The list's columns once `entries` are in: `existing`, then the
/// variables the entries name that it lacks, in the order they first
/// appear. A name a template cannot use is a 400 naming it.
fn columns_with(existing: &[String], entries: &[Entry]) -> Result<Vec<String>, ApiError> {
    let mut columns = existing.to_vec();
    let mut known: HashSet<&str> = existing.iter().map(String::as_str).collect();
    let mut added = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        for (name, _) in &entry.variables.0 {
            if !known.insert(name.as_str()) {
                continue;
            }
            let field = format!("contacts[{i}].variables.{}", shorten(name));
            if !is_variable_name(name) || is_reserved(name) || name.len() > MAX_CELL_CHARS {
                return Err(ApiError::invalid_field(
                    &field,
                    format!(
                        "{:?} cannot be a template variable: name it with letters, digits and `_` \
                         (starting with a letter or `_`, at most {MAX_CELL_CHARS}), other than \
                         `name` and `phone`",
                        shorten(name)
                    ),
                ));
            }
            if existing.len() + added.len() == MAX_COLUMNS {
                return Err(ApiError::invalid_field(
                    &field,
                    format!("a list has at most {MAX_COLUMNS} variables"),
                ));
            }
            added.push(name.clone());
        }
    }
    columns.extend(added);
    Ok(columns)
}

/// An entry as a row of the cells of [`Plan::of_fields`]`(columns)`, which
/// has every variable the entry names. Its consent cell is never empty, so
/// the row is never blank: every entry is counted, in request order.
fn row_of(entry: Entry, index: &HashMap<&str, usize>, width: usize) -> Row {
    let cell = |text: &str| Cell {
        text: text.trim().to_owned(),
        formula: false,
    };
    let mut cells = vec![Cell::default(); width];
    cells[0] = cell(&entry.phone);
    cells[1] = cell(entry.name.as_deref().unwrap_or_default());
    cells[2] = cell(if entry.consent { "true" } else { "false" });
    for (name, value) in &entry.variables.0 {
        cells[FIXED_FIELDS + index[name.as_str()]] = cell(value);
    }
    Row { number: 0, cells }
}

/// Checks the entries as a file's rows are checked (on a blocking thread:
/// up to [`MAX_CONTACTS`] numbers to parse): the accepted contacts, rows
/// numbered from 1 in request order, and the report. `in_list` holds the
/// list's numbers among them, if any.
async fn check(
    columns: &[String],
    region: Region,
    in_list: HashMap<u64, i32>,
    entries: Vec<Entry>,
) -> Result<(Vec<Contact>, Summary), ApiError> {
    let columns = columns.to_vec();
    tokio::task::spawn_blocking(move || {
        let index: HashMap<&str, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        let width = FIXED_FIELDS + columns.len();
        let mut checker = Checker::new(Plan::of_fields(&columns), region);
        checker.in_list = in_list;
        let contacts = entries
            .into_iter()
            .filter_map(|entry| checker.next(&mut row_of(entry, &index, width)))
            .collect();
        (contacts, checker.summary)
    })
    .await
    .map_err(ApiError::internal)
}

/// Creates the tenant's list `name` from `entries`, in one transaction.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
pub async fn create(
    pool: &PgPool,
    tenant: TenantId,
    name: String,
    region: Region,
    entries: Vec<Entry>,
) -> Result<Imported, ApiError> {
    let columns = columns_with(&[], &entries)?;
    let (contacts, summary) = check(&columns, region, HashMap::new(), entries).await?;
    let mut list =
        Creation::begin(pool, tenant, name, columns, store::Source::Json, None, None).await?;
    list.insert(&contacts).await?;
    list.finish(summary).await
}

/// A participant of a group, as a list made from the group takes it.
#[derive(Clone, Debug)]
pub struct Participant {
    /// As the driver names it (`628…@c.us`, `…@lid`).
    pub id: String,
    /// The number, when WhatsApp lets the session see it.
    pub phone: Option<String>,
}

/// Creates the tenant's list `name` from a WhatsApp group's participants,
/// in one transaction: each participant whose number the session can see
/// becomes a contact, checked like any row (consent is the importer's
/// statement: the list records the group it came from); the others are
/// rejected as [`normalize::Reason::NumberHidden`], `row` being their
/// place among the participants.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, group = origin.group_id))]
pub async fn create_from_group(
    pool: &PgPool,
    tenant: TenantId,
    name: String,
    origin: store::GroupOrigin<'_>,
    participants: &[Participant],
) -> Result<Imported, ApiError> {
    let entries: Vec<Entry> = participants
        .iter()
        .map(|p| Entry {
            phone: p.phone.clone().unwrap_or_else(|| p.id.clone()),
            name: None,
            consent: true,
            variables: Variables::default(),
        })
        .collect();
    let (contacts, summary) = check(&[], Region::ID, HashMap::new(), entries).await?;
    let mut list = Creation::begin(
        pool,
        tenant,
        name,
        Vec::new(),
        store::Source::Group,
        None,
        Some(origin),
    )
    .await?;
    list.insert(&contacts).await?;
    let mut imported = list.finish(summary).await?;
    for rejection in &mut imported.rejected {
        let hidden = usize::try_from(rejection.row)
            .ok()
            .and_then(|row| participants.get(row.checked_sub(1)?))
            .is_some_and(|p| p.phone.is_none());
        if hidden {
            rejection.reason = normalize::Reason::NumberHidden;
            rejection.message = normalize::Reason::NumberHidden.message().to_owned();
        }
    }
    Ok(imported)
}

/// Adds `entries` to the tenant's list `list_id`, in one transaction; 404
/// when the tenant has no such live list.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, list_id = %list_id))]
pub async fn add(
    pool: &PgPool,
    tenant: TenantId,
    list_id: Uuid,
    region: Region,
    entries: Vec<Entry>,
) -> Result<Imported, ApiError> {
    let mut tx = pool.begin().await?;
    let list = store::lock_list(&mut tx, tenant, list_id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact list"))?;
    let columns = columns_with(&list.columns, &entries)?;
    // The rows after the list's: they must stay within a row number.
    let first_row = list.total_rows;
    if i32::try_from(entries.len())
        .ok()
        .and_then(|n| first_row.checked_add(n))
        .is_none()
    {
        return Err(ApiError::new(
            ErrorCode::InvalidState,
            "the list has been given as many rows as it can hold: create another list",
        ));
    }
    let (entries, numbers) = tokio::task::spawn_blocking(move || {
        let numbers: Vec<String> = entries
            .iter()
            .filter_map(|entry| normalize::phone(&entry.phone, region).ok())
            .map(|phone| phone.as_str().to_owned())
            .collect();
        (entries, numbers)
    })
    .await
    .map_err(ApiError::internal)?;
    let mut in_list = HashMap::new();
    for (phone, row) in store::rows_of_phones(&mut tx, list_id, &numbers).await? {
        in_list.insert(number_key(phone.trim_start_matches('+')), row);
    }
    let (mut contacts, summary) = check(&columns, region, in_list, entries).await?;
    for contact in &mut contacts {
        contact.row += first_row;
    }
    for batch in contacts.chunks(BATCH) {
        store::insert_contacts(&mut tx, list_id, tenant, batch).await?;
    }
    store::count_rows(
        &mut tx,
        list_id,
        &columns,
        summary.total_rows,
        summary.accepted,
        summary.rejected_count,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        total_rows = summary.total_rows,
        accepted = summary.accepted,
        rejected = summary.rejected_count,
        "contacts added"
    );
    Ok(summary.report(list_id, list.name, columns, list.created_at))
}

/// Removes the contact of `row` from the tenant's list `list_id`; 404 when
/// the tenant has no such live list, or the list no such contact.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant, list_id = %list_id, row))]
pub async fn remove(
    pool: &PgPool,
    tenant: TenantId,
    list_id: Uuid,
    row: i32,
) -> Result<(), ApiError> {
    let mut tx = pool.begin().await?;
    if store::lock_list(&mut tx, tenant, list_id).await?.is_none() {
        return Err(ApiError::not_found("contact list"));
    }
    if !store::delete_contact(&mut tx, list_id, row).await? {
        return Err(ApiError::not_found("contact"));
    }
    tx.commit().await?;
    tracing::info!("contact removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contacts::Reason;

    fn entries(json: serde_json::Value) -> Vec<Entry> {
        serde_json::from_value::<Entries>(json).unwrap().0
    }

    #[test]
    fn rows_are_checked_like_a_files_and_numbered_in_request_order() {
        let entries = entries(serde_json::json!([
            {"phone": " 0812-3456-7890 ", "name": " Budi ", "consent": true, "variables": {"kota": "Bandung"}},
            {"phone": "+62 812 3456 7890", "consent": true},
            {"phone": "0813 1111 2222", "name": "Siti", "consent": false},
            {"phone": "12345", "consent": true},
            {"phone": "0814 4444 5555", "name": "=1+1", "consent": true},
            {"phone": "0815 5555 6666", "consent": true, "variables": {"diskon": "10%"}},
            {"phone": "0816 6666 7777", "consent": true},
        ]));
        let columns = columns_with(&[], &entries).unwrap();
        assert_eq!(columns, ["kota", "diskon"]);
        let in_list = HashMap::from([(6281666667777, 42)]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();

        let (contacts, summary) = runtime
            .block_on(check(&columns, Region::ID, in_list, entries))
            .unwrap();

        assert_eq!(
            contacts,
            [
                Contact {
                    row: 1,
                    phone: "+6281234567890".into(),
                    name: Some("Budi".into()),
                    variables: r#"{"diskon":"","kota":"Bandung"}"#.into(),
                },
                Contact {
                    row: 6,
                    phone: "+6281555556666".into(),
                    name: None,
                    variables: r#"{"diskon":"10%","kota":""}"#.into(),
                },
            ]
        );
        assert_eq!((summary.total_rows, summary.accepted), (7, 2));
        let got: Vec<(u32, Reason)> = summary.rejected.iter().map(|r| (r.row, r.reason)).collect();
        assert_eq!(
            got,
            [
                (2, Reason::Duplicate),
                (3, Reason::NoConsent),
                (4, Reason::InvalidPhone),
                (5, Reason::Formula),
                (7, Reason::AlreadyInList),
            ]
        );
        assert_eq!(summary.rejected[0].duplicate_of, Some(1));
        assert_eq!(summary.rejected[1].column.as_deref(), Some("consent"));
        assert_eq!(summary.rejected[1].value, "false");
        assert_eq!(summary.rejected[3].column.as_deref(), Some("name"));
        assert_eq!(summary.rejected[4].existing_row, Some(42));
        assert_eq!(summary.rejected[4].duplicate_of, None);
    }

    #[test]
    fn a_lists_columns_grow_with_new_variables_and_refuse_names_no_template_can_use() {
        let existing = vec!["kota".to_owned()];
        let more = entries(serde_json::json!([
            {"phone": "1", "consent": true, "variables": {"diskon": "5", "kota": "Solo"}},
            {"phone": "2", "consent": true, "variables": {"Kota": "x", "diskon": "6"}},
        ]));
        assert_eq!(
            columns_with(&existing, &more).unwrap(),
            ["kota", "diskon", "Kota"]
        );
        for bad in ["nama toko", "Name", "phone", "1st", "", "kota-lama"] {
            let more = entries(serde_json::json!([
                {"phone": "1", "consent": true},
                {"phone": "2", "consent": true, "variables": {bad: "x"}},
            ]));
            let err = columns_with(&existing, &more).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationFailed, "{bad:?}");
        }
        let full: Vec<String> = (0..MAX_COLUMNS).map(|i| format!("v{i}")).collect();
        let err = columns_with(
            &full,
            &entries(
                serde_json::json!([{"phone": "1", "consent": true, "variables": {"more": "x"}}]),
            ),
        )
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationFailed);
    }

    #[test]
    fn the_shape_is_held_to_and_the_number_of_rows_bounded() {
        for bad in [
            serde_json::json!([{"phone": "0812", "consent": "ya"}]),
            serde_json::json!([{"phone": "0812"}]),
            serde_json::json!([{"phone": 62812, "consent": true}]),
            serde_json::json!([{"phone": "0812", "consent": true, "telp": "x"}]),
            serde_json::json!([{"phone": "0812", "consent": true, "variables": {"kota": 1}}]),
            serde_json::json!([{"phone": "0812", "consent": true, "variables": ["kota"]}]),
            serde_json::json!({"phone": "0812", "consent": true}),
        ] {
            assert!(
                serde_json::from_value::<Entries>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let twice =
            r#"[{"phone": "0812", "consent": true, "variables": {"kota": "a", "kota": "b"}}]"#;
        let err = serde_json::from_str::<Entries>(twice).unwrap_err();
        assert!(err.to_string().contains("given twice"), "{err}");

        let row = r#"{"phone":"0812","consent":true}"#;
        let array = |n: usize| format!("[{}]", vec![row; n].join(","));
        assert_eq!(
            serde_json::from_str::<Entries>(&array(MAX_CONTACTS))
                .unwrap()
                .0
                .len(),
            MAX_CONTACTS
        );
        let err = serde_json::from_str::<Entries>(&array(MAX_CONTACTS + 1)).unwrap_err();
        assert!(err.to_string().contains("at most 10000 contacts"), "{err}");
    }
}
