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
//!   ([`window_is_open`]);
//! - a template with a header gets what its header needs
//!   ([`HeaderKind`]): the values of a text header's `{{n}}`, or an
//!   attachment of the right type for an image, video or document header
//!   ([`TemplateHeader`]).

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::MediaId;
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

/// What a template's header is, as Meta's `format` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HeaderKind {
    /// Text, perhaps with `{{1}}`.
    Text,
    /// A picture (JPEG or PNG).
    Image,
    /// A video (MP4 or 3GPP).
    Video,
    /// A document (a PDF, say), shown with its file name.
    Document,
    /// A location, or any header wablast cannot fill.
    Unsupported,
}

impl HeaderKind {
    /// Reads Meta's `format` (`TEXT`, `IMAGE`, ...).
    pub fn of_meta(format: &str) -> Self {
        match format.to_ascii_uppercase().as_str() {
            "TEXT" => Self::Text,
            "IMAGE" => Self::Image,
            "VIDEO" => Self::Video,
            "DOCUMENT" => Self::Document,
            _ => Self::Unsupported,
        }
    }

    /// As shown: `text`, `image`, `video`, `document`, `unsupported`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
            Self::Unsupported => "unsupported",
        }
    }

    /// Whether it is filled with an attachment.
    pub const fn is_media(self) -> bool {
        matches!(self, Self::Image | Self::Video | Self::Document)
    }

    /// Whether an attachment of `mime_type` can fill it (Meta takes JPEG
    /// and PNG pictures, MP4 and 3GPP videos, and any file as a
    /// document).
    pub fn accepts(self, mime_type: &str) -> bool {
        match self {
            Self::Image => matches!(mime_type, "image/jpeg" | "image/png"),
            Self::Video => matches!(mime_type, "video/mp4" | "video/3gpp"),
            Self::Document => true,
            Self::Text | Self::Unsupported => false,
        }
    }
}

/// What a send gives a template's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderGiven {
    /// Nothing.
    Nothing,
    /// This many text parameters.
    Text(usize),
    /// An attachment.
    Media,
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
    /// a header ([`HeaderKind::of_meta`]).
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
        self.body.as_deref().map(|body| fill(body, parameters))
    }

    /// Its text header as a recipient reads it (see [`Self::fill`]).
    pub fn fill_header(&self, parameters: &[String]) -> Option<String> {
        self.header_text
            .as_deref()
            .map(|text| fill(text, parameters))
    }
}

/// `text` with each `{{n}}` replaced by the `n`th of `parameters`.
fn fill(body: &str, parameters: &[String]) -> String {
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
    text
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
    /// A header wablast cannot fill (a location).
    #[error(
        "the template {name:?} has a {header} header: wablast can fill text, image, video and document headers only"
    )]
    UnsupportedHeader {
        /// Its name.
        name: String,
        /// The header's format.
        header: String,
    },
    /// The header given does not fit the template's.
    #[error("the template {name:?}: {mismatch}")]
    Header {
        /// Its name.
        name: String,
        /// How it does not fit.
        mismatch: HeaderMismatch,
    },
}

/// Why a send's header does not fit its template's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMismatch {
    /// The template has no header (or one without parameters), and the
    /// send gave it some.
    NoneExpected,
    /// A text header with this many `{{n}}`, not as many given.
    TextParameters(u32),
    /// A media header and no attachment.
    MediaExpected(HeaderKind),
}

impl std::fmt::Display for HeaderMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoneExpected => f.write_str("it has no header to fill: give no header"),
            Self::TextParameters(n) => write!(
                f,
                "its text header takes {n} parameters (its {{{{n}}}}): give as many header_parameters"
            ),
            Self::MediaExpected(kind) => write!(
                f,
                "its header is {}: give header_media_id, an attachment of that type",
                match kind {
                    HeaderKind::Image => "an image (JPEG or PNG)",
                    HeaderKind::Video => "a video (MP4 or 3GPP)",
                    _ => "a document",
                }
            ),
        }
    }
}

impl TemplateUseError {
    /// The stable API code of this refusal.
    pub fn code(&self) -> RefusalCode {
        match self {
            Self::NotFound { .. } => RefusalCode::TemplateNotFound,
            Self::NotApproved { .. } => RefusalCode::TemplateNotApproved,
            Self::ParameterCount { .. } => RefusalCode::TemplateParameterMismatch,
            Self::UnsupportedHeader { .. } => RefusalCode::TemplateNotSupported,
            Self::Header { .. } => RefusalCode::TemplateParameterMismatch,
        }
    }
}

impl SyncedTemplate {
    /// What its header is, if it has one.
    pub fn header_kind(&self) -> Option<HeaderKind> {
        self.header_format.as_deref().map(HeaderKind::of_meta)
    }

