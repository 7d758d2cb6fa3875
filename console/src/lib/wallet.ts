// How a wallet transaction reads: which way its points went. The API gives
// them unsigned; the kind says what moved.

import type { Transaction } from "../api/types";

/**
 * The transaction's points with their sign, as the owner sees them:
 * allocations, top-ups and released reservations add to what is
 * available (+); reservations, captures and refunds' take-backs take
 * from it (−); an expiry
 * moves none (0).
 */
export function signedPoints(transaction: Pick<Transaction, "kind" | "points">): number {
  switch (transaction.kind) {
    case "allocation":
    case "topup":
    case "release":
      return transaction.points;
    case "reserve":
    case "capture":
    case "refund":
      return -transaction.points;
    default:
      return 0;
  }
}

/** `+1.000`, `−200`, `0` in the locale's digits (a real minus sign). */
export function formatSigned(points: number, number: (n: number) => string): string {
  if (points > 0) return `+${number(points)}`;
  if (points < 0) return `−${number(-points)}`;
  return number(0);
}

/**
 * The position from which a replay sends the event `eventId` again (and
 * what followed it in its stream): just before its commit. An id is
 * `<stream>:<sequence>` or `<stream>:<sequence>.<k>`; null when it is not
 * one (a test ping's id, say).
 */
export function replayFrom(eventId: string): string | null {
  const match = /^(events|messages):(\d+)(?:\.\d+)?$/.exec(eventId);
  if (!match) return null;
  const sequence = Number(match[2]);
  if (!Number.isSafeInteger(sequence) || sequence < 1) return null;
  return `${match[1]}:${sequence - 1}`;
}

/** The whole log, from its beginning. */
export const FROM_THE_BEGINNING = "events:0,messages:0";

/** A canonical UUID (what the API's ids are): checked before a request is made. */
export function isUuid(text: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(text.trim());
}
