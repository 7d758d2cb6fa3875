//! One module per resource, each with its `router()`.

pub mod health;
pub mod metrics;
