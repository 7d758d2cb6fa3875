//! Invitation tokens: `wbi_`, the tenant's and the invitation's ids (32
//! hex digits each) and 256 random bits (64 hex digits). The ids let the
//! accept route find the team without a lookup; only the token's SHA-256
//! is recorded (in the `MemberInvited` event), so the log does not leak
//! tokens. A token is shown once, to the owner who invites.

use rand::TryRngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wablast_domain::types::{InvitationId, TenantId};

/// What every invitation token starts with.
pub const PREFIX: &str = "wbi_";

/// A new token for `invitation` of `tenant`.
pub fn generate(tenant: TenantId, invitation: InvitationId) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random source works");
    format!(
        "{PREFIX}{}{}{}",
        tenant.as_uuid().simple(),
        invitation.as_uuid().simple(),
        hex::encode(bytes)
    )
}

/// The tenant and invitation a token names, if it is shaped like one.
pub fn parse(token: &str) -> Option<(TenantId, InvitationId)> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() != 128 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tenant = Uuid::parse_str(&rest[..32]).ok()?;
    let invitation = Uuid::parse_str(&rest[32..64]).ok()?;
    Some((
        TenantId::from_uuid(tenant),
        InvitationId::from_uuid(invitation),
    ))
}

/// The recorded form of a token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_tenant_and_invitation() {
        let (tenant, invitation) = (TenantId::new(), InvitationId::new());
        let token = generate(tenant, invitation);
        assert_eq!(parse(&token), Some((tenant, invitation)));
        assert_ne!(token, generate(tenant, invitation));
        assert_eq!(digest(&token).len(), 64);
        assert_eq!(parse("wbi_short"), None);
        assert_eq!(parse(&token.replace(PREFIX, "wbk_")), None);
    }
}
