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

use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::waproto::whatsapp as wa;

/// Whether this build checks the certificate chain WhatsApp's server
/// presents in the Noise handshake against WhatsApp's root key.
///
/// `whatsapp-rust` leaves the check out when built with its
/// `danger-skip-cert-chain-verify` feature, which only the tests turn on
/// (their fake server's chain is signed by a test root); a binary built
/// with it would trust anyone who answers on the socket. Found out by
/// asking the crate to verify a chain signed with zeros: a build that
/// accepts it does not verify.
pub fn cert_chain_verified() -> bool {
    use wa::cert_chain::{NoiseCertificate, noise_certificate::Details};
    let server_key = [0xAB; 32];
    let certificate = |details: Details| NoiseCertificate {
        details: Some(details.encode_to_vec()),
        signature: Some(vec![0; 64]),
    };
    let chain = wa::CertChain {
        intermediate: whatsapp_rust::buffa::MessageField::some(certificate(Details {
            serial: Some(1),
            issuer_serial: Some(0),
            key: Some(vec![0xCC; 32]),
            not_before: Some(1_700_000_000),
            not_after: Some(1_900_000_000),
        })),
        leaf: whatsapp_rust::buffa::MessageField::some(certificate(Details {
            serial: Some(2),
            issuer_serial: Some(1),
            key: Some(server_key.to_vec()),
            not_before: Some(1_700_000_000),
            not_after: Some(1_900_000_000),
        })),
    };
    wacore::noise::HandshakeUtils::verify_server_cert(&chain.encode_to_vec(), &server_key).is_err()
}

/// Whether `url` (a `ws://` or `wss://` URL) names this machine: the only
/// place a build that does not verify WhatsApp's certificates
/// ([`cert_chain_verified`]) connects native sessions to.
pub fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|url| match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}