    /// What a send must give its header: an attachment for a media
    /// header, the values of a text header's `{{n}}`, or nothing.
    pub fn header_needed(&self) -> HeaderGiven {
        match self.header_kind() {
            Some(kind) if kind.is_media() => HeaderGiven::Media,
            Some(HeaderKind::Text) if self.header_parameters > 0 => {
                HeaderGiven::Text(self.header_parameters as usize)
            }
            _ => HeaderGiven::Nothing,
        }
    }

    /// Whether it can be sent with `parameters` body parameters and
    /// `header`: approved, as many as its body's `{{n}}`, and its header
    /// filled as it needs (text parameters, an attachment, or nothing).
    pub fn check_use(
        &self,
        parameters: usize,
        header: HeaderGiven,
    ) -> Result<(), TemplateUseError> {
        if self.status != TemplateStatus::Approved {
            return Err(TemplateUseError::NotApproved {
                name: self.name.clone(),
                status: self.status,
            });
        }
        let mismatch = |mismatch| TemplateUseError::Header {
            name: self.name.clone(),
            mismatch,
        };
        match (self.header_kind(), header) {
            (Some(HeaderKind::Unsupported), _) => {
                return Err(TemplateUseError::UnsupportedHeader {
                    name: self.name.clone(),
                    header: self.header_format.clone().unwrap_or_default(),
                });
            }
            (Some(kind), HeaderGiven::Media) if kind.is_media() => {}
            (Some(kind), _) if kind.is_media() => {
                return Err(mismatch(HeaderMismatch::MediaExpected(kind)));
            }
            (Some(HeaderKind::Text), HeaderGiven::Text(n))
                if n == self.header_parameters as usize => {}
            (Some(HeaderKind::Text), HeaderGiven::Nothing) if self.header_parameters == 0 => {}
            (Some(HeaderKind::Text), _) if self.header_parameters > 0 => {
                return Err(mismatch(HeaderMismatch::TextParameters(
                    self.header_parameters,
                )));
            }
            (_, HeaderGiven::Nothing) => {}
            (_, _) => return Err(mismatch(HeaderMismatch::NoneExpected)),
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
    /// A bad header parameter.
    #[error("header: {0}")]
    Header(Box<TemplateRefError>),
}

impl TemplateRefError {
    fn in_header(self) -> Self {
        Self::Header(Box::new(self))
    }
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

/// What fills a template's header, as one message sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateHeader {
    /// The values of a text header's `{{1}}`, ...
    Text {
        /// The values, `{{1}}` first.
        parameters: Vec<String>,
    },
    /// The attachment of an image, video or document header (from the
    /// media store).
    Media {
        /// The attachment.
        media_id: MediaId,
    },
}

impl TemplateHeader {
    /// What it gives the template's header.
    pub fn given(&self) -> HeaderGiven {
        match self {
            Self::Text { parameters } => HeaderGiven::Text(parameters.len()),
            Self::Media { .. } => HeaderGiven::Media,
        }
    }

    /// Its attachment, for a media header.
    pub fn media_id(&self) -> Option<MediaId> {
        match self {
            Self::Media { media_id } => Some(*media_id),
            Self::Text { .. } => None,
        }
    }
}

fn check_parameters(parameters: &[String]) -> Result<(), TemplateRefError> {
    if parameters.len() > MAX_PARAMETERS {
        return Err(TemplateRefError::TooManyParameters);
    }
    for (i, p) in parameters.iter().enumerate() {
        if p.trim().is_empty() || p.chars().count() > MAX_PARAMETER_CHARS {
            return Err(TemplateRefError::Parameter { index: i + 1 });
        }
    }
    Ok(())
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
    /// What fills its header, for a template whose header needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<TemplateHeader>,
}

impl TemplateMessage {
    /// A template message from a request: a valid name and language, and
    /// at most [`MAX_PARAMETERS`] parameters (body and text header each),
    /// none blank or longer than [`MAX_PARAMETER_CHARS`].
    pub fn new(
        name: &str,
        language: &str,
        parameters: Vec<String>,
        header: Option<TemplateHeader>,
    ) -> Result<Self, TemplateRefError> {
        check_parameters(&parameters)?;
        if let Some(TemplateHeader::Text { parameters }) = &header {
            check_parameters(parameters).map_err(TemplateRefError::in_header)?;
        }
        Ok(Self {
            name: check_name(name)?,
            language: check_language(language)?,
            parameters,
            header,
        })
    }

    /// What it gives its template's header.
    pub fn header_given(&self) -> HeaderGiven {
        self.header
            .as_ref()
            .map_or(HeaderGiven::Nothing, TemplateHeader::given)
    }

    /// In words, as the history shows what was sent:
    /// `[template order_update/id] Andi | 50%`.
    pub fn describe(&self) -> String {
        let mut text = format!("[template {}/{}]", self.name, self.language);
        if let Some(TemplateHeader::Text { parameters }) = &self.header {
            text.push_str(" (");
            text.push_str(&parameters.join(" | "));
            text.push(')');
        }
        if !self.parameters.is_empty() {
            text.push(' ');
            text.push_str(&self.parameters.join(" | "));
        }
        text
    }
}

/// What fills a campaign template's header: text parameters rendered per
/// recipient, or one attachment for all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CampaignTemplateHeader {
    /// A text header's parameters, each a text template.
    Text {
        /// `{{1}}` first.
        parameters: Vec<Template>,
    },
    /// An image, video or document header's attachment.
    Media {
        /// The attachment.
        media_id: MediaId,
    },
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
    /// What fills its header, for a template whose header needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<CampaignTemplateHeader>,
}

impl CampaignTemplate {
    /// A campaign template from a request (see [`TemplateMessage::new`]);
    /// each parameter parsed as a text template.
    pub fn new(
        name: &str,
        language: &str,
        parameters: Vec<Template>,
        header: Option<CampaignTemplateHeader>,
    ) -> Result<Self, TemplateRefError> {
        if parameters.len() > MAX_PARAMETERS {
            return Err(TemplateRefError::TooManyParameters);
        }
        if let Some(CampaignTemplateHeader::Text { parameters }) = &header
            && parameters.len() > MAX_PARAMETERS
        {
            return Err(TemplateRefError::in_header(
                TemplateRefError::TooManyParameters,
            ));
        }
        Ok(Self {
            name: check_name(name)?,
            language: check_language(language)?,
            parameters,
            header,
        })
    }

