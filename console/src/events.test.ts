import { describe, expect, it } from "vitest";
import { campaignKeys } from "./api/campaigns";
import type { EventData } from "./api/types";
import { staleBy, staleByEvent } from "./events";

const message = (type: string): EventData => ({
  type,
  aggregate_type: "message",
  aggregate_id: "m1",
  occurred_at: "2026-12-07T08:00:00Z",
  stream: "messages",
  stream_sequence: 3,
  payload: { [type]: { campaign_id: "c1" } },
});

describe("what the stream's news makes stale", () => {
  it("a campaign's own events: every campaign read", () => {
    expect(staleBy("campaign")).toEqual([campaignKeys.all]);
  });

  it("a message's: its campaign's counts and messages, and failures when it failed", () => {
    expect(staleByEvent(message("MessageSent"))).toEqual([campaignKeys.all, campaignKeys.messages("c1")]);
    expect(staleByEvent(message("MessageFailed"))).toEqual([campaignKeys.all, campaignKeys.messages("c1"), campaignKeys.failures]);
  });

  it("a sender's or the schedule's: why campaigns wait", () => {
    expect(staleBy("session_day")).toContainEqual(campaignKeys.all);
    expect(staleBy("schedule")).toContainEqual(campaignKeys.all);
  });
});
