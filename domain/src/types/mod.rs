//! Value types: each parses its input once, at the edge, and is valid from
//! then on.

pub mod active_hours;
pub mod chat;
pub mod content;
pub mod engagement;
pub mod ids;
pub mod limits;
pub mod phone;
pub mod points;
pub mod template;
pub mod throttle;
pub mod whatsapp_template;

pub use active_hours::{ActiveHours, ActiveHoursError, Override, TimeZone, Weekday, Window};
pub use chat::{Chat, GroupId};
pub use content::{ContentError, MessageContent};
pub use engagement::{EngagementGuard, EngagementGuardError, SendOutcome, SendSignals, SkipReason};
pub use ids::{
    CampaignId, ContactListId, InboundId, InvitationId, ListCheckId, MediaId, MessageId, OrderId,
    PlanId, RecipientBatchId, SessionId, TenantId, UserId,
};
pub use limits::{DailyLimit, LimitError, TrustLevel};
pub use points::Points;
pub use throttle::{Pacing, Throttle, ThrottleError};