    /// What it gives its template's header.
    pub fn header_given(&self) -> HeaderGiven {
        match &self.header {
            None => HeaderGiven::Nothing,
            Some(CampaignTemplateHeader::Text { parameters }) => {
                HeaderGiven::Text(parameters.len())
            }
            Some(CampaignTemplateHeader::Media { .. }) => HeaderGiven::Media,
        }
    }

    /// Its header's attachment, for a media header.
    pub fn header_media_id(&self) -> Option<MediaId> {
        match &self.header {
            Some(CampaignTemplateHeader::Media { media_id }) => Some(*media_id),
            _ => None,
        }
    }

    /// Its parameters as text templates: the header's, then the body's
    /// (what variables they use).
    pub fn all_parameters(&self) -> impl Iterator<Item = &Template> {
        let header = match &self.header {
            Some(CampaignTemplateHeader::Text { parameters }) => parameters.as_slice(),
            _ => &[],
        };
        header.iter().chain(&self.parameters)
    }

    /// The template message of one recipient: each parameter rendered with
    /// the recipient's `values`, spintax seeded by `seed`.
    pub fn render(
        &self,
        values: &std::collections::BTreeMap<String, String>,
        seed: u64,
    ) -> Result<TemplateMessage, super::template::TemplateError> {
        let render = |parameters: &[Template], offset: u64| {
            parameters
                .iter()
                .enumerate()
                .map(|(i, p)| p.render(values, seed.wrapping_add(offset + i as u64)))
                .collect::<Result<Vec<_>, _>>()
        };
        let parameters = render(&self.parameters, 0)?;
        let header = match &self.header {
            None => None,
            Some(CampaignTemplateHeader::Text { parameters }) => Some(TemplateHeader::Text {
                parameters: render(parameters, MAX_PARAMETERS as u64)?,
            }),
            Some(CampaignTemplateHeader::Media { media_id }) => Some(TemplateHeader::Media {
                media_id: *media_id,
            }),
        };
        Ok(TemplateMessage {
            name: self.name.clone(),
            language: self.language.clone(),
            parameters,
            header,
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
        assert_eq!(approved.check_use(2, HeaderGiven::Nothing), Ok(()));
        assert!(matches!(
            approved.check_use(1, HeaderGiven::Nothing),
            Err(TemplateUseError::ParameterCount {
                expected: 2,
                given: 1,
                ..
            })
        ));
        let pending = synced(TemplateStatus::Pending, "Hi {{1}}");
        assert!(matches!(
            pending.check_use(1, HeaderGiven::Nothing),
            Err(TemplateUseError::NotApproved {
                status: TemplateStatus::Pending,
                ..
            })
        ));
    }

    #[test]
    fn a_header_gets_what_its_format_needs() {
        let header = |format: &str, parameters: u32| SyncedTemplate {
            header_format: Some(format.into()),
            header_parameters: parameters,
            ..synced(TemplateStatus::Approved, "Hi")
        };
        let mismatch = |t: &SyncedTemplate, given| match t.check_use(0, given) {
            Err(TemplateUseError::Header { mismatch, .. }) => Some(mismatch),
            _ => None,
        };
        // A media header takes an attachment, and only that.
        let image = header("IMAGE", 0);
        assert_eq!(image.check_use(0, HeaderGiven::Media), Ok(()));
        for given in [HeaderGiven::Nothing, HeaderGiven::Text(1)] {
            assert_eq!(
                mismatch(&image, given),
                Some(HeaderMismatch::MediaExpected(HeaderKind::Image))
            );
        }
        assert_eq!(
            header("document", 0).check_use(0, HeaderGiven::Media),
            Ok(())
        );
        // A text header with {{1}} takes as many parameters.
        let text = header("TEXT", 1);
        assert_eq!(text.check_use(0, HeaderGiven::Text(1)), Ok(()));
        for given in [
            HeaderGiven::Nothing,
            HeaderGiven::Text(2),
            HeaderGiven::Media,
        ] {
            assert_eq!(
                mismatch(&text, given),
                Some(HeaderMismatch::TextParameters(1))
            );
        }
        // A fixed text header, or none, takes nothing.
        for fixed in [header("TEXT", 0), synced(TemplateStatus::Approved, "Hi")] {
            assert_eq!(fixed.check_use(0, HeaderGiven::Nothing), Ok(()));
            assert_eq!(
                mismatch(&fixed, HeaderGiven::Media),
                Some(HeaderMismatch::NoneExpected)
            );
        }
        // A location header cannot be filled here.
        assert!(matches!(
            header("LOCATION", 0).check_use(0, HeaderGiven::Nothing),
            Err(TemplateUseError::UnsupportedHeader { .. })
        ));
        assert_eq!(
            TemplateUseError::Header {
                name: "x".into(),
                mismatch: HeaderMismatch::NoneExpected
            }
            .code(),
            RefusalCode::TemplateParameterMismatch
        );
    }

    #[test]
    fn header_kinds_take_the_attachments_meta_takes() {
        assert!(HeaderKind::Image.accepts("image/png"));
        assert!(!HeaderKind::Image.accepts("application/pdf"));
        assert!(HeaderKind::Video.accepts("video/mp4"));
        assert!(!HeaderKind::Video.accepts("image/jpeg"));
        assert!(HeaderKind::Document.accepts("application/pdf"));
        assert!(!HeaderKind::Text.accepts("image/png"));
        assert_eq!(HeaderKind::of_meta("Video"), HeaderKind::Video);
        assert_eq!(HeaderKind::of_meta("LOCATION"), HeaderKind::Unsupported);
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
        assert!(TemplateMessage::new("Promo!", "id", vec![], None).is_err());
        assert!(TemplateMessage::new("promo", "id", vec![" ".into()], None).is_err());
        let blank_header = Some(TemplateHeader::Text {
            parameters: vec!["".into()],
        });
        assert!(matches!(
            TemplateMessage::new("promo", "id", vec![], blank_header),
            Err(TemplateRefError::Header(_))
        ));
        let parameter = |text| Template::parse(text).unwrap();
        let t = CampaignTemplate::new(
            "promo",
            "id",
            vec![parameter("{{name|Kak}}")],
            Some(CampaignTemplateHeader::Text {
                parameters: vec![parameter("Promo {{city|kota}}")],
            }),
        )
        .unwrap();
        assert_eq!(t.header_given(), HeaderGiven::Text(1));
        assert_eq!(t.all_parameters().count(), 2);
        let values = [("name".to_owned(), "Andi".to_owned())]
            .into_iter()
            .collect();
        let message = t.render(&values, 7).unwrap();
        assert_eq!(message.parameters, ["Andi"]);
        assert_eq!(
            message.header,
            Some(TemplateHeader::Text {
                parameters: vec!["Promo kota".into()]
            })
        );
        assert_eq!(message.header_given(), HeaderGiven::Text(1));
        assert_eq!(message.describe(), "[template promo/id] (Promo kota) Andi");
        // A media header is the same attachment for everyone.
        let media = MediaId::from_uuid(uuid::Uuid::from_u128(9));
        let t = CampaignTemplate::new(
            "promo",
            "id",
            vec![],
            Some(CampaignTemplateHeader::Media { media_id: media }),
        )
        .unwrap();
        let message = t.render(&values, 7).unwrap();
        assert_eq!(
            message.header.as_ref().and_then(TemplateHeader::media_id),
            Some(media)
        );
        assert_eq!(message.header_given(), HeaderGiven::Media);
    }
}
