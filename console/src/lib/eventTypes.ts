// The event types a webhook subscription may name, by the aggregate they
// belong to: the table of README's "Receiving webhooks", which
// eventTypes.test.ts keeps equal to the API's own schema (`EventPayload`
// in openapi/openapi.json). The API takes any type name (a mistyped one
// would silently receive nothing), so the console offers only these.

export interface EventGroup {
  /** The aggregate type, as events carry it (`aggregate_type`). */
  aggregate: string;
  types: readonly string[];
}

export const EVENT_GROUPS: readonly EventGroup[] = [
  {
    aggregate: "message",
    types: [
      "MessageQueued",
      "MessageSendingStarted",
      "MessageSent",
      "MessageFailed",
      "MessageDelivered",
      "MessageRead",
      "MessageCancelled",
      "MessageMarkedUnknown",
    ],
  },
  { aggregate: "inbound", types: ["InboundMessageReceived"] },
  {
    aggregate: "campaign",
    types: [
      "CampaignCreated",
      "DirectCampaignOpened",
      "CampaignScheduled",
      "ScheduledStartRefused",
      "CampaignStarted",
      "CampaignPaused",
      "CampaignAutoPaused",
      "CampaignSlowedDown",
      "CampaignSpeedRestored",
      "CampaignResumed",
      "CampaignSenderRemoved",
      "CampaignCancelled",
      "CampaignCompleted",
    ],
  },
  { aggregate: "recipient_batch", types: ["RecipientsQueued", "RecipientAdmitted"] },
  {
    aggregate: "session",
    types: [
      "SessionCreated",
      "SessionStartRequested",
      "SessionStopRequested",
      "SessionLoggedOut",
      "SessionDeleted",
      "SessionStatusChanged",
      "SessionReconnectScheduled",
      "SessionWaiting",
      "SessionHeld",
      "SessionSettingsUpdated",
      "TrustLevelChanged",
      "WarmUpStarted",
      "SenderRestricted",
      "GovernorStateChanged",
    ],
  },
  { aggregate: "session_day", types: ["SlotGranted"] },
  {
    aggregate: "wallet",
    types: [
      "PlanSubscribed",
      "PointsToppedUp",
      "PointsGranted",
      "PointsReserved",
      "PointsCaptured",
      "ReservationReleased",
      "ReservationCancelled",
      "PlanExpired",
      "PlanExpiryWarned",
      "PlanRenewalDue",
      "BalanceLowWarned",
      "TenantSuspended",
      "TenantReactivated",
      "PointsTakenBack",
    ],
  },
  {
    aggregate: "order",
    types: [
      "OrderCreated",
      "CheckoutOpened",
      "OrderPending",
      "OrderPaid",
      "OrderFailed",
      "PaymentAmountMismatched",
      "OrderCredited",
      "OrderRefunded",
      "TakeBackRecorded",
    ],
  },
  { aggregate: "plan", types: ["PlanDefined", "PlanEdited", "PlanRetired"] },
  {
    aggregate: "team",
    types: [
      "TeamFounded",
      "MemberInvited",
      "InvitationAccepted",
      "InvitationRevoked",
      "MemberRoleChanged",
      "MemberRemoved",
    ],
  },
  { aggregate: "schedule", types: ["ActiveHoursSet", "OverrideSet"] },
  {
    aggregate: "list_check",
    types: ["ListCheckStarted", "ListCheckProgressed", "ListCheckCompleted", "ListCheckFailed", "ListCheckCancelled"],
  },
  { aggregate: "auto_reply_thread", types: ["AutoReplyAnswered", "AutoReplySilent", "AutoReplyWithdrawn"] },
  { aggregate: "auto_reply_rule_hour", types: ["AutoReplyCounted"] },
  { aggregate: "webhook", types: ["WebhookDisabled", "WebhookEnabled"] },
];

/** Every type in the table. */
export const EVENT_TYPES: readonly string[] = EVENT_GROUPS.flatMap((g) => g.types);

/** "All events": what the API takes instead of a list. */
export const ALL_EVENTS = "*";

/** Whether a subscription's `events` stands for every type. */
export function isAll(events: readonly string[]): boolean {
  return events.includes(ALL_EVENTS);
}

/**
 * The `events` to send for a choice: `["*"]` for all, else the chosen
 * types in the table's order (types the table does not know, kept from an
 * older subscription, last).
 */
export function eventsToSend(all: boolean, chosen: ReadonlySet<string>): string[] {
  if (all) return [ALL_EVENTS];
  const known = EVENT_TYPES.filter((type) => chosen.has(type));
  const unknown = [...chosen].filter((type) => !EVENT_TYPES.includes(type) && type !== ALL_EVENTS).sort();
  return [...known, ...unknown];
}
