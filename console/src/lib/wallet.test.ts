import { describe, expect, it } from "vitest";
import { formatSigned, isUuid, replayFrom, signedPoints } from "./wallet";

describe("a transaction's points", () => {
  it("are signed by their kind", () => {
    expect(signedPoints({ kind: "allocation", points: 1000 })).toBe(1000);
    expect(signedPoints({ kind: "topup", points: 250 })).toBe(250);
    expect(signedPoints({ kind: "release", points: 40 })).toBe(40);
    expect(signedPoints({ kind: "reserve", points: 200 })).toBe(-200);
    expect(signedPoints({ kind: "capture", points: 160 })).toBe(-160);
    expect(signedPoints({ kind: "refund", points: 300 })).toBe(-300);
    expect(signedPoints({ kind: "expire", points: 0 })).toBe(0);
  });

  it("show their sign with a real minus", () => {
    const id = new Intl.NumberFormat("id-ID").format;
    expect(formatSigned(1000, id)).toBe("+1.000");
    expect(formatSigned(-1200, id)).toBe("−1.200");
    expect(formatSigned(0, id)).toBe("0");
  });
});

describe("a replay from a delivery", () => {
  it("starts just before the event's commit, in its stream only", () => {
    expect(replayFrom("events:12")).toBe("events:11");
    expect(replayFrom("messages:1042.3")).toBe("messages:1041");
    expect(replayFrom("events:1")).toBe("events:0");
  });

  it("is not offered for what is not a position", () => {
    expect(replayFrom("test:0190")).toBeNull();
    expect(replayFrom("events:0")).toBeNull();
    expect(replayFrom("events:")).toBeNull();
    expect(replayFrom("other:5")).toBeNull();
  });
});

describe("an id", () => {
  it("is a UUID", () => {
    expect(isUuid("0190f0a2-7c1e-7b3a-9d2e-1a2b3c4d5e6f")).toBe(true);
    expect(isUuid(" 0190F0A2-7C1E-7B3A-9D2E-1A2B3C4D5E6F ")).toBe(true);
    expect(isUuid("toko-budi")).toBe(false);
    expect(isUuid("")).toBe(false);
  });
});
