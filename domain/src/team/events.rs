//! What happened to a team.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::{TeamMember, TeamRole};
use crate::types::{InvitationId, UserId};

/// An event of the team aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TeamEvent {
    /// The team was founded with the tenant's accounts as they stood.
    TeamFounded {
        /// Its members.
        members: Vec<TeamMember>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone was invited.
    MemberInvited {
        /// The invitation.
        invitation_id: InvitationId,
        /// The invitee's email.
        email: String,
        /// The role it joins with.
        role: TeamRole,
        /// SHA-256 (hex) of its token (never the token).
        token_digest: String,
        /// Until when it may be accepted.
        expires_at: DateTime<Utc>,
        /// The pending invitation of the same email it replaces.
        replaces: Option<InvitationId>,
        /// The owner who invited.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// An invitation was accepted: the account joined.
    InvitationAccepted {
        /// The invitation.
        invitation_id: InvitationId,
        /// The account.
        user_id: UserId,
        /// Its email.
        email: String,
        /// Its role.
        role: TeamRole,
        /// When.
        at: DateTime<Utc>,
    },
    /// A pending invitation was withdrawn.
    InvitationRevoked {
        /// The invitation.
        invitation_id: InvitationId,
        /// The owner.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member's role changed.
    MemberRoleChanged {
        /// The member.
        user_id: UserId,
        /// Its role before.
        from: TeamRole,
        /// Its role now.
        role: TeamRole,
        /// The owner.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// A member was taken out of the team.
    MemberRemoved {
        /// The member.
        user_id: UserId,
        /// The role it had.
        role: TeamRole,
        /// The owner.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for TeamEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TeamFounded { .. } => "TeamFounded",
            Self::MemberInvited { .. } => "MemberInvited",
            Self::InvitationAccepted { .. } => "InvitationAccepted",
            Self::InvitationRevoked { .. } => "InvitationRevoked",
            Self::MemberRoleChanged { .. } => "MemberRoleChanged",
            Self::MemberRemoved { .. } => "MemberRemoved",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}
