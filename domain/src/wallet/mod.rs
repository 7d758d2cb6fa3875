//! Wallets: a tenant's points, plan and reservations (aggregate type
//! `wallet`, one aggregate per tenant).
//!
//! # Rules
//!
//! - **Allocation**: subscribing to a plan adds its points and runs the plan
//!   for its period; renewing a plan still running extends it from its
//!   current expiry. The caller passes the terms of an active plan only
//!   ([`Plan::subscription_terms`](crate::plan::Plan::subscription_terms)
//!   refuses retired plans); the wallet keeps that snapshot.
//! - **Top-ups and grants** add points; a payment reference credits the
//!   wallet once (a repeated [`WalletCommand::TopUp`] or
//!   [`WalletCommand::Subscribe`] with a reference already credited for the
//!   same points records nothing, for another amount it is refused).
//! - **Reservation**: a campaign start reserves `recipients ×`
//!   [`Points::PER_MESSAGE`](crate::types::Points::PER_MESSAGE); refused
//!   without a running plan or when fewer points are available. A campaign
//!   is reserved once: the same reservation again records nothing (a retry),
//!   a different one is refused.
//! - **Settlement**: when a campaign completes or is cancelled it captures
//!   `messages_sent × 2` and releases the rest, once.
//! - **Expiry**: an expired plan blocks sending and auto-replies
//!   ([`Wallet::can_send_at`] looks at the expiry instant, so this holds
//!   before [`WalletEvent::PlanExpired`] is recorded). Points are prepaid:
//!   they stay on the wallet after expiry and can be used again once the
//!   tenant renews.
//! - Balance and available are never negative; available = balance − the
//!   sum of reservations.
//!
//! The wallet never takes one event per message sent (one aggregate that
//! every send wrote would serialize a tenant's sending): it changes per payment, per grant and per campaign
//! (one reservation, one settlement). Each message records its own cost on
//! its own events.

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{EXPIRY_WARNING_DAYS, LOW_BALANCE_DIVISOR, Wallet};
pub use commands::WalletCommand;
pub use error::WalletError;
pub use events::{TransactionKind, WalletEvent};

/// The longest payment reference, in characters.
pub const MAX_REFERENCE_CHARS: usize = 200;

/// The longest reason for a grant, in characters.
pub const MAX_REASON_CHARS: usize = 500;
