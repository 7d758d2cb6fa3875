// The API's shapes the console reads (see /openapi.json for all fields).

export type SessionStatus =
  | "idle"
  | "starting"
  | "qr"
  | "pairing"
  | "authenticated"
  | "ready"
  | "disconnected"
  | "failed"
  | "logged_out";

export interface Session {
  id: string;
  name: string;
  driver: string;
  login: "qr" | "pairing";
  status: SessionStatus;
  phone_number: string | null;
  daily_limit: number;
  daily_limit_follows_trust_level: boolean;
  sent_today: number;
  trust_level: number;
  auto_start: boolean;
  last_error: string | null;
  /** WAHA and Cloud API numbers: their settings without secrets, and
   * `hook_url`, where their server must post the number's events. */
  driver_config?: { hook_url?: string; [field: string]: unknown } | null;
  updated_at: string;
  waiting: { reason: string; until: string | null } | null;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Wallet {
  balance: number;
  reserved: number;
  available: number;
  plan: {
    id: string;
    name: string;
    period_days: number;
    max_sessions?: number | null;
    max_recipients_per_campaign?: number | null;
    max_daily_limit?: number | null;
    version?: number | null;
    grace_days?: number | null;
  } | null;
  plan_expires_at: string | null;
  plan_expired: boolean;
  /** The end of the period plus the plan's grace days: when sending stops. */
  sending_until?: string | null;
  /** Why the platform operator suspended the account, while suspended. */
  suspended_reason?: string | null;
  /** Fewer points available than a tenth of the plan's. */
  low_balance?: boolean;
}

export interface Me {
  user: { id: string; email: string; role: "admin" | "owner" | "member"; name?: string | null } | null;
  tenant: { id: string; name: string };
}

export interface Registered {
  access_token: string;
  user: { id: string; email: string };
  tenant: { id: string; name: string };
}

export interface AccessToken {
  access_token: string;
  expires_in: number;
}

export interface Qr {
  qr: string;
  expires_at: string;
}

export interface PairingCode {
  code: string;
  expires_at?: string | null;
}

export interface BatchResults {
  results: { id: string; status: "accepted" | "error"; error?: { code: string; message: string } }[];
}

/** One event of `GET /api/v1/events`. */
export interface EventData {
  type: string;
  aggregate_type: string;
  aggregate_id: string;
  occurred_at: string;
  /** The log stream it is in (`events` or `messages`) and its commit's sequence there. */
  stream: string;
  stream_sequence: number;
  payload: Record<string, Record<string, unknown>>;
}

/** Statuses in which the engine runs a session (it can be stopped). */
export const RUNNING: readonly SessionStatus[] = ["starting", "qr", "pairing", "authenticated", "ready", "disconnected"];
/** Statuses waiting for the phone to link. */
export const LINKING: readonly SessionStatus[] = ["qr", "pairing"];

export interface ContactList {
  id: string;
  name: string;
  columns: string[];
  total_rows: number;
  accepted: number;
  rejected: number;
  source_filename: string | null;
  source_format: "csv" | "xlsx" | "json" | "group";
  created_at: string;
}

export interface Contact {
  /** Its row in the list: the id `DELETE .../contacts/{row}` takes. */
  row: number;
  phone: string;
  name: string | null;
  variables: Record<string, unknown>;
  on_whatsapp: boolean | null;
  whatsapp_chat_id: string | null;
  whatsapp_checked_at: string | null;
}

export interface RejectedRow {
  row: number;
  value: string;
  reason: string;
  message: string;
  column?: string;
  duplicate_of?: number;
}

/** The answer to an import. */
export interface Imported {
  id: string;
  name: string;
  columns: string[];
  total_rows: number;
  accepted: number;
  rejected: RejectedRow[];
  rejected_count: number;
  created_at: string;
}

export type ListCheckStatus = "running" | "completed" | "failed" | "cancelled";

export interface ListCheck {
  job_id: string;
  list_id: string;
  session_id: string;
  status: ListCheckStatus;
  contacts: number;
  checked: number;
  on_whatsapp: number;
  not_on_whatsapp: number;
  failure: string | null;
  started_at: string;
  updated_at: string;
  ended_at: string | null;
}

/** A WhatsApp group a session's number is in. */
export interface Group {
  id: string;
  name: string;
  participants: number;
}

export type CampaignStatus = "draft" | "scheduled" | "running" | "paused" | "completed" | "cancelled";

export interface CampaignCounts {
  total: number;
  queued: number;
  sending: number;
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  cancelled: number;
  unknown: number;
}

/** Why a campaign is paused (`pause_reason`). */
export type PauseReason =
  | { kind: "manual" }
  | { kind: "auto_consecutive_failures"; failures: number }
  | { kind: "sender_unavailable"; session_id: string; why: "banned" | "logged_out" | "deleted" }
  | { kind: "outside_active_hours" };

export interface Campaign {
  id: string;
  name: string;
  status: CampaignStatus;
  contact_list_id: string;
  template: string;
  /** What its Cloud API senders send instead of `template`. */
  whatsapp_template?: {
    name: string;
    language: string;
    parameters: string[];
    header?: { type: "text"; parameters: string[] } | { type: "media"; media_id: string };
  } | null;
  media_id: string | null;
  sender_session_ids: string[];
  throttle: { min_delay_ms: number; max_delay_ms: number };
  scheduled_at: string | null;
  counts: CampaignCounts;
  points_reserved: number;
  points_spent: number;
  pause_reason: PauseReason | null;
  resume_at: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  start_refusal: { code: string; message: string; at: string } | null;
  /** Why a running campaign sends nothing for now (every sender waits). */
  waiting: { reason: string; until: string | null } | null;
}

/** A message of a campaign (`GET /campaigns/{id}/messages`). */
export interface CampaignMessage {
  id: string;
  phone: string;
  name: string | null;
  status: MessageStatus;
  error: string | null;
  attempts: number;
  sent_at: string | null;
  delivered_at: string | null;
  read_at: string | null;
  session_id: string;
  /** The rendered text; null until a sender takes it. */
  text: string | null;
}

// — wallet, developers and admin —

/** A wallet transaction's kind, as the API names it. */
export type TransactionKind = "allocation" | "topup" | "reserve" | "capture" | "release" | "expire" | "refund";

/** One movement of points (or the plan's expiry). */
export interface Transaction {
  id: string;
  kind: TransactionKind;
  /** The points moved, unsigned: the kind says which way. */
  points: number;
  reference: string | null;
  campaign_id: string | null;
  balance_after: number;
  reserved_after: number;
  available_after: number;
  created_at: string;
}

/** A plan on offer. */
export interface Plan {
  id: string;
  name: string;
  period_days: number;
  points: number;
  max_sessions: number;
  max_recipients_per_campaign: number;
  max_daily_limit: number;
  /** Rupiah. */
  price: number;
  created_at: string;
  retired_at?: string | null;
  version?: number;
  features?: PlanFeatures;
  grace_days?: number;
  on_sale?: boolean;
}

/** What a plan includes. */
export interface PlanFeatures {
  auto_replies: boolean;
  webhooks: boolean;
  official_mode: boolean;
}

/** A tenant as the platform admin sees it. */
export interface TenantSummary {
  id: string;
  name: string;
  owner_email: string | null;
  created_at: string;
  plan: { id: string; name: string | null } | null;
  plan_expires_at: string | null;
  plan_expired: boolean;
  balance: number;
  available: number;
  sessions: number;
  last_activity_at: string | null;
  suspended: boolean;
  suspended_reason: string | null;
  suspended_at: string | null;
}

/** Counts of a statistics report. */
export interface StatsCounts {
  sent: number;
  delivered: number;
  read: number;
  failed: number;
  replies: number;
  reply_rate: number;
  points_spent: number;
}

/** A tenant's statistics (`GET /api/v1/stats`). */
export interface TenantStats {
  from: string;
  to: string;
  granularity: "day" | "week" | "month";
  totals: StatsCounts;
  periods: (StatsCounts & { start: string })[];
  sessions: (StatsCounts & { session_id: string })[];
  failures: { reason: string; failed: number }[];
}

/** The platform's statistics (`GET /api/v1/admin/stats`). */
export interface PlatformStats {
  from: string;
  to: string;
  tenants: number;
  tenants_active: number;
  tenants_suspended: number;
  totals: StatsCounts;
  failures: { reason: string; failed: number }[];
  /** Paid orders per plan (and top-ups), from Midtrans. */
  revenue_by_plan: PlanRevenue[];
}

/** What one plan (or top-ups) brought in. */
export interface PlanRevenue {
  item: "plan" | "top_up";
  plan_id: string | null;
  plan_name: string | null;
  orders: number;
  amount: number;
  refunded: number;
  net: number;
}

/** What a grant credited. */
export interface Granted {
  tenant_id: string;
  plan?: { id: string; name: string; period_days: number } | null;
  points: number;
  reference: string;
  credited: boolean;
  balance: number;
  available: number;
  plan_expires_at?: string | null;
}

/** An API key as listed (never the key). */
export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
}

