//! The business rules of wablast. The aggregates here are the only place
//! rules are decided: the API and the session engine ask (commands), the
//! aggregates answer with events or a typed refusal. No I/O: whatever an
//! aggregate needs to know from outside (the time, another aggregate's
//! state, the tenant's plan limits) comes in the command.
//!
//! # Layout
//!
//! - [`types`]: value types that parse, not validate (ids, points, limits,
//!   phone numbers, active hours, throttle, message templates).
//! - [`session`]: a linked WhatsApp number and its lifecycle.
//! - [`session_day`]: one session's sends on one local day: the send
//!   allowance ("may this session send one message now?").
//! - [`schedule`]: a tenant's active hours and override.
//! - [`plan`]: the subscription plans on offer (platform-wide).
//! - [`wallet`]: a tenant's points, plan and reservations.
//! - [`campaign`]: a broadcast and its lifecycle.
//! - [`message`]: one message to one recipient, and its receipts.
//! - [`order`]: one purchase paid through the payment gateway (a plan
//!   or points) and its payment, refunds and credit.
//! - [`team`]: a tenant's members, their roles and invitations.
//! - [`inbound`]: one message received by a session (for the inbox and
//!   the auto-responder).
//! - [`verify`]: the replay that proves the rules held.
//! - [`refusal`]: [`RefusalCode`], the stable codes of every refusal.
//!
//! # Conventions
//!
//! - Each aggregate module has `aggregate.rs` (the `cqrs_es::Aggregate`
//!   impl and its given/when/then tests), `commands.rs`, `events.rs` and
//!   `error.rs`. `Aggregate::TYPE` and event type names are frozen once
//!   written: they are subject tokens and stored names.
//! - Commands are imperative (`StartSession`), events past tense
//!   (`SessionStarted`), serialized externally tagged
//!   (`{"SessionStarted": {...}}`); `event_type()` is the variant name and
//!   `event_version()` is `"1.0"` until a shape changes.
//! - Errors are enums of business reasons with a stable `code()`, a
//!   [`RefusalCode`] whose string the REST API answers
//!   (`invalid_state`, `insufficient_points`, `daily_limit_reached`, ...);
//!   the status it answers it with is the API's business, not the domain's.
//! - Events carry derived facts (a balance after the change, a count), so
//!   `apply` only assigns.

/// The OpenAPI schema of a type that (de)serializes as another one (a
/// checked number or text): that one's.
macro_rules! schema_as {
    ($($type:ty => $as:ty),* $(,)?) => {
        $(
            impl utoipa::PartialSchema for $type {
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    <$as as utoipa::PartialSchema>::schema()
                }
            }

            impl utoipa::ToSchema for $type {}
        )*
    };
}

schema_as!(
    types::DailyLimit => u32,
    types::TrustLevel => u8,
    plan::PlanPeriod => u32,
    session::SessionName => String,
    types::phone::Phone => String,
    types::template::Template => String,
    types::TimeZone => String,
);

pub mod auto_reply;
pub mod campaign;
pub mod governor;
pub mod inbound;
pub mod layout;
pub mod list_check;
pub mod message;
pub mod order;
pub mod plan;
pub mod recipient_batch;
mod refusal;
pub mod schedule;
pub mod session;
pub mod session_day;
pub mod team;
pub mod types;
pub mod verify;
pub mod wallet;
pub mod webhook;

pub use refusal::RefusalCode;

/// The upcasters that bring events written in an older version up to the
/// current one, for everything that reads the log (command side,
/// projections, verify). Empty while every event is at its first version;
/// a change of an event's shape adds one here with a test.
pub fn upcasters() -> Vec<Box<dyn cqrs_es::persist::EventUpcaster>> {
    Vec::new()
}
