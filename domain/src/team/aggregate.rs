//! The team aggregate.
//!
//! Invariants: only an owner of the team invites, withdraws invitations,
//! changes roles and removes members; a team always keeps at least one
//! owner (the last one is neither removed nor demoted); an invitation is
//! accepted once, before it expires, with the token it was made with (its
//! digest); a newer invitation of the same email replaces the pending one.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::{INVITATION_DAYS, TeamCommand, TeamError, TeamEvent, TeamMember, TeamRole};
use crate::types::{InvitationId, UserId};

/// A pending invitation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Invitation {
    email: String,
    role: TeamRole,
    token_digest: String,
    expires_at: DateTime<Utc>,
}

/// A tenant's team.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Team {
    founded: bool,
    members: BTreeMap<UserId, TeamRole>,
    pending: BTreeMap<InvitationId, Invitation>,
    /// Invitations accepted, withdrawn or replaced, with their token
    /// digests (a wrong token learns nothing of them).
    closed: BTreeMap<InvitationId, String>,
}

impl Team {
    /// The role of `user`, if it is a member.
    pub fn role_of(&self, user: UserId) -> Option<TeamRole> {
        self.members.get(&user).copied()
    }

    /// The email and role of a pending invitation whose token has
    /// `token_digest` (`None`: no such pending invitation, or another
    /// token), and until when it may be accepted.
    pub fn pending_invitation(
        &self,
        invitation: InvitationId,
        token_digest: &str,
    ) -> Option<(&str, TeamRole, DateTime<Utc>)> {
        self.pending
            .get(&invitation)
            .filter(|i| i.token_digest == token_digest)
            .map(|i| (i.email.as_str(), i.role, i.expires_at))
    }

    /// Whether the invitation whose token has `token_digest` was
    /// accepted, withdrawn or replaced.
    pub fn is_closed(&self, invitation: InvitationId, token_digest: &str) -> bool {
        self.closed
            .get(&invitation)
            .is_some_and(|d| d == token_digest)
    }

    /// Whether the team has events (was founded).
    pub fn is_founded(&self) -> bool {
        self.founded
    }

    /// The members as they stand, or `founders` when the team has no
    /// events yet.
    fn members_or(&self, founders: &[TeamMember]) -> BTreeMap<UserId, TeamRole> {
        if self.founded {
            self.members.clone()
        } else {
            founders.iter().map(|m| (m.user_id, m.role)).collect()
        }
    }

    /// The owner acting, from the members as they stand.
    fn owner(
        members: &BTreeMap<UserId, TeamRole>,
        by: Option<UserId>,
    ) -> Result<UserId, TeamError> {
        match by {
            Some(by) if members.get(&by) == Some(&TeamRole::Owner) => Ok(by),
            _ => Err(TeamError::NotAnOwner),
        }
    }

    /// Founds the team first when it has no events.
    async fn found(
        &mut self,
        founders: Vec<TeamMember>,
        at: DateTime<Utc>,
        sink: &EventSink<Self>,
    ) {
        if !self.founded {
            sink.write(
                TeamEvent::TeamFounded {
                    members: founders,
                    at,
                },
                self,
            )
            .await;
        }
    }
}

impl Team {
    fn close(&mut self, invitation: InvitationId) {
        if let Some(closed) = self.pending.remove(&invitation) {
            self.closed.insert(invitation, closed.token_digest);
        }
    }
}

fn owners(members: &BTreeMap<UserId, TeamRole>) -> usize {
    members.values().filter(|r| **r == TeamRole::Owner).count()
}

