//! What the driver tests share: the local HTTP peer
//! ([`wablast_tests::peer`]) and a few helpers.

use tokio::sync::mpsc;
use wablast_domain::types::phone::Phone;
use wablast_session_engine::driver::DriverEvent;

pub use wablast_tests::peer::{Peer, Recorded, Reply, closed_port_url};

pub fn phone(text: &str) -> Phone {
    text.parse().expect("a valid number")
}

/// Everything reported so far, without waiting.
pub fn drain(events: &mut mpsc::UnboundedReceiver<DriverEvent>) -> Vec<DriverEvent> {
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    seen
}
