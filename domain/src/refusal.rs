//! The stable codes of the domain's refusals: what an aggregate (or a value
//! type that parses) answers when a rule says no. The API answers them as
//! error codes, with the HTTP status it picks for each (the domain knows no
//! HTTP); their strings are part of the REST contract (the `code` of every error body) and of the
//! events that record a refusal, so they never change.

use std::fmt;

macro_rules! refusal_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// The stable code of a refusal. Its string ([`RefusalCode::as_str`])
        /// is the REST API's error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum RefusalCode {
            $($(#[$doc])* $variant,)*
        }

        impl RefusalCode {
            /// Every code, in declaration order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The code as the API answers it (`insufficient_points`, ...).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }
        }
    };
}

refusal_codes! {
    /// A bad field or value.
    ValidationFailed => "validation_failed",
    /// A phone number that is not a valid mobile number.
    InvalidPhone => "invalid_phone",
    /// No such thing (or not the caller's).
    NotFound => "not_found",
    /// Not allowed to the caller.
    Forbidden => "forbidden",
    /// It exists already, or another change got there first.
    Conflict => "conflict",
    /// Not in a state that allows it.
    InvalidState => "invalid_state",
    /// Beyond what the tenant's plan allows.
    PlanLimitExceeded => "plan_limit_exceeded",
    /// The tenant's plan has ended.
    PlanExpired => "plan_expired",
    /// Not enough points.
    InsufficientPoints => "insufficient_points",
    /// More recipients than the plan allows per campaign.
    RecipientCapExceeded => "recipient_cap_exceeded",
    /// A template names variables the recipients do not have.
    TemplateVariablesMissing => "template_variables_missing",
    /// No sender session is ready.
    SessionNotReady => "session_not_ready",
    /// A session's daily limit is used up.
    DailyLimitReached => "daily_limit_reached",
    /// WhatsApp restricted the sender (a reachout timelock, the capping
    /// quota, a temporary ban).
    SenderRestricted => "sender_restricted",
    /// A sender governor cap beyond the day (a minute, an hour, new
    /// contacts, identical texts) is reached.
    SendCapReached => "send_cap_reached",
    /// The campaign is not running.
    CampaignNotRunning => "campaign_not_running",
    /// Outside the tenant's active hours (or sending is paused).
    OutsideActiveHours => "outside_active_hours",
    /// No such WhatsApp template synced for the session.
    TemplateNotFound => "template_not_found",
    /// The WhatsApp template is not approved by Meta.
    TemplateNotApproved => "template_not_approved",
    /// Not as many template parameters as its body has `{{n}}`.
    TemplateParameterMismatch => "template_parameter_mismatch",
    /// A WhatsApp template on a session whose driver sends none, or a
    /// template wablast cannot fill (a media header).
    TemplateNotSupported => "template_not_supported",
    /// An attachment from a session whose driver sends text only (native).
    MediaNotSupported => "media_not_supported",
    /// A Cloud API sender with no template to start conversations with.
    TemplateRequired => "template_required",
    /// Free text to a person who has not written to the Cloud API number
    /// in the last 24 hours.
    OutsideCustomerServiceWindow => "outside_customer_service_window",
    /// The tenant's plan does not include the feature asked for.
    FeatureNotInPlan => "feature_not_in_plan",
    /// The platform operator suspended the tenant.
    TenantSuspended => "tenant_suspended",
    /// The team's last owner would be removed or demoted.
    LastOwner => "last_owner",
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code equals its string: tests and logs compare with the wire form.
impl PartialEq<&str> for RefusalCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for RefusalCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_strings() {
        let mut seen = HashSet::new();
        for code in RefusalCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(
                !text.is_empty() && text.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{text}"
            );
            assert_eq!(code.to_string(), text);
            assert_eq!(*code, text);
        }
    }
}
