import { describe, expect, it } from "vitest";
import { daysUntil, localInputValue, secondsUntil } from "./time";

describe("countdowns", () => {
  const now = Date.parse("2026-12-07T08:00:00Z");
  it("counts whole seconds up and never below zero", () => {
    expect(secondsUntil("2026-12-07T08:00:19.200Z", now)).toBe(20);
    expect(secondsUntil("2026-12-07T07:59:00Z", now)).toBe(0);
    expect(secondsUntil("not a date", now)).toBe(0);
  });
  it("counts days up, negative once past", () => {
    expect(daysUntil("2026-12-22T08:00:00Z", now)).toBe(15);
    expect(daysUntil("2026-12-06T08:00:00Z", now)).toBe(-1);
  });
});

describe("a date-time input's value", () => {
  it("is the local time to the minute, and reads back as the same instant", () => {
    const at = new Date(2026, 11, 7, 9, 5, 42);
    expect(localInputValue(at.getTime())).toBe("2026-12-07T09:05");
    expect(Date.parse(localInputValue(at.getTime()))).toBe(new Date(2026, 11, 7, 9, 5).getTime());
  });
});
