//! Names on the NATS server: the installation prefix, stream names and
//! subjects, and the aggregate key the cqrs-es framework sees.
//!
//! One subject per aggregate instance, carrying the tenant:
//! `<prefix>.ev.<tenant>.<aggregate_type>.<aggregate_id>`. A tenant can then
//! be given a NATS permission on `<prefix>.ev.<tenant>.>`.

use std::fmt;

use crate::error::EventStoreError;

/// The token that prefixes every stream, subject and KV bucket of one
/// installation (`WABLAST_NATS_PREFIX`), so several installations or test
/// runs can share one NATS server; it also carries how many copies of
/// each of those streams and buckets a NATS cluster keeps
/// ([`Prefix::replicas`], `WABLAST_NATS_REPLICAS`), since whoever names
/// a stream is whoever creates it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Prefix(String, Replicas);

/// How many servers of a NATS cluster keep each of an installation's
/// streams and buckets: one (a single server) or three (a 3-node
/// cluster: the log survives one server lost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Replicas {
    /// One copy: a single nats-server.
    #[default]
    One,
    /// Three copies, on three servers of a cluster.
    Three,
}

impl Replicas {
    /// Reads `1` or `3`; anything else is refused, saying so.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "1" => Ok(Self::One),
            "3" => Ok(Self::Three),
            other => Err(format!(
                "WABLAST_NATS_REPLICAS must be 1 (a single nats-server) or 3 (a 3-node cluster), not {other:?}"
            )),
        }
    }

    /// As JetStream's `num_replicas`.
    pub fn count(self) -> usize {
        match self {
            Self::One => 1,
            Self::Three => 3,
        }
    }
}

impl Prefix {
    /// Parses a prefix: a single subject token that is also valid in a stream
    /// name (ASCII letters, digits, `_` and `-`, at most 32 characters).
    pub fn parse(prefix: &str) -> Result<Self, EventStoreError> {
        if prefix.is_empty() || prefix.len() > 32 || !prefix.bytes().all(is_name_byte) {
            return Err(EventStoreError::InvalidName {
                what: "prefix",
                value: prefix.to_owned(),
            });
        }
        Ok(Self(prefix.to_owned(), Replicas::One))
    }

    /// The same prefix, its streams and buckets kept in `replicas` copies.
    pub fn with_replicas(self, replicas: Replicas) -> Self {
        Self(self.0, replicas)
    }

    /// How many copies of each stream and bucket the cluster keeps.
    pub fn replicas(&self) -> Replicas {
        self.1
    }

    /// The name of one of this installation's streams: `<prefix>_<NAME>`.
    pub fn stream_name(&self, name: &str) -> String {
        format!("{}_{}", self.0, name.to_ascii_uppercase())
    }

    /// The subject of one aggregate instance.
    pub fn aggregate_subject(&self, aggregate_type: &str, key: &AggregateKey) -> String {
        format!("{}.ev.{}.{}.{}", self.0, key.tenant, aggregate_type, key.id)
    }

    /// The subjects of every instance of one aggregate type, all tenants.
    pub fn aggregate_type_subjects(&self, aggregate_type: &str) -> String {
        format!("{}.ev.*.{}.*", self.0, aggregate_type)
    }

    /// The subjects of every aggregate of one tenant (what a tenant's NATS
    /// permission or a tenant-scoped subscription filters on).
    pub fn tenant_subjects(&self, tenant: &str) -> String {
        format!("{}.ev.{}.>", self.0, tenant)
    }

    /// The subjects of one tenant's aggregates of one type. nats-server
    /// accepts a consumer filter only when it lies within one of the
    /// stream's subjects (`<prefix>.ev.*.<type>.*`), so a tenant-scoped
    /// consumer filters on these, one per type, not on
    /// [`Prefix::tenant_subjects`].
    pub fn tenant_aggregate_subjects(&self, tenant: &str, aggregate_type: &str) -> String {
        format!("{}.ev.{}.{}.*", self.0, tenant, aggregate_type)
    }

    /// The dead-letter subject of one durable consumer.
    pub fn dead_letter_subject(&self, consumer: &str) -> String {
        format!("{}.dlq.{}", self.0, consumer)
    }

