//! Identifiers: UUID newtypes, v7 (time-ordered) when new.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered id (UUID v7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The id of an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self(Uuid::nil())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

id_type!(
    /// A tenant: one business and everything it owns.
    TenantId
);
id_type!(
    /// A session: one linked WhatsApp number.
    SessionId
);
id_type!(
    /// A campaign.
    CampaignId
);
id_type!(
    /// One message to one recipient.
    MessageId
);
id_type!(
    /// One message received by a session (see
    /// [`inbound_id`](crate::inbound::inbound_id): derived from the session
    /// and WhatsApp's id of the message, not random).
    InboundId
);
id_type!(
    /// One batch of a campaign's recipients, queued together (see
    /// [`batch_id`](crate::recipient_batch::batch_id): derived from the
    /// campaign and the batch's place in it, not random).
    RecipientBatchId
);
id_type!(
    /// A subscription plan.
    PlanId
);
id_type!(
    /// A user.
    UserId
);
id_type!(
    /// A contact list.
    ContactListId
);
id_type!(
    /// An uploaded media file.
    MediaId
);
id_type!(
    /// A check of a contact list's numbers on WhatsApp (a background job).
    ListCheckId
);
id_type!(
    /// An order paid through the payment gateway (its `order_id` there).
    OrderId
);
id_type!(
    /// An invitation to join a tenant's team.
    InvitationId
);
