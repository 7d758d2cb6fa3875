//! Contact lists, as the commands that use one need them (their mapped
//! columns and how many contacts were accepted).

use sqlx::PgPool;
use wablast_domain::types::{ContactListId, TenantId};

/// The facts of a contact list a campaign needs.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ListFacts {
    /// Its mapped columns (template variables beside `name` and `phone`).
    pub columns: Vec<String>,
    /// The contacts it holds (every stored contact is consented).
    pub accepted: i32,
}

/// One of the tenant's live (not deleted) contact lists.
pub async fn facts(
    db: &PgPool,
    tenant: TenantId,
    id: ContactListId,
) -> Result<Option<ListFacts>, sqlx::Error> {
    sqlx::query_as(
        "select columns, accepted from contact_lists
         where tenant_id = $1 and id = $2 and deleted_at is null",
    )
    .bind(tenant.as_uuid())
    .bind(id.as_uuid())
    .fetch_optional(db)
    .await
}