impl Aggregate for Team {
    const TYPE: &'static str = "team";
    type Command = TeamCommand;
    type Event = TeamEvent;
    type Error = TeamError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            TeamCommand::Invite {
                invitation_id,
                email,
                role,
                token_digest,
                by,
                founders,
                at,
            } => {
                let members = self.members_or(&founders);
                let by = Self::owner(&members, by)?;
                let replaces = self
                    .pending
                    .iter()
                    .find(|(_, i)| i.email == email)
                    .map(|(id, _)| *id);
                self.found(founders, at, sink).await;
                sink.write(
                    TeamEvent::MemberInvited {
                        invitation_id,
                        email,
                        role,
                        token_digest,
                        expires_at: at + Duration::days(INVITATION_DAYS),
                        replaces,
                        by,
                        at,
                    },
                    self,
                )
                .await;
            }
            TeamCommand::AcceptInvitation {
                invitation_id,
                token_digest,
                user_id,
                at,
            } => {
                if self.is_closed(invitation_id, &token_digest) {
                    return Err(TeamError::InvitationClosed);
                }
                let invitation = self
                    .pending
                    .get(&invitation_id)
                    .filter(|i| i.token_digest == token_digest)
                    .ok_or(TeamError::UnknownInvitation)?;
                if at >= invitation.expires_at {
                    return Err(TeamError::InvitationExpired);
                }
                if self.members.contains_key(&user_id) {
                    return Err(TeamError::AlreadyAMember);
                }
                let event = TeamEvent::InvitationAccepted {
                    invitation_id,
                    user_id,
                    email: invitation.email.clone(),
                    role: invitation.role,
                    at,
                };
                sink.write(event, self).await;
            }
            TeamCommand::RevokeInvitation {
                invitation_id,
                by,
                founders,
                at,
            } => {
                let members = self.members_or(&founders);
                let by = Self::owner(&members, by)?;
                if self.closed.contains_key(&invitation_id) {
                    return Err(TeamError::InvitationClosed);
                }
                if !self.pending.contains_key(&invitation_id) {
                    return Err(TeamError::UnknownInvitation);
                }
                self.found(founders, at, sink).await;
                sink.write(
                    TeamEvent::InvitationRevoked {
                        invitation_id,
                        by,
                        at,
                    },
                    self,
                )
                .await;
            }
            TeamCommand::ChangeRole {
                user_id,
                role,
                by,
                founders,
                at,
            } => {
                let mut members = self.members_or(&founders);
                let by = Self::owner(&members, by)?;
                let from = *members.get(&user_id).ok_or(TeamError::NotAMember)?;
                if from == role {
                    return Ok(());
                }
                members.insert(user_id, role);
                if owners(&members) == 0 {
                    return Err(TeamError::LastOwner);
                }
                self.found(founders, at, sink).await;
                sink.write(
                    TeamEvent::MemberRoleChanged {
                        user_id,
                        from,
                        role,
                        by,
                        at,
                    },
                    self,
                )
                .await;
            }
            TeamCommand::RemoveMember {
                user_id,
                by,
                founders,
                at,
            } => {
                let mut members = self.members_or(&founders);
                let by = Self::owner(&members, by)?;
                let role = members.remove(&user_id).ok_or(TeamError::NotAMember)?;
                if owners(&members) == 0 {
                    return Err(TeamError::LastOwner);
                }
                self.found(founders, at, sink).await;
                sink.write(
                    TeamEvent::MemberRemoved {
                        user_id,
                        role,
                        by,
                        at,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TeamEvent::TeamFounded { members, .. } => {
                self.founded = true;
                self.members = members.into_iter().map(|m| (m.user_id, m.role)).collect();
            }
            TeamEvent::MemberInvited {
                invitation_id,
                email,
                role,
                token_digest,
                expires_at,
                replaces,
                ..
            } => {
                self.founded = true;
                if let Some(old) = replaces {
                    self.close(old);
                }
                self.pending.insert(
                    invitation_id,
                    Invitation {
                        email,
                        role,
                        token_digest,
                        expires_at,
                    },
                );
            }
            TeamEvent::InvitationAccepted {
                invitation_id,
                user_id,
                role,
                ..
            } => {
                self.close(invitation_id);
                self.members.insert(user_id, role);
            }
            TeamEvent::InvitationRevoked { invitation_id, .. } => {
                self.close(invitation_id);
            }
            TeamEvent::MemberRoleChanged { user_id, role, .. } => {
                self.members.insert(user_id, role);
            }
            TeamEvent::MemberRemoved { user_id, .. } => {
                self.members.remove(&user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    use super::*;

    type TeamTest = TestFramework<Team>;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    fn user(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }

    fn invitation() -> InvitationId {
        InvitationId::from_uuid(Uuid::from_u128(100))
    }

    fn owner(n: u128) -> TeamMember {
        TeamMember {
            user_id: user(n),
            role: TeamRole::Owner,
        }
    }

    fn member(n: u128) -> TeamMember {
        TeamMember {
            user_id: user(n),
            role: TeamRole::Member,
        }
    }

    fn founded(members: Vec<TeamMember>) -> TeamEvent {
        TeamEvent::TeamFounded { members, at: at() }
    }

    fn invite(by: u128) -> TeamCommand {
        TeamCommand::Invite {
            invitation_id: invitation(),
            email: "sari@toko.id".into(),
            role: TeamRole::Member,
            token_digest: "d1".into(),
            by: Some(user(by)),
            founders: vec![owner(1), member(2)],
            at: at(),
        }
    }

    fn invited() -> TeamEvent {
        TeamEvent::MemberInvited {
            invitation_id: invitation(),
            email: "sari@toko.id".into(),
            role: TeamRole::Member,
            token_digest: "d1".into(),
            expires_at: at() + Duration::days(INVITATION_DAYS),
            replaces: None,
            by: user(1),
            at: at(),
        }
    }

    fn accept(digest: &str, when: DateTime<Utc>) -> TeamCommand {
        TeamCommand::AcceptInvitation {
            invitation_id: invitation(),
            token_digest: digest.into(),
            user_id: user(3),
            at: when,
        }
    }

    fn remove(target: u128, by: u128) -> TeamCommand {
        TeamCommand::RemoveMember {
            user_id: user(target),
            by: Some(user(by)),
            founders: vec![],
            at: at(),
        }
    }

    #[test]
    fn an_owner_invites_and_the_first_command_founds_the_team() {
        TeamTest::with(())
            .given_no_previous_events()
            .when(invite(1))
            .then_expect_events(vec![founded(vec![owner(1), member(2)]), invited()]);
    }

    #[test]
    fn a_member_may_not_invite() {
        TeamTest::with(())
            .given_no_previous_events()
            .when(invite(2))
            .then_expect_error(TeamError::NotAnOwner);
    }

    #[test]
    fn an_api_key_may_not_invite() {
        let mut command = invite(1);
        if let TeamCommand::Invite { by, .. } = &mut command {
            *by = None;
        }
        TeamTest::with(())
            .given_no_previous_events()
            .when(command)
            .then_expect_error(TeamError::NotAnOwner);
    }

    #[test]
    fn a_new_invitation_of_the_same_email_replaces_the_pending_one() {
        let mut command = invite(1);
        let newer = InvitationId::from_uuid(Uuid::from_u128(101));
        if let TeamCommand::Invite { invitation_id, .. } = &mut command {
            *invitation_id = newer;
        }
        let TeamEvent::MemberInvited {
            email,
            role,
            token_digest,
            expires_at,
            by,
            at,
            ..
        } = invited()
        else {
            unreachable!()
        };
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)]), invited()])
            .when(command)
            .then_expect_events(vec![TeamEvent::MemberInvited {
                invitation_id: newer,
                email,
                role,
                token_digest,
                expires_at,
                replaces: Some(invitation()),
                by,
                at,
            }]);
    }

