//! Why a team refuses a command.

use crate::RefusalCode;

/// A refusal of the team aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    /// Only the team's owners manage it (not members, not API keys).
    #[error("only the tenant's owners manage its members")]
    NotAnOwner,
    /// A role other than `owner` or `member`.
    #[error("a member's role is `owner` or `member`")]
    UnknownRole,
    /// The user is not in the team.
    #[error("no such member")]
    NotAMember,
    /// The account is in the team already.
    #[error("this account is a member already")]
    AlreadyAMember,
    /// The last owner would be removed or demoted: a team always keeps one.
    #[error("the team's last owner cannot be removed or demoted; make another member owner first")]
    LastOwner,
    /// No pending invitation has this id, or its token does not match.
    #[error("no such invitation")]
    UnknownInvitation,
    /// The invitation was accepted or withdrawn already.
    #[error("this invitation was used or withdrawn already")]
    InvitationClosed,
    /// The invitation's time ran out.
    #[error("this invitation has expired; ask for a new one")]
    InvitationExpired,
}

impl TeamError {
    /// The stable code the API answers with.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::NotAnOwner => RefusalCode::Forbidden,
            Self::UnknownRole => RefusalCode::ValidationFailed,
            Self::NotAMember | Self::UnknownInvitation => RefusalCode::NotFound,
            Self::AlreadyAMember => RefusalCode::Conflict,
            Self::LastOwner => RefusalCode::LastOwner,
            Self::InvitationClosed | Self::InvitationExpired => RefusalCode::InvalidState,
        }
    }
}
