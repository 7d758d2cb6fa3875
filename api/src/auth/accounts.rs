//! Tenants and users in PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::{Role, password};

/// A user as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    /// Its id.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
    /// Lower-cased email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `admin`, `owner` or `member`.
    pub role: String,
    /// Its display name.
    pub name: Option<String>,
    /// When it registered.
    pub created_at: DateTime<Utc>,
}

impl UserRow {
    /// Its role.
    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::Member)
    }
}

/// A tenant as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct TenantRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// An email as stored: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Whether `email` (normalised) looks like an address: one `@` with text on
/// both sides, a dot in the domain, no spaces, at most 254 characters.
pub fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

/// Why a new user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The email is taken.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// PostgreSQL failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates a tenant and its first user (`role`) in one transaction.
pub async fn create_tenant_with_user(
    pool: &PgPool,
    tenant_name: &str,
    email: &str,
    password_hash: &str,
    role: Role,
    name: Option<&str>,
) -> Result<(TenantRow, UserRow), CreateUserError> {
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    let tenant: TenantRow = sqlx::query_as(
        "insert into tenants (id, name, created_at) values ($1, $2, $3) returning id, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_name)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let user: Option<UserRow> = sqlx::query_as(
        "insert into users (id, tenant_id, email, password_hash, role, name, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (email) do nothing
         returning id, tenant_id, email, password_hash, role, name, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.id)
    .bind(email)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(name)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let user = user.ok_or(CreateUserError::EmailTaken)?;
    tx.commit().await?;
    Ok((tenant, user))
}

/// Writes the account `id` of an invitee joining `tenant` inside `tx`: a
/// new account, or (same `id`) the account of a member once removed from
/// a team, whose tenant, password, role and name are replaced. `None` when
/// the email belongs to another live account.
pub async fn join_tenant(
    tx: &mut sqlx::PgConnection,
    id: Uuid,
    tenant: Uuid,
    email: &str,
    password_hash: &str,
    role: Role,
    name: Option<&str>,
) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "insert into users (id, tenant_id, email, password_hash, role, name, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7) \
         on conflict (email) do update set tenant_id = excluded.tenant_id, \
             password_hash = excluded.password_hash, role = excluded.role, name = excluded.name \
         where users.id = excluded.id \
         returning id, tenant_id, email, password_hash, role, name, created_at",
    )
    .bind(id)
    .bind(tenant)
    .bind(email)
    .bind(password_hash)
    .bind(role.as_str())
    .bind(name)
    .bind(Utc::now())
    .fetch_optional(tx)
    .await
}

/// The user with this (normalised) email.
pub async fn user_by_email(pool: &PgPool, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, tenant_id, email, password_hash, role, name, created_at from users where email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// The user with this id.
pub async fn user_by_id(pool: &PgPool, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, tenant_id, email, password_hash, role, name, created_at from users where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The tenant with this id.
pub async fn tenant_by_id(pool: &PgPool, id: Uuid) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as("select id, name, created_at from tenants where id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// What [`ensure_admin`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// A new admin (and its tenant) was created.
    Created,
    /// The admin existed; its password was set to the one given.
    PasswordUpdated,
}

/// Makes sure the platform admin `email` exists with `password`: creates it
/// (with a tenant of its own) or resets its password. Refused when the
/// email belongs to a user who is not an admin.
pub async fn ensure_admin(
    pool: &PgPool,
    email: &str,
    password: &str,
) -> anyhow::Result<AdminBootstrap> {
    let email = normalize_email(email);
    anyhow::ensure!(plausible_email(&email), "{email:?} is not an email address");
    anyhow::ensure!(
        password.chars().count() >= password::MIN_LENGTH,
        "the admin password needs at least {} characters",
        password::MIN_LENGTH
    );
    let hash = password::hash(password.to_owned()).await?;
    if let Some(user) = user_by_email(pool, &email).await? {
        anyhow::ensure!(
            user.role() == Role::Admin,
            "{email} already belongs to a user who is not the admin"
        );
        sqlx::query("update users set password_hash = $2 where id = $1")
            .bind(user.id)
            .bind(&hash)
            .execute(pool)
            .await?;
        return Ok(AdminBootstrap::PasswordUpdated);
    }
    match create_tenant_with_user(pool, "Platform", &email, &hash, Role::Admin, Some("Admin")).await
    {
        Ok(_) => Ok(AdminBootstrap::Created),
        // Another process created it at the same moment: set the password.
        Err(CreateUserError::EmailTaken) => Box::pin(ensure_admin(pool, &email, password)).await,
        Err(CreateUserError::Database(err)) => Err(err.into()),
    }
}

/// Who pays for a tenant's order: the tenant's name and the email of the
/// calling user (or, for an API key, of the tenant's first owner).
pub async fn buyer(
    pool: &PgPool,
    tenant: Uuid,
    user: Option<Uuid>,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "select t.name, u.email from tenants t join users u on u.tenant_id = t.id \
         where t.id = $1 \
         order by (u.id = $2) desc nulls last, (u.role = 'owner') desc, u.created_at \
         limit 1",
    )
    .bind(tenant)
    .bind(user)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Budi@Toko.CO.id "), "budi@toko.co.id");
        assert!(plausible_email("budi@toko.co.id"));
        for bad in [
            "",
            "budi",
            "@toko.id",
            "budi@",
            "budi@toko",
            "bu di@toko.id",
            "a@b@c.id",
            "budi@.id",
        ] {
            assert!(!plausible_email(bad), "{bad}");
        }
    }
}
