//! A session: one linked WhatsApp number, its lifecycle and its settings.
//!
//! The status flow and the exact table of allowed moves are in [`status`].
//! The send allowance reads a session's facts through the accessors of
//! [`Session`] (`status`, `is_ready`, `daily_limit`, `trust_level`, ...).
//!
//! # Layout
//!
//! - [`aggregate`]: the [`Session`] aggregate (`TYPE` = `"session"`), its
//!   rules and their given/when/then tests.
//! - [`commands`], [`events`], [`error`]: what it is asked, what happened,
//!   why it refused.
//! - [`status`]: [`SessionStatus`] and the transition table.
//! - [`values`]: [`SessionName`], [`Driver`], [`LoginMethod`].

pub mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod status;
pub mod values;

pub use aggregate::{Holder, Reconnect, Session, Waiting};
pub use commands::SessionCommand;
pub use error::SessionError;
pub use events::SessionEvent;
pub use status::{SessionStatus, StatusReason, WaitReason};
pub use values::{Driver, Fence, LoginMethod, SessionName, SessionNameError};
