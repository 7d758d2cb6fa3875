//! WhatsApp message templates: what an official (Cloud API) number must
//! send to start a conversation.
//!
//! Meta lets a Cloud API number write free text (or media) to a person only
//! inside the *customer-service window*: the 24 hours after that person
//! last wrote to the number ([`CUSTOMER_SERVICE_WINDOW`]). Outside it the
//! number can only send a template its WhatsApp Business Account had
//! approved; anything else fails with Meta's error 131047. So:
//!
//! - a template is used by name and language, with one text parameter per
//!   `{{n}}` of its body ([`SyncedTemplate::check_use`]), and only when
//!   Meta approved it ([`TemplateStatus::Approved`]);
//! - a free-text single send goes out only while the window is open
//!   ([`window_is_open`]).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::template::Template;
use crate::RefusalCode;

/// How long after a person last wrote a Cloud API number may write them
/// freely.
pub const CUSTOMER_SERVICE_WINDOW: TimeDelta = TimeDelta::hours(24);

/// The most parameters a template takes here (Meta's bodies have few).
pub const MAX_PARAMETERS: usize = 32;

/// The longest parameter value, in characters (Meta's limit for a body
/// parameter is 1,024 characters less the body).
pub const MAX_PARAMETER_CHARS: usize = 1024;

/// Whether a Cloud API number may write `peer` free text at `now`, `peer`
/// having last written to it at `last_inbound` (`None`: never).
pub fn window_is_open(last_inbound: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_inbound.is_some_and(|at| now - at < CUSTOMER_SERVICE_WINDOW)
}

/// Where Meta's review of a template stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateStatus {
    /// Approved: it can be sent.
    Approved,
    /// Waiting for review.
    Pending,
    /// Refused by the review.
    Rejected,
    /// Paused by Meta for bad quality.
    Paused,
    /// Disabled by Meta.
    Disabled,
    /// Being appealed.
    InAppeal,
    /// Any other status Meta may name (`PENDING_DELETION`, `DELETED`,
    /// `LIMIT_EXCEEDED`, ...).
    #[serde(other)]
    Other,
}

impl TemplateStatus {
    /// Reads Meta's word for it.
    pub fn of_meta(status: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(status.to_ascii_uppercase()))
            .unwrap_or(Self::Other)
    }

    /// As stored and shown: `APPROVED`, `PENDING`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "APPROVED",
            Self::Pending => "PENDING",
            Self::Rejected => "REJECTED",
            Self::Paused => "PAUSED",
            Self::Disabled => "DISABLED",
            Self::InAppeal => "IN_APPEAL",
            Self::Other => "OTHER",
        }
    }
}

/// What a template is for, as Meta categorises (and prices) it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateCategory {
    /// Promotions, offers, announcements.
    Marketing,
    /// About a transaction or an account (orders, reminders).
    Utility,
    /// One-time passwords.
    Authentication,
    /// Any other category Meta may name.
    #[serde(other)]
    Other,
}

impl TemplateCategory {
    /// Reads Meta's word for it.
    pub fn of_meta(category: &str) -> Self {
        serde_json::from_value(serde_json::Value::String(category.to_ascii_uppercase()))
            .unwrap_or(Self::Other)
    }

    /// As stored and shown: `MARKETING`, `UTILITY`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "MARKETING",
            Self::Utility => "UTILITY",
            Self::Authentication => "AUTHENTICATION",
            Self::Other => "OTHER",
        }
    }
}

/// How many `{{n}}` parameters a template text has: the highest `n`
/// (Meta numbers them from 1, without gaps).
pub fn count_parameters(text: &str) -> u32 {
    let mut highest = 0;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("}}") else { break };
        if let Ok(n) = rest[..end].trim().parse::<u32>() {
            highest = highest.max(n);
        }
        rest = &rest[end + 2..];
    }
    highest
}

