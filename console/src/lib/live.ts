// Session statuses as the event stream reports them, ahead of the query
// tables: a card turns `ready` the moment the event arrives, and a refetch
// that still reads an older row does not turn it back.

import { useSyncExternalStore } from "react";
import type { EventData, Session, SessionStatus } from "../api/types";

export interface LiveStatus {
  status: SessionStatus;
  phone_number: string | null;
  /** When the change was committed (the event's `occurred_at`). */
  at: string;
  /** Its position in the log (`events:123`): a read sent with it reflects it. */
  position: string;
}

/** `sessions` with each one's live status where it is newer than the row. */
export function mergeLive(sessions: Session[], live: ReadonlyMap<string, LiveStatus>): Session[] {
  return sessions.map((session) => {
    const change = live.get(session.id);
    if (!change || Date.parse(change.at) <= Date.parse(session.updated_at)) return session;
    return {
      ...session,
      status: change.status,
      phone_number: change.phone_number ?? session.phone_number,
    };
  });
}

/** The live status an event carries, if it is a session's status change. */
export function liveStatusOf(event: EventData): [string, LiveStatus] | null {
  const change = event.payload?.SessionStatusChanged;
  if (event.aggregate_type !== "session" || !change || typeof change.to !== "string") return null;
  return [
    event.aggregate_id,
    {
      status: change.to as SessionStatus,
      phone_number: typeof change.phone_number === "string" ? change.phone_number : null,
      at: event.occurred_at,
      position: `${event.stream}:${event.stream_sequence}`,
    },
  ];
}

/** How far the stream has read each of the log's streams (`events`, `messages`). */
const lastRead = new Map<string, number>();

/**
 * Notes how far into the log the stream has read: the queries it refreshes
 * ask the API to reflect at least that much (the event stream reads the
 * log, ahead of the query tables).
 */
export function recordPosition(event: EventData) {
  const known = lastRead.get(event.stream);
  if (known === undefined || event.stream_sequence > known) lastRead.set(event.stream, event.stream_sequence);
}

/**
 * The position the next read must reflect, if the stream saw any: of the
 * `events` stream (sessions, wallets, ...) or of `messages` (messages,
 * inbound messages, auto-replies).
 */
export function readAfter(stream: "events" | "messages" = "events"): string | undefined {
  const sequence = lastRead.get(stream);
  return sequence === undefined ? undefined : `${stream}:${sequence}`;
}

let statuses: ReadonlyMap<string, LiveStatus> = new Map();
const listeners = new Set<() => void>();

export function recordLive(id: string, status: LiveStatus) {
  const next = new Map(statuses);
  next.set(id, status);
  statuses = next;
  for (const listener of listeners) listener();
}

export function clearLive() {
  statuses = new Map();
  lastRead.clear();
  for (const listener of listeners) listener();
}

export function useLiveStatuses(): ReadonlyMap<string, LiveStatus> {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => statuses,
  );
}
