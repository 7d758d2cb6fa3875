import { describe, expect, it } from "vitest";
import type { EventData } from "../api/types";
import {
  commonSendable,
  campaignOf,
  campaignReadPositions,
  clearCampaigns,
  insertAt,
  messageTimesOf,
  mergeTimes,
  missingWithoutFallback,
  pointsFor,
  recordCampaignPosition,
  seriesOf,
  templateVariables,
  type MessageTimes,
} from "./campaigns";

const event = (over: Partial<EventData>): EventData => ({
  type: "MessageSent",
  aggregate_type: "message",
  aggregate_id: "m1",
  occurred_at: "2026-12-07T08:00:05Z",
  stream: "messages",
  stream_sequence: 7,
  payload: { MessageSent: { campaign_id: "c1", at: "2026-12-07T08:00:04Z" } },
  ...over,
});

describe("a campaign's points", () => {
  it("are two per recipient", () => {
    expect(pointsFor(3)).toBe(6);
    expect(pointsFor(0)).toBe(0);
  });
});

describe("inserting a variable", () => {
  it("goes where the cursor is and moves the cursor past it", () => {
    expect(insertAt("Halo  dari", 5, 5, "{{name}}")).toEqual({ text: "Halo {{name}} dari", cursor: 13 });
  });

  it("replaces a selection", () => {
    expect(insertAt("Halo Kak!", 5, 8, "{{name}}")).toEqual({ text: "Halo {{name}}!", cursor: 13 });
  });

  it("appends when the cursor is past the end", () => {
    expect(insertAt("Halo", 99, 99, " {{kota}}")).toEqual({ text: "Halo {{kota}}", cursor: 13 });
  });
});

describe("a template's variables", () => {
  it("are found once each, with whether they have a fallback", () => {
    expect(templateVariables("{Halo|Hai} {{name|Kak}} dari {{ kota }}, {{Kota}}")).toEqual([
      { name: "name", fallback: true },
      { name: "kota", fallback: false },
    ]);
  });

  it("need a value everywhere when used once without a fallback", () => {
    expect(templateVariables("{{kota|sini}} {{kota}}")).toEqual([{ name: "kota", fallback: false }]);
  });

  it("lacking values matter only without a fallback", () => {
    expect(missingWithoutFallback("Halo {{name|Kak}} dari {{kota}}", { name: 2, kota: 1 })).toEqual([["kota", 1]]);
    expect(missingWithoutFallback("Halo {{name|Kak}}", { name: 2 })).toEqual([]);
  });
});

describe("the stream's news of a campaign", () => {
  it("names the campaign of a message's event and of the campaign's own", () => {
    expect(campaignOf(event({}))).toBe("c1");
    expect(campaignOf(event({ aggregate_type: "campaign", aggregate_id: "c2", payload: { CampaignStarted: {} } }))).toBe("c2");
    expect(campaignOf(event({ aggregate_type: "session", payload: { SessionCreated: {} } }))).toBeNull();
  });

  it("gives a message's times from its sends and receipts", () => {
    expect(messageTimesOf(event({}))).toEqual(["m1", { sent: Date.parse("2026-12-07T08:00:04Z") }]);
    expect(messageTimesOf(event({ type: "MessageRead", payload: { MessageRead: { campaign_id: "c1" } } }))).toEqual([
      "m1",
      { read: Date.parse("2026-12-07T08:00:05Z") },
    ]);
    expect(messageTimesOf(event({ type: "MessageQueued", payload: { MessageQueued: { campaign_id: "c1" } } }))).toBeNull();
  });

  it("keeps the first time of each step", () => {
    expect(mergeTimes({ sent: 1 }, { sent: 2, delivered: 3 })).toEqual({ sent: 1, delivered: 3, read: undefined });
  });

  it("asks reads to reflect both streams, the campaigns' first", () => {
    clearCampaigns();
    expect(campaignReadPositions()).toEqual([]);
    recordCampaignPosition(event({ stream: "messages", stream_sequence: 9 }));
    recordCampaignPosition(event({ stream: "messages", stream_sequence: 4 }));
    expect(campaignReadPositions()).toEqual(["messages:9"]);
    recordCampaignPosition(event({ stream: "events", stream_sequence: 12 }));
    expect(campaignReadPositions()).toEqual(["events:12", "messages:9"]);
    clearCampaigns();
  });
});

describe("the chart's series", () => {
  it("count what was sent, delivered and read by each time", () => {
    const timeline = new Map<string, MessageTimes>([
      ["a", { sent: 10, delivered: 20, read: 30 }],
      ["b", { sent: 15 }],
      ["c", { sent: 15, delivered: 25 }],
      // A receipt seen before its send: it was sent by then.
      ["d", { delivered: 40 }],
    ]);
    expect(seriesOf(timeline)).toEqual({
      sent: [
        { at: 10, count: 1 },
        { at: 15, count: 3 },
        { at: 40, count: 4 },
      ],
      delivered: [
        { at: 20, count: 1 },
        { at: 25, count: 2 },
        { at: 40, count: 3 },
      ],
      read: [{ at: 30, count: 1 }],
    });
  });
});

describe("the templates a campaign's Cloud API senders share", () => {
  const t = (name: string, language = "id", sendable = true) => ({ name, language, sendable });

  it("offers nothing without a Cloud API sender", () => {
    expect(commonSendable([])).toEqual([]);
  });

  it("offers one sender's sendable templates, in its order", () => {
    expect(commonSendable([[t("b"), t("a"), t("c", "id", false)]])).toEqual([t("b"), t("a")]);
  });

  it("offers only what every sender synced and can send", () => {
    const first = [t("order_update"), t("promo"), t("promo", "en"), t("reminder")];
    const second = [t("promo", "en"), t("order_update"), t("reminder", "id", false)];
    expect(commonSendable([first, second])).toEqual([t("order_update"), t("promo", "en")]);
  });

  it("offers nothing when a sender synced none", () => {
    expect(commonSendable([[t("order_update")], []])).toEqual([]);
  });
});
