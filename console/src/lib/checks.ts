// A list's number check as the event stream reports it, ahead of
// `GET /contact-lists/{id}/check`: the progress bar moves with every
// `ListCheckProgressed`, and the end shows the moment it is committed.

import { useSyncExternalStore } from "react";
import type { EventData, ListCheck, ListCheckStatus } from "../api/types";

export interface CheckProgress {
  status?: ListCheckStatus;
  checked?: number;
  on_whatsapp?: number;
  not_on_whatsapp?: number;
  contacts?: number;
  list_id?: string;
  at: string;
}

/** The check (its job id) and what an event of the stream says of it. */
export function checkProgressOf(event: EventData): [string, CheckProgress] | null {
  if (event.aggregate_type !== "list_check") return null;
  const [type, data] = Object.entries(event.payload ?? {})[0] ?? [];
  if (!type || !data) return null;
  const num = (value: unknown) => (typeof value === "number" ? value : undefined);
  const at = event.occurred_at;
  switch (type) {
    case "ListCheckStarted":
      return [
        event.aggregate_id,
        {
          status: "running",
          contacts: num(data.contacts),
          list_id: typeof data.list_id === "string" ? data.list_id : undefined,
          checked: 0,
          on_whatsapp: 0,
          not_on_whatsapp: 0,
          at,
        },
      ];
    case "ListCheckProgressed":
      return [
        event.aggregate_id,
        { checked: num(data.checked), on_whatsapp: num(data.on_whatsapp), not_on_whatsapp: num(data.not_on_whatsapp), at },
      ];
    case "ListCheckCompleted":
      return [event.aggregate_id, { status: "completed", at }];
    case "ListCheckFailed":
      return [event.aggregate_id, { status: "failed", at }];
    case "ListCheckCancelled":
      return [event.aggregate_id, { status: "cancelled", at }];
    default:
      return null;
  }
}

/** `check` with what the stream said after it was read. */
export function mergeCheck(check: ListCheck, live: CheckProgress | undefined): ListCheck {
  if (!live || Date.parse(live.at) < Date.parse(check.updated_at)) return check;
  // An ended check does not run again.
  const status = check.status !== "running" ? check.status : (live.status ?? check.status);
  const most = (a: number, b: number | undefined) => Math.max(a, b ?? 0);
  return {
    ...check,
    status,
    checked: most(check.checked, live.checked),
    on_whatsapp: most(check.on_whatsapp, live.on_whatsapp),
    not_on_whatsapp: most(check.not_on_whatsapp, live.not_on_whatsapp),
  };
}

let progress: ReadonlyMap<string, CheckProgress> = new Map();
const listeners = new Set<() => void>();

/** Folds an event's news into the check's progress so far. */
export function recordCheck(id: string, news: CheckProgress) {
  const next = new Map(progress);
  const before = next.get(id);
  const merged: Record<string, unknown> = { ...before };
  for (const [key, value] of Object.entries(news)) if (value !== undefined) merged[key] = value;
  // An end is final; a late progress event does not reopen it.
  if (before?.status && before.status !== "running") merged.status = before.status;
  next.set(id, merged as unknown as CheckProgress);
  progress = next;
  for (const listener of listeners) listener();
}

export function clearChecks() {
  progress = new Map();
  for (const listener of listeners) listener();
}

function useProgress(): ReadonlyMap<string, CheckProgress> {
  return useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => progress,
  );
}

export function useCheckProgress(id: string | undefined): CheckProgress | undefined {
  const all = useProgress();
  return id ? all.get(id) : undefined;
}

/** Whether the stream saw a check of `listId` start. */
export function useListChecked(listId: string): boolean {
  const all = useProgress();
  return [...all.values()].some((check) => check.list_id === listId);
}
