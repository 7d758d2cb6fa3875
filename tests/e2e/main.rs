//! End-to-end tests: wablast started through the same `Application::build`
//! as production, on port 0, against the real NATS JetStream and
//! PostgreSQL, each test with its own database and NATS prefix.

mod app;
mod auth;
mod auto_replies;
mod billing;
mod campaigns;
mod consistency;
mod console;
mod console_accounts;
mod console_billing;
mod console_campaigns;
mod console_fleet;
mod console_inbox;
mod console_members;
mod console_official;
mod contacts;
mod engagement;
mod engine;
mod events;
mod fleet;
mod governor;
mod groups;
mod hardening;
mod health;
mod hooks;
mod journey;
mod list_checks;
mod media;
mod members;
mod messages;
mod native;
mod official;
mod operations;
mod operator;
mod pacing;
mod schedule;
mod sending;
mod sessions;
mod wallet;
mod webhook_deliveries;
mod webhooks;
