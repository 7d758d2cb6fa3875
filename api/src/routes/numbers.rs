//! Number checks: whether numbers are on WhatsApp, asked through a
//! session at its own pace for checks (apart from its sends), and kept for
//! 7 days per tenant so that a number is not asked about again and again.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use wablast_domain::types::SessionId;
use wablast_domain::types::phone::{Phone, Region};
use wablast_projections::queries::number_checks::{self, NumberCheck};
use wablast_workflows::control::{CheckNumbersRequest, CheckNumbersResponse, Verb};

use super::sessions::{ask_engine_within, ready_session};
use crate::auth::Caller;
use crate::error::ErrorBody;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check_numbers))
}

/// The most numbers one request checks.
pub const MAX_NUMBERS: usize = 100;

/// How long the engine may take over one request's checks; numbers it does
/// not reach are `pending` (ask again later).
const WITHIN: Duration = Duration::from_secs(20);

/// Numbers to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckNumbers {
    /// 1 to 100 numbers, in any form a contact import takes.
    #[schema(example = json!(["0812-3456-7890", "+62 813 1111 2222"]))]
    pub numbers: Vec<String>,
    /// The region national numbers are read in (default `ID`).
    pub default_region: Option<String>,
}

/// What became of one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Asked now.
    Checked,
    /// Answered from a check of the last 7 days.
    Cached,
    /// Not reached in this request (the session's pace): ask again later.
    Pending,
    /// Not a valid mobile number: not asked.
    Invalid,
}

/// One number's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberResult {
    /// The number as given.
    pub input: String,
    /// It in E.164; null when it is not a valid mobile number.
    #[schema(example = "+6281234567890")]
    pub phone: Option<String>,
    /// Whether it is on WhatsApp; null when not known (pending, invalid).
    pub on_whatsapp: Option<bool>,
    /// The chat id WhatsApp knows it by, when it is on WhatsApp.
    #[schema(example = "6281234567890@c.us")]
    pub chat_id: Option<String>,
    /// When it was checked.
    pub checked_at: Option<DateTime<Utc>>,
    /// Whether the answer came from the cache.
    pub cached: bool,
    /// `checked`, `cached`, `pending` or `invalid`.
    pub status: CheckStatus,
    /// Why an invalid number is not one.
    pub error: Option<String>,
}

/// The answers, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberResults {
    /// One per number given.
    pub results: Vec<NumberResult>,
}

/// Checks whether numbers are on WhatsApp.
///
/// A number checked by one of the tenant's sessions in the last 7 days is
/// answered from that check (`cached`). The others are asked through this
/// session, one at a time at its pace for checks (by default at most one
/// per 2 seconds, with a random delay on top), apart from its sends: asking
/// about many numbers quickly is what gets a number banned. Numbers not
/// reached within 20 seconds are `pending`: ask again later (those checked
/// meanwhile then come from the cache). To check a whole contact list, send
/// its numbers in several requests.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/check-numbers", tag = "sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = Uuid, Path, description = "The session that asks")),
    request_body = CheckNumbers,
    responses(
        (status = 200, description = "Each number's answer, in order", body = NumberResults),
        (status = 400, description = "`validation_failed`: no numbers, more than 100, a bad region, or the driver cannot check numbers", body = ErrorBody),
        (status = 401, description = "No or bad credentials", body = ErrorBody),
        (status = 404, description = "No such session in the caller's tenant", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the session is not ready", body = ErrorBody),
        (status = 502, description = "`driver_failed`: WhatsApp or the driver's server failed; `engine_error`", body = ErrorBody),
        (status = 503, description = "`engine_unavailable`: no engine runs the session", body = ErrorBody),
    ))]
async fn check_numbers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<CheckNumbers>,
) -> Result<axum::Json<NumberResults>, ApiError> {
    if body.numbers.is_empty() || body.numbers.len() > MAX_NUMBERS {
        return Err(ApiError::invalid_field(
            "numbers",
            format!("1 to {MAX_NUMBERS} numbers a request"),
        ));
    }
    let region = match body.default_region.as_deref() {
        None => Region::ID,
        Some(code) => Region::parse(code)
            .map_err(|err| ApiError::invalid_field("default_region", err.to_string()))?,
    };
    ready_session(&state, &caller, id, "numbers are checked").await?;
    let parsed: Vec<(String, Result<Phone, String>)> = body
        .numbers
        .into_iter()
        .map(|input| {
            let phone = Phone::parse(&input, region).map_err(|err| err.to_string());
            (input, phone)
        })
        .collect();
    let mut phones: Vec<Phone> = parsed
        .iter()
        .filter_map(|(_, phone)| phone.as_ref().ok().cloned())
        .collect();
    phones.sort();
    phones.dedup();
    let texts: Vec<String> = phones.iter().map(|p| p.as_str().to_owned()).collect();
    let mut known: HashMap<String, (NumberCheck, bool)> = number_checks::fresh(
        &state.db,
        caller.tenant_id,
        &texts,
        Utc::now() - number_checks::KEPT,
    )
    .await?
    .into_iter()
    .map(|check| (check.phone.clone(), (check, true)))
    .collect();
    let unknown: Vec<Phone> = phones
        .into_iter()
        .filter(|p| !known.contains_key(p.as_str()))
        .collect();
    if !unknown.is_empty() {
        let answer: CheckNumbersResponse = ask_engine_within(
            &state,
            &caller,
            id,
            Verb::CheckNumbers,
            &CheckNumbersRequest {
                phones: unknown,
                within_ms: WITHIN.as_millis() as u64,
            },
            WITHIN + Duration::from_secs(5),
        )
        .await?;
        let checked: Vec<NumberCheck> = answer
            .checked
            .into_iter()
            .map(|c| NumberCheck {
                phone: c.phone.as_str().to_owned(),
                on_whatsapp: c.on_whatsapp,
                chat_id: c.chat_id,
                checked_at: c.checked_at,
            })
            .collect();
        number_checks::record(
            &state.db,
            caller.tenant_id,
            SessionId::from_uuid(id),
            &checked,
        )
        .await?;
        known.extend(
            checked
                .into_iter()
                .map(|check| (check.phone.clone(), (check, false))),
        );
    }
    let results = parsed
        .into_iter()
        .map(|(input, phone)| match phone {
            Err(error) => NumberResult {
                input,
                phone: None,
                on_whatsapp: None,
                chat_id: None,
                checked_at: None,
                cached: false,
                status: CheckStatus::Invalid,
                error: Some(error),
            },
            Ok(phone) => match known.get(phone.as_str()) {
                Some((check, cached)) => NumberResult {
                    input,
                    phone: Some(check.phone.clone()),
                    on_whatsapp: Some(check.on_whatsapp),
                    chat_id: check.chat_id.clone(),
                    checked_at: Some(check.checked_at),
                    cached: *cached,
                    status: if *cached {
                        CheckStatus::Cached
                    } else {
                        CheckStatus::Checked
                    },
                    error: None,
                },
                None => NumberResult {
                    input,
                    phone: Some(phone.as_str().to_owned()),
                    on_whatsapp: None,
                    chat_id: None,
                    checked_at: None,
                    cached: false,
                    status: CheckStatus::Pending,
                    error: None,
                },
            },
        })
        .collect();
    Ok(axum::Json(NumberResults { results }))
}