/// A template as the number's WhatsApp Business Account has it (synced
/// from Meta): what a send is checked against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedTemplate {
    /// Its name (`order_update`).
    pub name: String,
    /// Its language (`id`, `en_US`).
    pub language: String,
    /// Where Meta's review stands.
    pub status: TemplateStatus,
    /// Its category.
    pub category: TemplateCategory,
    /// Its body's text, with `{{n}}` placeholders.
    pub body: Option<String>,
    /// How many `{{n}}` its body has.
    pub body_parameters: u32,
    /// Its header's format (`TEXT`, `IMAGE`, `DOCUMENT`, ...), if it has
    /// a header.
    pub header_format: Option<String>,
    /// Its header's text, for a text header.
    pub header_text: Option<String>,
    /// How many `{{n}}` its header has.
    pub header_parameters: u32,
}

impl SyncedTemplate {
    /// Its body as a recipient reads it: each `{{n}}` replaced by the
    /// `n`th of `parameters` (one without a value stays as it is). `None`
    /// for a template without a body.
    pub fn fill(&self, parameters: &[String]) -> Option<String> {
        let body = self.body.as_deref()?;
        let mut text = String::with_capacity(body.len());
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let value = after.find("}}").and_then(|end| {
                let n: usize = after[..end].trim().parse().ok()?;
                let value = parameters.get(n.checked_sub(1)?)?;
                Some((value, end))
            });
            match value {
                Some((value, end)) => {
                    text.push_str(value);
                    rest = &after[end + 2..];
                }
                None => {
                    text.push_str("{{");
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        Some(text)
    }
}

/// Why a template cannot be sent as asked. Each is a 422 with its own
/// code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateUseError {
    /// The session has no synced template of that name and language.
    #[error(
        "the session has no template {name:?} in language {language:?}: sync its templates (POST /api/v1/sessions/{{id}}/templates/sync) or check the name"
    )]
    NotFound {
        /// The name asked for.
        name: String,
        /// The language asked for.
        language: String,
    },
    /// Meta has not approved it.
    #[error(
        "the template {name:?} is {status:?}, not APPROVED: only approved templates can be sent"
    )]
    NotApproved {
        /// Its name.
        name: String,
        /// Its status.
        status: TemplateStatus,
    },
    /// Not as many parameters as its body has `{{n}}`.
    #[error(
        "the template {name:?} takes {expected} parameters (its body's {{{{n}}}}), not {given}"
    )]
    ParameterCount {
        /// Its name.
        name: String,
        /// How many its body has.
        expected: u32,
        /// How many were given.
        given: usize,
    },
    /// A header that needs parameters (a media header, or a text header
    /// with `{{1}}`): not sent by wablast yet.
    #[error(
        "the template {name:?} has a header that needs a parameter ({header}): such templates are not supported yet"
    )]
    UnsupportedHeader {
        /// Its name.
        name: String,
        /// The header's format.
        header: String,
    },
}

impl TemplateUseError {
    /// The stable API code of this refusal.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::NotFound { .. } => RefusalCode::TemplateNotFound,
            Self::NotApproved { .. } => RefusalCode::TemplateNotApproved,
            Self::ParameterCount { .. } => RefusalCode::TemplateParameterMismatch,
            Self::UnsupportedHeader { .. } => RefusalCode::TemplateNotSupported,
        }
    }
}

impl SyncedTemplate {
    /// Whether it can be sent with `parameters` body parameters: approved,
    /// as many as its body's `{{n}}`, and no header needing a parameter.
    pub fn check_use(&self, parameters: usize) -> Result<(), TemplateUseError> {
        if self.status != TemplateStatus::Approved {
            return Err(TemplateUseError::NotApproved {
                name: self.name.clone(),
                status: self.status,
            });
        }
        if let Some(format) = &self.header_format {
            let media = !format.eq_ignore_ascii_case("TEXT");
            if media || self.header_parameters > 0 {
                return Err(TemplateUseError::UnsupportedHeader {
                    name: self.name.clone(),
                    header: format.clone(),
                });
            }
        }
        if parameters != self.body_parameters as usize {
            return Err(TemplateUseError::ParameterCount {
                name: self.name.clone(),
                expected: self.body_parameters,
                given: parameters,
            });
        }
        Ok(())
    }
}

