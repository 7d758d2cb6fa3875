//! Contact lists, as the commands that use one need them (their mapped
//! columns, how many contacts were accepted, how many lack a template's
//! variables) and as a template preview renders them (a few contacts).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;
use sqlx::types::Json;
use wablast_domain::types::{CampaignId, ContactListId, SkipReason, TenantId};

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

/// A PostgreSQL regular expression matching a value that counts as none:
/// empty or only whitespace, the characters Rust's `str::trim` removes
/// (the domain's `has_value`), whatever the database's locale.
const BLANK: &str = r"^[\s\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$";

/// How many of the tenant's list's contacts have no value (none, or a
/// blank one) for each of `variables`: `name` is the contact's name,
/// `phone` is never missing (every contact has one), any other is the
/// mapped column of that name. Every variable asked for is answered, with
/// 0 when no contact lacks it. With `skip_not_on_whatsapp`, the contacts a
/// check found not on WhatsApp are left out (a campaign that skips them
/// does not render for them); with `left_out_by`, those the start of that
/// campaign left out ([`skip_contacts`]).
pub async fn missing_values(
    db: &PgPool,
    tenant: TenantId,
    id: ContactListId,
    variables: &BTreeSet<String>,
    skip_not_on_whatsapp: bool,
    left_out_by: Option<CampaignId>,
) -> Result<BTreeMap<String, u64>, sqlx::Error> {
    let mut missing: BTreeMap<String, u64> =
        variables.iter().map(|name| (name.clone(), 0)).collect();
    let counted: Vec<&str> = variables
        .iter()
        .map(String::as_str)
        .filter(|name| *name != "phone")
        .collect();
    if counted.is_empty() {
        return Ok(missing);
    }
    // One pass over the list's contacts per variable (templates use few).
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "select v.name, count(*)
         from unnest($3::text[]) as v(name)
         cross join contacts c
         where c.list_id = $1 and c.tenant_id = $2
           and coalesce(case when v.name = 'name' then c.name else c.variables ->> v.name end, '')
               ~ $4
           and not ($5 and exists (
               select 1 from number_checks n
               where n.tenant_id = c.tenant_id and n.phone = c.phone and not n.on_whatsapp))
           and not exists (
               select 1 from campaign_skipped_contacts s
               where s.campaign_id = $6 and s.row_number = c.row_number)
         group by v.name",
    )
    .bind(id.as_uuid())
    .bind(tenant.as_uuid())
    .bind(&counted)
    .bind(BLANK)
    .bind(skip_not_on_whatsapp)
    .bind(left_out_by.map(|c| *c.as_uuid()))
    .fetch_all(db)
    .await?;
    for (name, count) in rows {
        missing.insert(name, u64::try_from(count).unwrap_or(0));
    }
    Ok(missing)
}

/// A contact of a list, as a template is rendered for it.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ContactSample {
    /// E.164.
    pub phone: String,
    /// Its name, if the list has one for it.
    pub name: Option<String>,
    /// Its values of the list's mapped columns.
    pub variables: Json<BTreeMap<String, String>>,
}

/// The first `limit` contacts of the tenant's list, in its order.
pub async fn sample(
    db: &PgPool,
    tenant: TenantId,
    id: ContactListId,
    limit: u32,
) -> Result<Vec<ContactSample>, sqlx::Error> {
    sqlx::query_as(
        "select phone, name, variables from contacts
         where list_id = $1 and tenant_id = $2
         order by row_number
         limit $3",
    )
    .bind(id.as_uuid())
    .bind(tenant.as_uuid())
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
}

/// What a campaign's start left out of its list, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Contacts whose number a check found not on WhatsApp.
    pub not_on_whatsapp: u64,
    /// Contacts sent the campaign's guard of messages or more by the
    /// tenant, who never replied.
    pub never_replied: u64,
}

impl Skipped {
    /// Every contact left out.
    pub fn total(&self) -> u64 {
        self.not_on_whatsapp.saturating_add(self.never_replied)
    }
}

/// Records which contacts of the tenant's list `campaign` leaves out when
/// it starts, and why ([`SkipReason`]): with `skip_not_on_whatsapp`, those
/// whose number the tenant's latest check found not on WhatsApp (however
/// long ago: a new check replaces the answer); with an engagement guard of
/// `unanswered_after` messages, those the tenant sent that many messages
/// or more (`contact_outbound`) who never replied (no `contact_replies`
/// row). A contact left out for both counts as not on WhatsApp. Replaces
/// what an earlier attempt to start it recorded.
pub async fn skip_contacts(
    db: &PgPool,
    tenant: TenantId,
    campaign: CampaignId,
    list: ContactListId,
    skip_not_on_whatsapp: bool,
    unanswered_after: Option<u32>,
) -> Result<Skipped, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("delete from campaign_skipped_contacts where campaign_id = $1")
        .bind(campaign.as_uuid())
        .execute(&mut *tx)
        .await?;
    let mut skipped = Skipped::default();
    if skip_not_on_whatsapp {
        skipped.not_on_whatsapp = sqlx::query(
            "insert into campaign_skipped_contacts (campaign_id, row_number, reason)
             select $1, c.row_number, $4
             from contacts c
             join number_checks n on n.tenant_id = c.tenant_id and n.phone = c.phone
             where c.list_id = $2 and c.tenant_id = $3 and not n.on_whatsapp",
        )
        .bind(campaign.as_uuid())
        .bind(list.as_uuid())
        .bind(tenant.as_uuid())
        .bind(SkipReason::NotOnWhatsapp.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    if let Some(after) = unanswered_after {
        skipped.never_replied = sqlx::query(
            "insert into campaign_skipped_contacts (campaign_id, row_number, reason)
             select $1, c.row_number, $5
             from contacts c
             join contact_outbound o on o.tenant_id = c.tenant_id and o.phone = c.phone
             where c.list_id = $2 and c.tenant_id = $3 and o.sent >= $4
               and not exists (
                   select 1 from contact_replies r
                   where r.tenant_id = c.tenant_id and r.phone = c.phone)
             on conflict (campaign_id, row_number) do nothing",
        )
        .bind(campaign.as_uuid())
        .bind(list.as_uuid())
        .bind(tenant.as_uuid())
        .bind(i64::from(after))
        .bind(SkipReason::NeverReplied.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    Ok(skipped)
}

/// Records which contacts of the tenant's list `campaign` leaves out when
/// it starts because a check found them not on WhatsApp
/// ([`skip_contacts`] without the engagement guard).
///
/// # Returns
/// How many it leaves out.
pub async fn skip_not_on_whatsapp(
    db: &PgPool,
    tenant: TenantId,
    campaign: CampaignId,
    list: ContactListId,
) -> Result<u64, sqlx::Error> {
    Ok(skip_contacts(db, tenant, campaign, list, true, None)
        .await?
        .not_on_whatsapp)
}
