//! What may be asked of a team.

use chrono::{DateTime, Utc};

use super::{TeamMember, TeamRole};
use crate::types::{InvitationId, UserId};

/// A command to a tenant's team.
///
/// The commands an owner gives carry `founders`: the tenant's accounts and
/// their roles as the account store has them, which found the team when it
/// has no events yet (and are ignored once it has).
#[derive(Debug, Clone, PartialEq)]
pub enum TeamCommand {
    /// Invite `email` to join with `role`. A pending invitation of the same
    /// email is replaced.
    Invite {
        /// The invitation's id.
        invitation_id: InvitationId,
        /// The invitee's email (normalised by the caller).
        email: String,
        /// The role it joins with.
        role: TeamRole,
        /// SHA-256 (hex) of the one-time token the invitee accepts with.
        token_digest: String,
        /// Who invites (`None`: an API key, which may not).
        by: Option<UserId>,
        /// The accounts, should the team be founded now.
        founders: Vec<TeamMember>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The invitee accepts, as the account `user_id`.
    AcceptInvitation {
        /// The invitation.
        invitation_id: InvitationId,
        /// SHA-256 (hex) of the token presented.
        token_digest: String,
        /// The account joining.
        user_id: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdraw a pending invitation.
    RevokeInvitation {
        /// The invitation.
        invitation_id: InvitationId,
        /// Who.
        by: Option<UserId>,
        /// The accounts, should the team be founded now.
        founders: Vec<TeamMember>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Give a member another role. The same role: nothing recorded.
    ChangeRole {
        /// The member.
        user_id: UserId,
        /// Its new role.
        role: TeamRole,
        /// Who.
        by: Option<UserId>,
        /// The accounts, should the team be founded now.
        founders: Vec<TeamMember>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Take a member out of the team: its logins, tokens and API keys stop
    /// working.
    RemoveMember {
        /// The member.
        user_id: UserId,
        /// Who.
        by: Option<UserId>,
        /// The accounts, should the team be founded now.
        founders: Vec<TeamMember>,
        /// When.
        at: DateTime<Utc>,
    },
}
