//! `members`: tenants' teams (`team_members`) and their invitations
//! (`team_invitations`), from the `team` aggregate.

use async_trait::async_trait;
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use wablast_domain::team::{Team, TeamEvent};
use wablast_eventstore::RecordedEvent;

use super::{decode, tenant_of};
use crate::{LogStream, Projection, ProjectionError};

const NAME: &str = "members";

/// The `members` projection.
pub(crate) struct Members;

/// Where an invitation stands, as `team_invitations.status` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvitationStatus {
    /// Waiting for the invitee.
    Pending,
    /// The invitee joined.
    Accepted,
    /// An owner withdrew it.
    Revoked,
    /// A newer invitation of the same email took its place.
    Replaced,
}

impl InvitationStatus {
    /// As stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Replaced => "replaced",
        }
    }
}

async fn close(
    conn: &mut PgConnection,
    id: uuid::Uuid,
    status: InvitationStatus,
    accepted_by: Option<uuid::Uuid>,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update team_invitations set status = $2, accepted_by = $3, closed_at = $4 where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(accepted_by)
    .bind(at)
    .execute(conn)
    .await
    .map(|_| ())
}

async fn put_member(
    conn: &mut PgConnection,
    tenant: uuid::Uuid,
    user: uuid::Uuid,
    role: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into team_members (tenant_id, user_id, role, joined_at, removed_at, updated_at) \
         values ($1, $2, $3, $4, null, $4) \
         on conflict (tenant_id, user_id) do update \
         set role = excluded.role, joined_at = excluded.joined_at, removed_at = null, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(user)
    .bind(role)
    .bind(at)
    .execute(conn)
    .await
    .map(|_| ())
}

#[async_trait]
impl Projection for Members {
    fn name(&self) -> &'static str {
        NAME
    }

    fn streams(&self) -> &'static [LogStream] {
        &[LogStream::Events]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[Team::TYPE])
    }

    fn tables(&self) -> &'static [&'static str] {
        &["team_members", "team_invitations"]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _stream: LogStream,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            let tenant = tenant_of(NAME, event)?;
            match decode(NAME, event)? {
                TeamEvent::TeamFounded { members, at } => {
                    for member in members {
                        put_member(
                            conn,
                            tenant,
                            *member.user_id.as_uuid(),
                            member.role.as_str(),
                            at,
                        )
                        .await?;
                    }
                }
                TeamEvent::MemberInvited {
                    invitation_id,
                    email,
                    role,
                    expires_at,
                    replaces,
                    by,
                    at,
                    ..
                } => {
                    if let Some(old) = replaces {
                        close(conn, *old.as_uuid(), InvitationStatus::Replaced, None, at).await?;
                    }
                    sqlx::query(
                        "insert into team_invitations \
                         (id, tenant_id, email, role, invited_by, invited_at, expires_at, status) \
                         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (id) do nothing",
                    )
                    .bind(invitation_id.as_uuid())
                    .bind(tenant)
                    .bind(email)
                    .bind(role.as_str())
                    .bind(by.as_uuid())
                    .bind(at)
                    .bind(expires_at)
                    .bind(InvitationStatus::Pending.as_str())
                    .execute(&mut *conn)
                    .await?;
                }
                TeamEvent::InvitationAccepted {
                    invitation_id,
                    user_id,
                    role,
                    at,
                    ..
                } => {
                    close(
                        conn,
                        *invitation_id.as_uuid(),
                        InvitationStatus::Accepted,
                        Some(*user_id.as_uuid()),
                        at,
                    )
                    .await?;
                    put_member(conn, tenant, *user_id.as_uuid(), role.as_str(), at).await?;
                }
                TeamEvent::InvitationRevoked {
                    invitation_id, at, ..
                } => {
                    close(
                        conn,
                        *invitation_id.as_uuid(),
                        InvitationStatus::Revoked,
                        None,
                        at,
                    )
                    .await?;
                }
                TeamEvent::MemberRoleChanged {
                    user_id, role, at, ..
                } => {
                    sqlx::query(
                        "update team_members set role = $3, updated_at = $4 \
                         where tenant_id = $1 and user_id = $2",
                    )
                    .bind(tenant)
                    .bind(user_id.as_uuid())
                    .bind(role.as_str())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                TeamEvent::MemberRemoved { user_id, at, .. } => {
                    sqlx::query(
                        "update team_members set removed_at = $3, last_removed_at = $3, updated_at = $3 \
                         where tenant_id = $1 and user_id = $2",
                    )
                    .bind(tenant)
                    .bind(user_id.as_uuid())
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}
