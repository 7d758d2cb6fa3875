//! The `native` driver: WhatsApp Web multi-device from this process, on
//! the `whatsapp-rust` crate (pinned to one exact version: its releases
//! break often). Experimental until a real phone has been linked in the
//! staging check the README describes.
//!
//! # Layout
//!
//! - [`store`]: the session's keys in PostgreSQL, sealed, fenced by the
//!   engine's lease.
//! - [`driver`]: the [`driver::NativeDriver`], one `whatsapp-rust` client
//!   per session on that store.

pub mod driver;
pub mod store;