/** A created API key: the only time the key is shown. */
export interface CreatedApiKey {
  id: string;
  name: string;
  key: string;
  created_at: string;
}

export type WebhookStatus = "active" | "disabled";

/** A webhook subscription (never its secret). */
export interface Webhook {
  id: string;
  url: string;
  /** Event types, or `["*"]` for all. */
  events: string[];
  status: WebhookStatus;
  disabled_reason?: string | null;
  disabled_at?: string | null;
  failing_since?: string | null;
  created_at: string;
}

/** A subscription as created: the only time its secret is shown. */
export interface CreatedWebhook {
  id: string;
  url: string;
  events: string[];
  secret: string;
  created_at: string;
}

export type DeliveryStatus = "pending" | "delivered" | "failed";

/** One event's delivery to a subscription. */
export interface Delivery {
  id: number;
  /** The event's position in the log (`events:12`, `messages:40.2`). */
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  last_status?: number | null;
  last_error?: string | null;
  last_attempt_at?: string | null;
  next_attempt_at?: string | null;
  delivered_at?: string | null;
  created_at: string;
  replayed: boolean;
}

/** What the receiver made of a test ping. */
export interface PingResult {
  delivered: boolean;
  status?: number | null;
  error?: string | null;
  duration_ms: number;
}

/** What a replay queued. */
export interface Replayed {
  queued: number;
  next_position?: string | null;
}

