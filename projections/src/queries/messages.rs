//! A campaign's messages: `GET /api/v1/campaigns/{id}/messages` and
//! `GET /api/v1/campaigns/{id}/export` (CSV).

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{BoxStream, StreamExt};
use serde::Serialize;
use sqlx::{Executor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use wablast_domain::types::{CampaignId, TenantId};

use super::{Page, Paged, campaigns};

/// A message (one recipient of a campaign) as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MessageView {
    /// Its id.
    pub id: Uuid,
    /// The recipient, E.164.
    pub phone: String,
    /// The recipient's name, from the contact list.
    pub name: Option<String>,
    /// `queued | sending | sent | delivered | read | failed | cancelled |
    /// unknown`.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Attempts made so far.
    pub attempts: i32,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// The sender meant for it, then the one that sent it.
    pub session_id: Uuid,
    /// The text it was sent with (its template rendered for the
    /// recipient), once a sender took it.
    pub text: Option<String>,
}

/// The messages of one of the tenant's campaigns, by id, only those in
/// `status` when given.
///
/// # Returns
/// `None` if the tenant has no campaign with this id (another tenant's
/// included).
pub async fn list_for_campaign(
    pool: &PgPool,
    tenant: TenantId,
    campaign_id: CampaignId,
    status: Option<&str>,
    page: &Page,
) -> Result<Option<Paged<MessageView>>, sqlx::Error> {
    if !campaigns::exists(pool, tenant, campaign_id).await? {
        return Ok(None);
    }
    let mut q = QueryBuilder::<Postgres>::new(
        "select id, phone, name, status, error, attempts, sent_at, delivered_at, read_at, \
                session_id, text \
         from messages where tenant_id = ",
    );
    q.push_bind(*tenant.as_uuid())
        .push(" and campaign_id = ")
        .push_bind(*campaign_id.as_uuid());
    if let Some(status) = status {
        q.push(" and status = ").push_bind(status.to_owned());
    }
    if let Some(after) = page.cursor() {
        q.push(" and id > ").push_bind(*after);
    }
    q.push(" order by id limit ").push_bind(page.fetch());
    let rows = q.build_query_as::<MessageView>().fetch_all(pool).await?;
    Ok(Some(Paged::from_rows(rows, page, |row| row.id)))
}

/// The first line of the CSV export (without its line break): the
/// documented columns, then the text each message was sent with.
pub const EXPORT_HEADER: &str = "phone,name,status,error,sent_at,delivered_at,read_at,text";

/// The line break between CSV lines (RFC 4180).
pub const CSV_LINE_BREAK: &str = "\r\n";

/// A line of the CSV export.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportRow {
    /// The recipient, E.164.
    pub phone: String,
    /// The recipient's name.
    pub name: Option<String>,
    /// The message's status.
    pub status: String,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was read.
    pub read_at: Option<DateTime<Utc>>,
    /// The text it was sent with.
    pub text: Option<String>,
}

/// The rows of the export of one of the tenant's campaigns, by message id,
/// streamed from PostgreSQL as they come (one connection of the pool is
/// held until the stream ends or is dropped).
///
/// # Returns
/// `None` if the tenant has no campaign with this id (another tenant's
/// included).
pub async fn export(
    pool: &PgPool,
    tenant: TenantId,
    campaign_id: CampaignId,
) -> Result<Option<BoxStream<'static, Result<ExportRow, sqlx::Error>>>, sqlx::Error> {
    if !campaigns::exists(pool, tenant, campaign_id).await? {
        return Ok(None);
    }
    let query = sqlx::query_as::<_, ExportRow>(
        "select phone, name, status, error, sent_at, delivered_at, read_at, text \
         from messages where tenant_id = $1 and campaign_id = $2 order by id",
    )
    .bind(*tenant.as_uuid())
    .bind(*campaign_id.as_uuid());
    // The pool's executor takes its own handle on the pool: the stream
    // borrows nothing and can be the body of a response.
    let rows = Executor::fetch(pool, query)
        .map(|row| row.and_then(|row| <ExportRow as sqlx::FromRow<_>>::from_row(&row)))
        .boxed();
    Ok(Some(rows))
}

