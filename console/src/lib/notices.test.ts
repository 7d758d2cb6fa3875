import { describe, expect, it } from "vitest";
import type { Wallet } from "../api/types";
import { walletNotices } from "./notices";

const base: Wallet = {
  balance: 100,
  reserved: 0,
  available: 100,
  plan: { id: "p", name: "Basic", period_days: 30 },
  plan_expires_at: "2026-12-10T00:00:00Z",
  plan_expired: false,
  sending_until: "2026-12-12T00:00:00Z",
  suspended_reason: null,
  low_balance: false,
};

const kinds = (wallet: Wallet, now: string) => walletNotices(wallet, new Date(now)).map((n) => n.kind);

describe("wallet notices", () => {
  it("say nothing early in the period", () => {
    expect(kinds(base, "2026-11-20T00:00:00Z")).toEqual([]);
  });

  it("warn within 3 days of the end, then in the grace days, then once ended", () => {
    expect(kinds(base, "2026-12-08T00:00:00Z")).toEqual(["expiring"]);
    expect(kinds(base, "2026-12-11T00:00:00Z")).toEqual(["grace"]);
    expect(kinds(base, "2026-12-12T00:00:00Z")).toEqual(["expired"]);
    expect(kinds({ ...base, plan_expired: true }, "2026-12-01T00:00:00Z")).toEqual(["expired"]);
  });

  it("put a suspension first and add a low balance", () => {
    expect(kinds({ ...base, suspended_reason: "spam", low_balance: true }, "2026-11-20T00:00:00Z")).toEqual([
      "suspended",
      "lowBalance",
    ]);
  });
});
