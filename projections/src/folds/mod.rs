//! The projections: each folds some aggregate types into its own tables.

pub(crate) mod auto_replies;
pub(crate) mod campaigns;
pub(crate) mod chats;
pub(crate) mod engagement;
pub(crate) mod event_index;
pub(crate) mod inbound;
pub(crate) mod list_checks;
pub(crate) mod members;
pub(crate) mod messages;
pub(crate) mod orders;
pub(crate) mod plans;
pub(crate) mod schedules;
pub(crate) mod sessions;
pub(crate) mod stats;
pub(crate) mod wallets;
pub(crate) mod webhook_outbox;

use cqrs_es::DomainEvent;
use serde::de::DeserializeOwned;
use uuid::Uuid;
use wablast_eventstore::RecordedEvent;

use crate::ProjectionError;

/// The event as its domain type, in the version this build knows.
///
/// An event of another version (one written by a newer build, or an old one
/// no upcaster brought up to date) stops the projection: folding it by
/// guesswork could write wrong rows that nothing would ever correct.
pub(crate) fn decode<E: DomainEvent + DeserializeOwned>(
    projection: &'static str,
    event: &RecordedEvent,
) -> Result<E, ProjectionError> {
    let decoded = E::deserialize(&event.payload)
        .map_err(|err| ProjectionError::event(projection, event, err))?;
    let known = decoded.event_version();
    if !same_version(&event.event_version, &known) {
        return Err(ProjectionError::event(
            projection,
            event,
            format!("this build knows version {known}"),
        ));
    }
    Ok(decoded)
}

/// The aggregate's tenant as a UUID (every tenant-owned aggregate has one).
pub(crate) fn tenant_of(
    projection: &'static str,
    event: &RecordedEvent,
) -> Result<Uuid, ProjectionError> {
    event.tenant.parse().map_err(|err| {
        ProjectionError::event(projection, event, format!("tenant is not a UUID: {err}"))
    })
}

/// The aggregate's id as a UUID.
pub(crate) fn id_of(
    projection: &'static str,
    event: &RecordedEvent,
) -> Result<Uuid, ProjectionError> {
    event.aggregate_id.parse().map_err(|err| {
        ProjectionError::event(
            projection,
            event,
            format!("aggregate id is not a UUID: {err}"),
        )
    })
}

/// A fact the rows contradict (an update to a row that was never created):
/// the log and the tables disagree, so the projection stops.
pub(crate) fn missing_row(projection: &'static str, event: &RecordedEvent) -> ProjectionError {
    ProjectionError::event(
        projection,
        event,
        "no row for this aggregate: its creation was never projected",
    )
}

/// Whether two versions are the same, however many parts are written
/// (`1.0` = `1.0.0`, what cqrs-es upcasters write).
fn same_version(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> Option<Vec<u64>> {
        let mut parts = v
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<u64>>>()?;
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(parts)
    }
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    use super::same_version;
    use crate::rows::Row;

    /// The field names serde reads a struct with (what a row's JSON, and
    /// so `jsonb_populate_record`, holds), found without an instance.
    fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Probe(Option<&'static [&'static str]>);
        impl<'de> Deserializer<'de> for &mut Probe {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = Some(fields);
                Err(de::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
                bytes byte_buf option unit unit_struct newtype_struct seq tuple
                tuple_struct map enum identifier ignored_any
            }
        }
        let mut probe = Probe(None);
        let _ = T::deserialize(&mut probe);
        probe.0.expect("a struct")
    }

    fn columns_match<R: Row + for<'de> Deserialize<'de>>() {
        let mut fields = fields_of::<R>().to_vec();
        let mut columns = R::COLUMNS.to_vec();
        fields.sort_unstable();
        columns.sort_unstable();
        assert_eq!(
            fields,
            columns,
            "{}: COLUMNS and the row's fields differ",
            R::TABLE
        );
    }

    /// The hand-kept column lists name exactly the rows' fields: a field
    /// added to a row and forgotten in its list would never be written.
    #[test]
    fn every_rows_columns_are_its_fields() {
        columns_match::<super::campaigns::CampaignRow>();
        columns_match::<super::chats::ChatRow>();
        columns_match::<super::inbound::InboundRow>();
        columns_match::<super::list_checks::ListCheckRow>();
        columns_match::<super::messages::MessageRow>();
        columns_match::<super::orders::OrderRow>();
        columns_match::<super::plans::PlanRow>();
        columns_match::<super::schedules::ScheduleRow>();
        columns_match::<super::sessions::SessionRow>();
        columns_match::<super::wallets::WalletRow>();
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(same_version("1.0", "1.0"));
        assert!(same_version("1.0.0", "1.0"));
        assert!(same_version("1", "1.0"));
        assert!(!same_version("2.0", "1.0"));
        assert!(!same_version("1.1", "1.0"));
        assert!(!same_version("one", "1.0"));
    }
}