/// Why a template reference in a request is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateRefError {
    /// A name that is not Meta's shape.
    #[error("a template name is 1 to 512 of lower-case letters, digits and `_`")]
    Name,
    /// A language code that is not one.
    #[error("a template language is a code like `id` or `en_US`")]
    Language,
    /// Too many parameters.
    #[error("a template takes at most {MAX_PARAMETERS} parameters")]
    TooManyParameters,
    /// A blank or too long parameter.
    #[error("parameter {index} is blank or longer than {MAX_PARAMETER_CHARS} characters")]
    Parameter {
        /// Its position, from 1.
        index: usize,
    },
}

fn check_name(name: &str) -> Result<String, TemplateRefError> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(TemplateRefError::Name);
    }
    Ok(name.to_owned())
}

fn check_language(language: &str) -> Result<String, TemplateRefError> {
    let language = language.trim();
    if language.is_empty()
        || language.len() > 16
        || !language
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        return Err(TemplateRefError::Language);
    }
    Ok(language.to_owned())
}

/// A template with its parameters' values, as one message sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TemplateMessage {
    /// The template's name.
    #[schema(example = "order_update")]
    pub name: String,
    /// Its language.
    #[schema(example = "id")]
    pub language: String,
    /// The body's parameters, `{{1}}` first.
    #[serde(default)]
    pub parameters: Vec<String>,
}

impl TemplateMessage {
    /// A template message from a request: a valid name and language, and
    /// at most [`MAX_PARAMETERS`] parameters, none blank or longer than
    /// [`MAX_PARAMETER_CHARS`].
    pub fn new(
        name: &str,
        language: &str,
        parameters: Vec<String>,
    ) -> Result<Self, TemplateRefError> {
        if parameters.len() > MAX_PARAMETERS {
            return Err(TemplateRefError::TooManyParameters);
        }
        for (i, p) in parameters.iter().enumerate() {
            if p.trim().is_empty() || p.chars().count() > MAX_PARAMETER_CHARS {
                return Err(TemplateRefError::Parameter { index: i + 1 });
            }
        }
        Ok(Self {
            name: check_name(name)?,
            language: check_language(language)?,
            parameters,
        })
    }

    /// In words, as the history shows what was sent:
    /// `[template order_update/id] Andi | 50%`.
    pub fn describe(&self) -> String {
        let mut text = format!("[template {}/{}]", self.name, self.language);
        if !self.parameters.is_empty() {
            text.push(' ');
            text.push_str(&self.parameters.join(" | "));
        }
        text
    }
}

/// A campaign's template for its Cloud API senders: its parameters are
/// rendered per recipient like the campaign's text (`{{name}}`, a mapped
/// column, spintax).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignTemplate {
    /// The template's name.
    pub name: String,
    /// Its language.
    pub language: String,
    /// The body's parameters, `{{1}}` first, each a text template.
    #[serde(default)]
    pub parameters: Vec<Template>,
}

impl CampaignTemplate {
    /// A campaign template from a request (see [`TemplateMessage::new`]);
    /// each parameter parsed as a text template.
    pub fn new(
        name: &str,
        language: &str,
        parameters: Vec<Template>,
    ) -> Result<Self, TemplateRefError> {
        if parameters.len() > MAX_PARAMETERS {
            return Err(TemplateRefError::TooManyParameters);
        }
        Ok(Self {
            name: check_name(name)?,
            language: check_language(language)?,
            parameters,
        })
    }

