//! Orders: one purchase a tenant pays through the payment gateway (aggregate
//! type `order`, one aggregate per order): a plan (its terms kept as they
//! were when bought) or a top-up of points, for an amount in rupiah.
//!
//! # Rules
//!
//! - An order is created once, with a positive amount; its id is ours (the
//!   gateway's `order_id`).
//! - The gateway's reports are facts the caller confirmed with the gateway
//!   (its status API); the order decides what they change:
//!   - a payment whose amount is not the order's is refused and recorded
//!     ([`OrderEvent::PaymentAmountMismatched`]): nothing is credited;
//!   - paid once: a second report of a payment changes nothing, however
//!     many times the gateway notifies;
//!   - pending and failed never undo a payment;
//!   - refunds come after a payment, only grow, and never exceed the
//!     amount; each takes back the item's points in proportion
//!     ([`OrderEvent::OrderRefunded`]`.points_back`).
//! - The wallet is credited once per paid order (wallet reference
//!   [`Order::credit_reference`]), and the points a refund takes back are
//!   recorded on the order as taken and owed (what was already spent).

mod aggregate;
mod commands;
mod error;
mod events;

pub use aggregate::{Order, credit_reference, take_back_reference};
pub use commands::{OrderCommand, PaymentReport};
pub use error::OrderError;
pub use events::{FailureReason, OrderEvent, OrderItem, OrderStatus, Rupiah};
