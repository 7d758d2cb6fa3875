import { describe, expect, it } from "vitest";
import { ApiError } from "../api/client";
import type { MessageRecord } from "../api/types";
import { kindOf, refusalOf, threadOf, ticksOf } from "./inbox";

describe("a refused reply", () => {
  it("names the API's reasons with what they carry", () => {
    expect(refusalOf(new ApiError(422, "outside_customer_service_window", "x"))).toEqual({ reason: "customerServiceWindow" });
    expect(refusalOf(new ApiError(422, "daily_limit_reached", "x", { retry_at: "2026-03-03T00:00:00Z" }))).toEqual({
      reason: "dailyLimit",
      at: "2026-03-03T00:00:00Z",
    });
    expect(refusalOf(new ApiError(422, "insufficient_points", "x"))).toEqual({ reason: "points" });
    expect(refusalOf(new ApiError(409, "invalid_state", "x", { session_status: "disconnected" }))).toEqual({
      reason: "notReady",
      status: "disconnected",
    });
    expect(refusalOf(new ApiError(422, "outside_active_hours", "x", { opens_at: "2026-03-03T02:00:00Z" }))?.at).toBe(
      "2026-03-03T02:00:00Z",
    );
    expect(refusalOf(new ApiError(422, "outside_active_hours", "x", { opens_at: null }))).toEqual({ reason: "paused" });
  });

  it("leaves other errors to the general words", () => {
    expect(refusalOf(new ApiError(400, "validation_failed", "x"))).toBeNull();
    expect(refusalOf(new Error("x"))).toBeNull();
  });
});

describe("messages", () => {
  const message = (id: string, over: Partial<MessageRecord> = {}) => ({ id, type: "text", ...over }) as MessageRecord;

  it("shows a status as ticks", () => {
    expect(["queued", "sending", "sent", "delivered", "read", "failed"].map((s) => ticksOf(s as MessageRecord["status"]))).toEqual([
      0, 0, 1, 2, 3, -1,
    ]);
  });

  it("names kinds other than text", () => {
    expect(kindOf(message("a"))).toBeNull();
    expect(kindOf(message("a", { type: "location" }))).toBe("location");
    expect(kindOf(message("a", { type: "unknown" }))).toBeNull();
  });

  it("orders pages of newest-first messages oldest first, each once", () => {
    const pages = [{ items: [message("3"), message("2")] }, { items: [message("2"), message("1")] }];
    expect(threadOf(pages).map((m) => m.id)).toEqual(["1", "2", "3"]);
  });
});
