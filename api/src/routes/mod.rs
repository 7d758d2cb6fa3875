//! One module per resource, each with its `router()`.

pub mod admin;
pub mod auth;
pub mod auto_replies;
pub mod billing;
pub mod campaigns;
pub mod chats;
pub mod contacts;
pub mod events;
pub mod fleet;
pub mod groups;
pub mod health;
pub mod hooks;
pub mod list_checks;
pub mod media;
pub mod members;
pub mod messages;
pub mod metrics;
pub mod numbers;
pub mod schedule;
pub mod sessions;
pub mod stats;
pub mod templates;
pub mod wallet;
pub mod webhooks;
