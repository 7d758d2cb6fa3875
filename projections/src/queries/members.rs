//! Tenants' teams: their members and pending invitations (projection
//! `members`), and what authentication starts from.
//!
//! A tenant whose team was never changed has no `team_members` rows: its
//! accounts are its members, with the roles they registered with.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;
use wablast_domain::types::TenantId;

use crate::LogStream;

/// A member as listed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MemberRow {
    /// The account.
    pub user_id: Uuid,
    /// Its email.
    pub email: String,
    /// Its name.
    pub name: Option<String>,
    /// `owner` or `member`.
    pub role: String,
    /// When it joined (registered, for the founders).
    pub joined_at: DateTime<Utc>,
}

/// The tenant's members, in the order they joined.
pub async fn members(pool: &PgPool, tenant: TenantId) -> Result<Vec<MemberRow>, sqlx::Error> {
    sqlx::query_as(
        "select u.id as user_id, u.email, u.name, coalesce(m.role, u.role) as role, \
                coalesce(m.joined_at, u.created_at) as joined_at \
         from users u \
         left join team_members m on m.tenant_id = u.tenant_id and m.user_id = u.id \
         where u.tenant_id = $1 and u.role <> 'admin' and m.removed_at is null \
           and (m.user_id is not null \
                or not exists (select 1 from team_members f where f.tenant_id = $1)) \
         order by joined_at, u.id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(pool)
    .await
}

/// The tenant's accounts and their registered roles: who founds its team
/// when it has no events yet.
pub async fn founders(pool: &PgPool, tenant: TenantId) -> Result<Vec<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "select id, role from users where tenant_id = $1 and role in ('owner', 'member') order by id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(pool)
    .await
}

/// A pending invitation.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InvitationRow {
    /// Its id.
    pub id: Uuid,
    /// The invitee's email.
    pub email: String,
    /// The role it joins with.
    pub role: String,
    /// The owner who invited.
    pub invited_by: Uuid,
    /// When.
    pub invited_at: DateTime<Utc>,
    /// Until when it may be accepted.
    pub expires_at: DateTime<Utc>,
}

/// The tenant's pending invitations, oldest first (expired ones too, until
/// replaced or withdrawn: `expires_at` says).
pub async fn pending_invitations(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<InvitationRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, email, role, invited_by, invited_at, expires_at from team_invitations \
         where tenant_id = $1 and status = 'pending' order by invited_at, id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(pool)
    .await
}

/// Whether `user` was taken out of the team of `tenant` (and not taken
/// back).
pub async fn was_removed(pool: &PgPool, tenant: TenantId, user: Uuid) -> Result<bool, sqlx::Error> {
    let removed: Option<bool> = sqlx::query_scalar(
        "select removed_at is not null from team_members where tenant_id = $1 and user_id = $2",
    )
    .bind(tenant.as_uuid())
    .bind(user)
    .fetch_optional(pool)
    .await?;
    Ok(removed.unwrap_or(false))
}

/// A member's standing as authentication keeps it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Standing {
    /// The account.
    pub user_id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// `owner` or `member`.
    pub role: String,
    /// Whether it was taken out.
    pub removed: bool,
    /// When it was last taken out (even if it joined again since).
    pub last_removed_at: Option<DateTime<Utc>>,
}

/// What authentication starts from, read in one snapshot: the tenants
/// suspended (projection `wallets`), every team member's standing
/// (projection `members`), and the lower of the two projections'
/// checkpoints on the events stream: every change after it is still to be
/// read from the log.
#[derive(Clone, Debug, Default)]
pub struct AccessSnapshot {
    /// Suspended tenants and the operator's reasons.
    pub suspended: Vec<(Uuid, String)>,
    /// Every member of a founded team.
    pub members: Vec<Standing>,
    /// The events stream sequence both projections have applied.
    pub sequence: u64,
}

/// Reads the [`AccessSnapshot`] (one repeatable-read transaction).
pub async fn access_snapshot(pool: &PgPool) -> Result<AccessSnapshot, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("set transaction isolation level repeatable read read only")
        .execute(&mut *tx)
        .await?;
    let sequence: Option<i64> = sqlx::query_scalar(
        "select min(coalesce(c.stream_sequence, 0)) \
         from (values ('wallets'), ('members')) as p(name) \
         left join projection_checkpoint c on c.projection = p.name and c.stream = $1",
    )
    .bind(LogStream::Events.name())
    .fetch_one(&mut *tx)
    .await?;
    let suspended: Vec<(Uuid, String)> = sqlx::query_as(
        "select tenant_id, suspended_reason from wallets where suspended_reason is not null",
    )
    .fetch_all(&mut *tx)
    .await?;
    let members: Vec<Standing> = sqlx::query_as(
        "select user_id, tenant_id, role, removed_at is not null as removed, last_removed_at \
         from team_members",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(AccessSnapshot {
        suspended,
        members,
        sequence: sequence.unwrap_or(0).max(0) as u64,
    })
}