// — Inbox, automation, schedule —

/** A conversation of one session with one peer. */
export interface Chat {
  id: string;
  session_id: string;
  /** E.164, or the driver's chat id when it could not tell the number. */
  peer: string;
  last_message: string | null;
  last_message_id: string;
  last_direction: "in" | "out";
  last_at: string;
  unread: number;
}

export type MessageStatus = "queued" | "sending" | "sent" | "delivered" | "read" | "failed" | "cancelled" | "unknown" | "received";

/** A message sent or received (`GET /api/v1/messages`). */
export interface MessageRecord {
  id: string;
  direction: "in" | "out";
  session_id: string;
  campaign_id: string | null;
  peer: string;
  /** `text`, `image`, `video`, `audio`, `document`, `sticker`, `location`, `contact`, `reaction`, `interactive`, `other`, `unknown`. */
  type: string;
  text: string | null;
  media_id: string | null;
  status: MessageStatus;
  error: string | null;
  queued_at: string | null;
  sent_at: string | null;
  delivered_at: string | null;
  read_at: string | null;
  received_at: string | null;
}

export interface QueuedMessage {
  id: string;
  status: "queued";
  session_id: string;
  to: string;
  text: string | null;
  queued_at: string;
}

export interface AutoReply {
  id: string;
  name: string;
  trigger: "keyword" | "contains" | "regex";
  pattern: string;
  response: string;
  media_id: string | null;
  session_ids: string[] | null;
  cooldown_seconds: number;
  enabled: boolean;
  priority: number;
  max_per_hour: number | null;
  active_windows: import("../lib/schedule").WindowBody[] | null;
  created_at: string;
  updated_at: string;
}

export interface AutoReplyStats {
  rule_id: string;
  answered: number;
  unanswered: number;
  /** Messages per outcome: `answered`, or why not. */
  outcomes: Record<string, number>;
  last_answered_at: string | null;
}