    #[test]
    fn an_invitation_is_accepted_once_with_its_token() {
        let accepted = TeamEvent::InvitationAccepted {
            invitation_id: invitation(),
            user_id: user(3),
            email: "sari@toko.id".into(),
            role: TeamRole::Member,
            at: at(),
        };
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)]), invited()])
            .when(accept("d1", at()))
            .then_expect_events(vec![accepted.clone()]);
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)]), invited(), accepted])
            .when(accept("d1", at()))
            .then_expect_error(TeamError::InvitationClosed);
    }

    #[test]
    fn a_wrong_token_learns_nothing_of_a_used_invitation() {
        let accepted = TeamEvent::InvitationAccepted {
            invitation_id: invitation(),
            user_id: user(3),
            email: "sari@toko.id".into(),
            role: TeamRole::Member,
            at: at(),
        };
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)]), invited(), accepted])
            .when(accept("other", at()))
            .then_expect_error(TeamError::UnknownInvitation);
    }

    #[test]
    fn a_wrong_token_is_an_unknown_invitation() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)]), invited()])
            .when(accept("other", at()))
            .then_expect_error(TeamError::UnknownInvitation);
    }

    #[test]
    fn an_expired_invitation_is_refused() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)]), invited()])
            .when(accept("d1", at() + Duration::days(INVITATION_DAYS)))
            .then_expect_error(TeamError::InvitationExpired);
    }

    #[test]
    fn a_revoked_invitation_is_not_accepted() {
        TeamTest::with(())
            .given(vec![
                founded(vec![owner(1)]),
                invited(),
                TeamEvent::InvitationRevoked {
                    invitation_id: invitation(),
                    by: user(1),
                    at: at(),
                },
            ])
            .when(accept("d1", at()))
            .then_expect_error(TeamError::InvitationClosed);
    }

    #[test]
    fn an_owner_removes_a_member() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2)])])
            .when(remove(2, 1))
            .then_expect_events(vec![TeamEvent::MemberRemoved {
                user_id: user(2),
                role: TeamRole::Member,
                by: user(1),
                at: at(),
            }]);
    }

    #[test]
    fn the_last_owner_is_not_removed() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2)])])
            .when(remove(1, 1))
            .then_expect_error(TeamError::LastOwner);
    }

    #[test]
    fn the_last_owner_is_not_demoted_but_one_of_two_is() {
        let demote = |target| TeamCommand::ChangeRole {
            user_id: user(target),
            role: TeamRole::Member,
            by: Some(user(1)),
            founders: vec![],
            at: at(),
        };
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2)])])
            .when(demote(1))
            .then_expect_error(TeamError::LastOwner);
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), owner(2)])])
            .when(demote(1))
            .then_expect_events(vec![TeamEvent::MemberRoleChanged {
                user_id: user(1),
                from: TeamRole::Owner,
                role: TeamRole::Member,
                by: user(1),
                at: at(),
            }]);
    }

    #[test]
    fn giving_the_same_role_records_nothing() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2)])])
            .when(TeamCommand::ChangeRole {
                user_id: user(2),
                role: TeamRole::Member,
                by: Some(user(1)),
                founders: vec![],
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_member_may_not_remove_or_promote() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2), member(3)])])
            .when(remove(3, 2))
            .then_expect_error(TeamError::NotAnOwner);
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2)])])
            .when(TeamCommand::ChangeRole {
                user_id: user(2),
                role: TeamRole::Owner,
                by: Some(user(2)),
                founders: vec![],
                at: at(),
            })
            .then_expect_error(TeamError::NotAnOwner);
    }

    #[test]
    fn founders_are_ignored_once_the_team_is_founded() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1), member(2)])])
            .when(TeamCommand::RemoveMember {
                user_id: user(2),
                by: Some(user(9)),
                founders: vec![owner(9), member(2)],
                at: at(),
            })
            .then_expect_error(TeamError::NotAnOwner);
    }

    #[test]
    fn removing_someone_not_in_the_team_is_not_found() {
        TeamTest::with(())
            .given(vec![founded(vec![owner(1)])])
            .when(remove(5, 1))
            .then_expect_error(TeamError::NotAMember);
    }

    #[test]
    fn team_errors_have_their_api_codes() {
        assert_eq!(TeamError::LastOwner.code(), "last_owner");
        assert_eq!(TeamError::NotAnOwner.code(), "forbidden");
        assert_eq!(TeamError::InvitationExpired.code(), "invalid_state");
        assert_eq!(TeamError::UnknownInvitation.code(), "not_found");
    }
}
