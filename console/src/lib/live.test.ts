import { describe, expect, it } from "vitest";
import type { EventData, Session } from "../api/types";
import { clearLive, liveStatusOf, mergeLive, readAfter, recordPosition, type LiveStatus } from "./live";

const session = (over: Partial<Session> = {}): Session => ({
  id: "s1",
  name: "CS 1",
  driver: "simulator",
  login: "qr",
  status: "qr",
  phone_number: null,
  daily_limit: 50,
  daily_limit_follows_trust_level: true,
  sent_today: 0,
  trust_level: 1,
  auto_start: false,
  last_error: null,
  updated_at: "2026-12-07T08:00:00Z",
  waiting: null,
  ...over,
});

describe("mergeLive", () => {
  it("takes a status the stream reported after the row was read", () => {
    const live = new Map<string, LiveStatus>([["s1", { status: "ready", phone_number: "+6281234567890", at: "2026-12-07T08:00:05Z", position: "events:1" }]]);
    const [merged] = mergeLive([session()], live);
    expect(merged.status).toBe("ready");
    expect(merged.phone_number).toBe("+6281234567890");
  });

  it("keeps a row newer than the live status", () => {
    const live = new Map<string, LiveStatus>([["s1", { status: "ready", phone_number: null, at: "2026-12-07T08:00:05Z", position: "events:1" }]]);
    const [merged] = mergeLive([session({ status: "idle", updated_at: "2026-12-07T08:01:00Z" })], live);
    expect(merged.status).toBe("idle");
  });

  it("leaves sessions without live news as they are", () => {
    const rows = [session()];
    expect(mergeLive(rows, new Map())[0]).toBe(rows[0]);
  });
});

describe("readAfter", () => {
  it("asks reads to reflect the furthest event of the events stream seen", () => {
    clearLive();
    expect(readAfter()).toBeUndefined();
    const at = (stream: string, stream_sequence: number) =>
      ({ type: "X", aggregate_type: "wallet", aggregate_id: "w", occurred_at: "", stream, stream_sequence, payload: {} }) as EventData;
    recordPosition(at("events", 7));
    recordPosition(at("messages", 90));
    recordPosition(at("events", 5));
    expect(readAfter()).toBe("events:7");
    // The messages stream has its own position.
    recordPosition(at("messages", 80));
    expect(readAfter("messages")).toBe("messages:90");
    clearLive();
    expect(readAfter("messages")).toBeUndefined();
    expect(readAfter()).toBeUndefined();
  });
});

describe("liveStatusOf", () => {
  const event = (over: Partial<EventData>): EventData => ({
    type: "SessionStatusChanged",
    aggregate_type: "session",
    aggregate_id: "s1",
    occurred_at: "2026-12-07T08:00:05Z",
    stream: "events",
    stream_sequence: 42,
    payload: { SessionStatusChanged: { from: "authenticated", to: "ready", phone_number: "+6281234567890" } },
    ...over,
  });

  it("reads a session's status change", () => {
    expect(liveStatusOf(event({}))).toEqual([
      "s1",
      { status: "ready", phone_number: "+6281234567890", at: "2026-12-07T08:00:05Z", position: "events:42" },
    ]);
  });

  it("ignores other events", () => {
    expect(liveStatusOf(event({ type: "SessionCreated", payload: { SessionCreated: { name: "x" } } }))).toBeNull();
    expect(liveStatusOf(event({ aggregate_type: "campaign" }))).toBeNull();
  });
});