/// One line of the CSV export (without its line break, see
/// [`CSV_LINE_BREAK`]), under [`EXPORT_HEADER`].
///
/// Fields are quoted as RFC 4180 says (those holding a comma, a quote, CR
/// or LF; quotes doubled). Text a spreadsheet would take for a formula (it
/// starts with `=`, `+`, `-`, `@`, tab or CR) gets a leading `'`, except a
/// phone number in E.164 form (`+` and digits), which is data.
pub fn csv_line(row: &ExportRow) -> String {
    let mut line = String::with_capacity(128);
    let phone = if is_e164(&row.phone) {
        row.phone.clone()
    } else {
        defuse(&row.phone)
    };
    push_field(&mut line, &phone);
    line.push(',');
    push_field(&mut line, &defuse(row.name.as_deref().unwrap_or("")));
    line.push(',');
    push_field(&mut line, &defuse(&row.status));
    line.push(',');
    push_field(&mut line, &defuse(row.error.as_deref().unwrap_or("")));
    for at in [row.sent_at, row.delivered_at, row.read_at] {
        line.push(',');
        if let Some(at) = at {
            line.push_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        }
    }
    line.push(',');
    push_field(&mut line, &defuse(row.text.as_deref().unwrap_or("")));
    line
}

/// `+` and 1 to 15 digits.
fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The text, with a `'` before it if a spreadsheet would run it as a
/// formula.
fn defuse(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Appends a field, quoted if it must be.
fn push_field(line: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        line.push('"');
        line.push_str(&field.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(field);
    }
}

/// Whether one of the tenant's campaigns has any message at all (queued
/// alone or in a batch), as far as the `messages` projection has applied.
pub async fn any_for_campaign(
    db: &PgPool,
    tenant: TenantId,
    campaign: CampaignId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from messages where tenant_id = $1 and campaign_id = $2)",
    )
    .bind(tenant.as_uuid())
    .bind(campaign.as_uuid())
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn row(phone: &str, name: Option<&str>, error: Option<&str>) -> ExportRow {
        ExportRow {
            phone: phone.to_owned(),
            name: name.map(str::to_owned),
            status: "failed".to_owned(),
            error: error.map(str::to_owned),
            sent_at: None,
            delivered_at: None,
            read_at: None,
            text: None,
        }
    }

    #[test]
    fn plain_fields_are_written_as_they_are() {
        let mut r = row("+6281234567890", Some("Budi"), None);
        r.status = "read".to_owned();
        r.sent_at = Some(Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap());
        r.read_at = Some(
            Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 6).unwrap()
                + chrono::Duration::milliseconds(250),
        );
        assert_eq!(
            csv_line(&r),
            "+6281234567890,Budi,read,,2025-01-02T03:04:05Z,,2025-01-02T03:04:06.250Z,"
        );
        assert_eq!(
            EXPORT_HEADER.split(',').count(),
            csv_line(&r).split(',').count()
        );
    }

    #[test]
    fn the_text_sent_is_the_last_column_quoted_and_defused_like_the_rest() {
        let mut r = row("+62811", Some("Budi"), None);
        r.text = Some("Halo Budi, promo \"Lebaran\"!\nYuk".to_owned());
        assert_eq!(
            csv_line(&r),
            "+62811,Budi,failed,,,,,\"Halo Budi, promo \"\"Lebaran\"\"!\nYuk\""
        );
        r.text = Some("=1+1".to_owned());
        assert!(csv_line(&r).ends_with(",'=1+1"));
        assert!(EXPORT_HEADER.ends_with(",read_at,text"));
    }

    #[test]
    fn fields_are_quoted_as_rfc_4180_says() {
        assert_eq!(
            csv_line(&row("+62811", Some("Budi, S.H."), Some("said \"no\""))),
            "+62811,\"Budi, S.H.\",failed,\"said \"\"no\"\"\",,,,"
        );
        assert_eq!(
            csv_line(&row("+62811", Some("two\nlines"), Some("cr\rhere"))),
            "+62811,\"two\nlines\",failed,\"cr\rhere\",,,,"
        );
        assert_eq!(
            csv_line(&row("+62811", Some("\""), None)),
            "+62811,\"\"\"\",failed,,,,,"
        );
    }

    #[test]
    fn formulas_are_defused_but_phones_are_not() {
        for (text, expected) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("a=b", "a=b"),
        ] {
            assert_eq!(
                csv_line(&row("+62811", Some(text), Some(text))),
                format!("+62811,{expected},failed,{expected},,,,")
            );
        }
        // CR needs the quote as well as the guard.
        assert_eq!(
            csv_line(&row("+62811", Some("\r=cmd"), None)),
            "+62811,\"'\r=cmd\",failed,,,,,"
        );
        // A formula with a comma: guarded, then quoted.
        assert_eq!(
            csv_line(&row("+62811", Some("=HYPERLINK(\"x\",\"y\")"), None)),
            "+62811,\"'=HYPERLINK(\"\"x\"\",\"\"y\"\")\",failed,,,,,"
        );
        // Phones: E.164 is data, anything else is text like the rest.
        assert!(csv_line(&row("+6281234567890", None, None)).starts_with("+6281234567890,"));
        assert!(csv_line(&row("+62=1", None, None)).starts_with("'+62=1,"));
        assert!(csv_line(&row("=cmd", None, None)).starts_with("'=cmd,"));
    }
}
