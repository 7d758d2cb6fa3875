import { describe, expect, it } from "vitest";
import type { EventData, ListCheck } from "../api/types";
import { checkProgressOf, mergeCheck } from "./checks";

const event = (type: string, data: Record<string, unknown>, at = "2026-01-01T00:00:05Z"): EventData => ({
  type,
  aggregate_type: "list_check",
  aggregate_id: "job-1",
  occurred_at: at,
  stream: "events",
  stream_sequence: 9,
  payload: { [type]: data },
});

const check: ListCheck = {
  job_id: "job-1",
  list_id: "list-1",
  session_id: "s-1",
  status: "running",
  contacts: 4,
  checked: 1,
  on_whatsapp: 1,
  not_on_whatsapp: 0,
  failure: null,
  started_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:01Z",
  ended_at: null,
};

describe("a list check on the event stream", () => {
  it("reads progress and the end", () => {
    expect(checkProgressOf(event("ListCheckProgressed", { next_row: 4, checked: 3, on_whatsapp: 2, not_on_whatsapp: 1 }))).toEqual([
      "job-1",
      { checked: 3, on_whatsapp: 2, not_on_whatsapp: 1, at: "2026-01-01T00:00:05Z" },
    ]);
    expect(checkProgressOf(event("ListCheckCompleted", {}))?.[1].status).toBe("completed");
    expect(checkProgressOf(event("ListCheckCancelled", {}))?.[1].status).toBe("cancelled");
    expect(checkProgressOf({ ...event("ListCheckCompleted", {}), aggregate_type: "session" })).toBeNull();
  });

  it("moves the check read from the API forward, never back", () => {
    const [, progressed] = checkProgressOf(event("ListCheckProgressed", { checked: 3, on_whatsapp: 2, not_on_whatsapp: 1 }))!;
    expect(mergeCheck(check, progressed)).toMatchObject({ status: "running", checked: 3, on_whatsapp: 2, not_on_whatsapp: 1 });
    const stale = { ...progressed, at: "2025-12-31T00:00:00Z" };
    expect(mergeCheck(check, stale)).toBe(check);
    const done = { ...check, status: "completed" as const, checked: 4 };
    expect(mergeCheck(done, { status: "running", checked: 3, at: "2026-01-01T00:00:09Z" })).toMatchObject({ status: "completed", checked: 4 });
  });
});
