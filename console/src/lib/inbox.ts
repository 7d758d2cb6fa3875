// What the inbox says about a message and about a refused reply.

import { ApiError } from "../api/client";
import type { MessageRecord } from "../api/types";

/** Why a reply was refused, in the inbox's words: a message key of
 * `inbox.refused.*` and what it names (a time, a session status). */
export interface Refusal {
  reason:
    | "customerServiceWindow"
    | "dailyLimit"
    | "points"
    | "planExpired"
    | "activeHours"
    | "paused"
    | "notReady"
    | "rateLimited";
  /** When it may be tried again (RFC 3339), if the API said. */
  at?: string;
  /** The session's status, when it is not ready. */
  status?: string;
}

const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined);

/** The refusal a failed send is, if it is one the inbox explains. */
export function refusalOf(err: unknown): Refusal | null {
  if (!(err instanceof ApiError)) return null;
  switch (err.code) {
    case "outside_customer_service_window":
      return { reason: "customerServiceWindow" };
    case "daily_limit_reached":
      return { reason: "dailyLimit", at: text(err.details.retry_at) };
    case "insufficient_points":
      return { reason: "points" };
    case "plan_expired":
      return { reason: "planExpired" };
    case "outside_active_hours": {
      // No opening time: sending is paused by the override.
      const at = text(err.details.opens_at);
      return at ? { reason: "activeHours", at } : { reason: "paused" };
    }
    case "invalid_state":
      return { reason: "notReady", status: text(err.details.session_status) };
    case "rate_limited":
      return { reason: "rateLimited" };
    default:
      return null;
  }
}

/** Kinds of message the inbox names (`inbox.kind.*`) above their text. */
const KINDS = new Set(["image", "video", "audio", "document", "sticker", "location", "contact", "reaction", "interactive", "other"]);

/** The kind of a message that is not plain text, if any. */
export function kindOf(message: Pick<MessageRecord, "type">): string | null {
  return KINDS.has(message.type) ? message.type : null;
}

/** Outgoing statuses in the order they are reached. */
const PROGRESS = ["queued", "sending", "sent", "delivered", "read"];

/** Ticks of an outgoing message's status: 0 waiting, 1 sent, 2 delivered, 3 read; -1 failed. */
export function ticksOf(status: MessageRecord["status"]): number {
  if (status === "failed" || status === "cancelled" || status === "unknown") return -1;
  return Math.max(0, PROGRESS.indexOf(status) - 1);
}

/** Messages oldest first, each once, from pages newest first. */
export function threadOf(pages: readonly { items: MessageRecord[] }[]): MessageRecord[] {
  const seen = new Set<string>();
  const all: MessageRecord[] = [];
  for (const page of pages) {
    for (const message of page.items) {
      if (!seen.has(message.id)) {
        seen.add(message.id);
        all.push(message);
      }
    }
  }
  return all.reverse();
}

/** When a message was queued or received. */
export function timeOf(message: MessageRecord): string | null {
  return message.received_at ?? message.queued_at ?? message.sent_at;
}