    /// The subjects of every dead letter of this installation.
    pub fn dead_letter_subjects(&self) -> String {
        format!("{}.dlq.>", self.0)
    }

    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one aggregate instance: the tenant it belongs to and its id.
///
/// The cqrs-es framework identifies an aggregate by one string; ours is
/// `<tenant>.<id>` (see [`AggregateKey::to_framework_id`]). Both parts are
/// single subject tokens (ASCII letters, digits, `_`, `-`), typically UUIDs.
/// Aggregates that belong to no tenant (platform plans, say) use the
/// [`PLATFORM_TENANT`] token.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AggregateKey {
    tenant: String,
    id: String,
}

/// The tenant token of aggregates that belong to the platform, not a tenant.
pub const PLATFORM_TENANT: &str = "platform";

impl AggregateKey {
    /// Builds a key from a tenant token and an aggregate id token.
    pub fn new(tenant: impl fmt::Display, id: impl fmt::Display) -> Result<Self, EventStoreError> {
        let tenant = tenant.to_string();
        let id = id.to_string();
        check_token("tenant", &tenant)?;
        check_token("aggregate id", &id)?;
        Ok(Self { tenant, id })
    }

    /// The key of a tenant's aggregate whose id is a UUID (most are): never
    /// refused, a hyphenated UUID being a valid subject token.
    pub fn from_uuids(tenant: uuid::Uuid, id: uuid::Uuid) -> Self {
        Self {
            tenant: tenant.to_string(),
            id: id.to_string(),
        }
    }

    /// Parses the framework's aggregate id, `<tenant>.<id>`.
    pub fn from_framework_id(framework_id: &str) -> Result<Self, EventStoreError> {
        let (tenant, id) =
            framework_id
                .split_once('.')
                .ok_or_else(|| EventStoreError::InvalidName {
                    what: "aggregate id (expected <tenant>.<id>)",
                    value: framework_id.to_owned(),
                })?;
        Self::new(tenant, id)
    }

    /// The id the cqrs-es framework sees: `<tenant>.<id>`.
    pub fn to_framework_id(&self) -> String {
        format!("{}.{}", self.tenant, self.id)
    }

    /// The tenant token.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The aggregate id token.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for AggregateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.tenant, self.id)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Checks that a value is one subject token we are willing to use: no `.`,
/// wildcards or white space, which would change what the subject means.
pub(crate) fn check_token(what: &'static str, value: &str) -> Result<(), EventStoreError> {
    if value.is_empty() || value.len() > 128 || !value.bytes().all(is_name_byte) {
        return Err(EventStoreError::InvalidName {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_of_uuids_is_the_key_new_builds() {
        let (tenant, id) = (uuid::Uuid::now_v7(), uuid::Uuid::new_v4());
        assert_eq!(
            AggregateKey::from_uuids(tenant, id),
            AggregateKey::new(tenant, id).unwrap()
        );
    }

    #[test]
    fn subjects_carry_prefix_tenant_type_and_id() {
        let prefix = Prefix::parse("wablast").unwrap();
        let key = AggregateKey::new("t1", "a-1").unwrap();
        assert_eq!(
            prefix.aggregate_subject("session", &key),
            "wablast.ev.t1.session.a-1"
        );
        assert_eq!(prefix.tenant_subjects("t1"), "wablast.ev.t1.>");
        assert_eq!(prefix.stream_name("events"), "wablast_EVENTS");
    }

    #[test]
    fn framework_id_round_trips() {
        let key = AggregateKey::new("tenant_1", "0193-abc").unwrap();
        let parsed = AggregateKey::from_framework_id(&key.to_framework_id()).unwrap();
        assert_eq!(parsed, key);
    }

    #[test]
    fn tokens_that_would_change_the_subject_are_refused() {
        for bad in ["", "a.b", "a*", ">", "a b", "ä"] {
            assert!(AggregateKey::new(bad, "x").is_err(), "{bad:?}");
            assert!(AggregateKey::new("t", bad).is_err(), "{bad:?}");
        }
        assert!(AggregateKey::from_framework_id("no-dot").is_err());
        assert!(AggregateKey::from_framework_id("a.b.c").is_err());
        assert!(Prefix::parse("wa.blast").is_err());
    }
}