    /// The template message of one recipient: each parameter rendered with
    /// the recipient's `values`, spintax seeded by `seed`.
    pub fn render(
        &self,
        values: &std::collections::BTreeMap<String, String>,
        seed: u64,
    ) -> Result<TemplateMessage, super::template::TemplateError> {
        let parameters = self
            .parameters
            .iter()
            .enumerate()
            .map(|(i, p)| p.render(values, seed.wrapping_add(i as u64)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TemplateMessage {
            name: self.name.clone(),
            language: self.language.clone(),
            parameters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced(status: TemplateStatus, body: &str) -> SyncedTemplate {
        SyncedTemplate {
            name: "promo".into(),
            language: "id".into(),
            status,
            category: TemplateCategory::Marketing,
            body: Some(body.into()),
            body_parameters: count_parameters(body),
            header_format: None,
            header_text: None,
            header_parameters: 0,
        }
    }

    #[test]
    fn a_body_is_filled_with_its_parameters_in_their_places() {
        let template = synced(
            TemplateStatus::Approved,
            "Halo {{1}}, pesanan {{2}} dikirim. {{1}}!",
        );
        let filled = template.fill(&["Andi".into(), "#42".into()]);
        assert_eq!(
            filled.as_deref(),
            Some("Halo Andi, pesanan #42 dikirim. Andi!")
        );
        // Without a value, or not Meta's, the placeholder stays.
        let filled = template.fill(&["Andi".into()]);
        assert_eq!(
            filled.as_deref(),
            Some("Halo Andi, pesanan {{2}} dikirim. Andi!")
        );
        let odd = synced(TemplateStatus::Approved, "{{name}} {{0}} {{1");
        assert_eq!(
            odd.fill(&["x".into()]).as_deref(),
            Some("{{name}} {{0}} {{1")
        );
        let no_body = SyncedTemplate {
            body: None,
            ..template
        };
        assert_eq!(no_body.fill(&[]), None);
    }

    #[test]
    fn parameters_are_counted_by_the_highest_placeholder() {
        assert_eq!(count_parameters("Hi {{1}}, code {{2}}!"), 2);
        assert_eq!(count_parameters("no parameters"), 0);
        assert_eq!(count_parameters("{{2}} then {{1}} and {{2}}"), 2);
        assert_eq!(count_parameters("{{name}} is not Meta's"), 0);
    }

    #[test]
    fn only_an_approved_template_with_its_parameters_is_sent() {
        let approved = synced(TemplateStatus::Approved, "Hi {{1}}, code {{2}}");
        assert_eq!(approved.check_use(2), Ok(()));
        assert!(matches!(
            approved.check_use(1),
            Err(TemplateUseError::ParameterCount {
                expected: 2,
                given: 1,
                ..
            })
        ));
        let pending = synced(TemplateStatus::Pending, "Hi {{1}}");
        assert!(matches!(
            pending.check_use(1),
            Err(TemplateUseError::NotApproved {
                status: TemplateStatus::Pending,
                ..
            })
        ));
        let mut image = synced(TemplateStatus::Approved, "Hi");
        image.header_format = Some("IMAGE".into());
        assert!(matches!(
            image.check_use(0),
            Err(TemplateUseError::UnsupportedHeader { .. })
        ));
    }

    #[test]
    fn the_window_is_open_for_24_hours_after_the_peer_wrote() {
        let now = Utc::now();
        assert!(!window_is_open(None, now));
        assert!(window_is_open(Some(now - TimeDelta::hours(23)), now));
        assert!(!window_is_open(Some(now - TimeDelta::hours(24)), now));
    }

    #[test]
    fn meta_s_words_read_as_statuses_and_categories() {
        assert_eq!(
            TemplateStatus::of_meta("APPROVED"),
            TemplateStatus::Approved
        );
        assert_eq!(
            TemplateStatus::of_meta("in_appeal"),
            TemplateStatus::InAppeal
        );
        assert_eq!(
            TemplateStatus::of_meta("LIMIT_EXCEEDED"),
            TemplateStatus::Other
        );
        assert_eq!(
            TemplateCategory::of_meta("UTILITY"),
            TemplateCategory::Utility
        );
    }

    #[test]
    fn references_are_checked_and_campaign_parameters_rendered() {
        assert!(TemplateMessage::new("Promo!", "id", vec![]).is_err());
        assert!(TemplateMessage::new("promo", "id", vec![" ".into()]).is_err());
        let t = CampaignTemplate::new(
            "promo",
            "id",
            vec![Template::parse("{{name|Kak}}").unwrap()],
        )
        .unwrap();
        let values = [("name".to_owned(), "Andi".to_owned())]
            .into_iter()
            .collect();
        let message = t.render(&values, 7).unwrap();
        assert_eq!(message.parameters, ["Andi"]);
        assert_eq!(message.describe(), "[template promo/id] Andi");
    }
}
