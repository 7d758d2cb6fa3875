//! A tenant's team (aggregate type `team`, one per tenant, its id the
//! tenant's): who may act for the tenant and with which role, and the
//! invitations that bring new people in.
//!
//! The accounts themselves (email, password) stay in the account store
//! (`users`, written by the API like a registration); the team decides
//! who belongs and with what role. A tenant whose team never changed has
//! no team events: the first command founds the team from the accounts the
//! caller found ([`TeamCommand`]'s `founders`), in the same commit.
//!
//! Roles: `owner` manages the team, API keys and billing; `member` uses
//! everything else the tenant owns. The platform admin is no team's
//! member.

mod aggregate;
mod commands;
mod error;
mod events;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use aggregate::Team;
pub use commands::TeamCommand;
pub use error::TeamError;
pub use events::TeamEvent;

use crate::types::UserId;

/// How long an invitation may be accepted, in days.
pub const INVITATION_DAYS: i64 = 7;

/// A role in a tenant's team.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TeamRole {
    /// Uses what the tenant owns; does not manage the team, API keys or
    /// billing.
    Member,
    /// Also manages the team, API keys and billing.
    Owner,
}

impl TeamRole {
    /// As stored and answered.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Owner => "owner",
        }
    }
}

impl fmt::Display for TeamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TeamRole {
    type Err = TeamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Self::Member),
            "owner" => Ok(Self::Owner),
            _ => Err(TeamError::UnknownRole),
        }
    }
}

/// One person of the team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamMember {
    /// The user.
    pub user_id: UserId,
    /// Its role.
    pub role: TeamRole,
}