/** `POST /campaigns/preview`. */
export interface CampaignPreview {
  samples: {
    phone: string;
    name: string | null;
    text: string | null;
    /** What a Cloud API sender sends instead, when a template was given. */
    whatsapp_template?: { name: string; language: string; parameters: string[] | null; text: string | null; header?: string | null };
  }[];
  /** Per variable, how many contacts lack it. */
  missing: Record<string, number>;
}

export interface Media {
  id: string;
  mime_type: string;
  size: number;
  filename: string;
}

/** A Cloud API number's message template, as synced from Meta. */
export interface WhatsappTemplate {
  name: string;
  language: string;
  status: "APPROVED" | "PENDING" | "REJECTED" | "PAUSED" | "DISABLED" | "IN_APPEAL" | "OTHER";
  category: "MARKETING" | "UTILITY" | "AUTHENTICATION" | "OTHER";
  body: string | null;
  body_parameters: number;
  header_format: string | null;
  header_text: string | null;
  /** What a send gives its header: `text` (`header_parameters` values), an attachment (`image`, `video`, `document`), or nothing. */
  header_kind: "text" | "image" | "video" | "document" | "unsupported" | null;
  header_parameters: number;
  /** Approved, and a header wablast can fill (not a location). */
  sendable: boolean;
  synced_at: string;
}

export interface TemplateList {
  items: WhatsappTemplate[];
}

// — billing —

/** What can be bought, and how (`GET /api/v1/billing/options`). */
export interface BillingOptions {
  payments_enabled: boolean;
  provider: string;
  /** Midtrans' production (false: its sandbox). */
  production: boolean;
  client_key: string | null;
  currency: string;
  topup: { price_per_point: number; min_points: number; max_points: number };
}

/** A checkout opened: where to pay. */
export interface CheckoutView {
  order_id: string;
  snap_token: string;
  redirect_url: string;
  amount: number;
  currency: string;
}

export type OrderStatus = "created" | "pending" | "paid" | "failed" | "partially_refunded" | "refunded";
export type FailureReason = "denied" | "cancelled" | "expired" | "failed" | "checkout_failed";

/** An order paid (or to be paid) through Midtrans. */
export interface Order {
  id: string;
  item: "plan" | "top_up";
  plan: { id: string; name: string; period_days: number } | null;
  points: number;
  /** Rupiah. */
  amount: number;
  currency: string;
  status: OrderStatus;
  failure_reason: FailureReason | null;
  transaction_id: string | null;
  redirect_url: string | null;
  paid_at: string | null;
  credited_at: string | null;
  refunded_amount: number;
  points_taken_back: number;
  points_owed: number;
  amount_mismatches: number;
  created_at: string;
  updated_at: string;
}

// — members (team) —

export type TeamRole = "owner" | "member";

export interface Member {
  user_id: string;
  email: string;
  name?: string | null;
  role: TeamRole;
  joined_at: string;
}

export interface Invitation {
  id: string;
  email: string;
  role: TeamRole;
  invited_by: string;
  invited_at: string;
  expires_at: string;
}

export interface CreatedInvitation extends Invitation {
  token: string;
  accept_path: string;
}

// — fleet (the engines) and trust levels across tenants (fleet) —

/** A live session engine (`GET /api/v1/admin/engines`). */
export interface EngineView {
  id: string;
  host: string;
  version: string;
  started_at: string;
  last_heartbeat_at: string;
  sessions: number;
  sends_per_minute: number;
  memory_rss_bytes: number | null;
  drained: boolean;
}

/** A session an engine runs (`GET /api/v1/admin/engines/{id}/sessions`). */
export interface EngineSession {
  id: string;
  tenant_id: string;
  name: string;
  status: string;
  driver: string;
  pinned_to: string | null;
}

/** A session moved (`POST /api/v1/admin/sessions/{id}/move`). */
export interface Moved {
  session_id: string;
  from: string;
  to: string;
  pinned_to: string | null;
}

/** Any tenant's session with its trust level (`GET /api/v1/admin/sessions`). */
export interface AdminSession {
  id: string;
  tenant_id: string;
  tenant_name: string;
  name: string;
  driver: string;
  status: string;
  phone_number: string | null;
  trust_level: number;
  daily_limit: number;
  daily_limit_follows_trust_level: boolean;
  engine_id: string | null;
  updated_at: string;
}
