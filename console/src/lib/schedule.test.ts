import { describe, expect, it } from "vitest";
import { PRESETS, openState, presetOf, timezones, toWeek, toWindows, type ScheduleView, type WindowBody } from "./schedule";

const weekdays: WindowBody = { days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "18:00" };

describe("weekly windows and weekdays", () => {
  it("spreads windows over their days and gathers them back", () => {
    const windows: WindowBody[] = [weekdays, { days: ["sat"], start: "09:00", end: "15:00" }];
    const week = toWeek(windows);
    expect(week.mon).toEqual([{ start: "09:00", end: "18:00" }]);
    expect(week.sat).toEqual([{ start: "09:00", end: "15:00" }]);
    expect(week.sun).toEqual([]);
    expect(toWindows(week)).toEqual(windows);
  });

  it("keeps several ranges a day, sorted, and days Monday first", () => {
    const week = toWeek([
      { days: ["sun", "mon"], start: "13:00", end: "17:00" },
      { days: ["mon"], start: "08:00", end: "12:00" },
    ]);
    expect(week.mon.map((r) => r.start)).toEqual(["08:00", "13:00"]);
    expect(toWindows(week)).toEqual([
      { days: ["mon"], start: "08:00", end: "12:00" },
      { days: ["mon", "sun"], start: "13:00", end: "17:00" },
    ]);
  });

  it("knows its presets", () => {
    for (const preset of PRESETS) expect(presetOf(preset.windows)).toBe(preset.id);
    expect(presetOf([{ days: ["fri", "thu", "wed", "tue", "mon"], start: "09:00", end: "18:00" }])).toBe("weekdays");
    expect(presetOf([{ days: ["mon"], start: "09:00", end: "18:00" }])).toBeNull();
  });
});

describe("whether the hours are open", () => {
  const at = (iso: string) => new Date(iso);
  const schedule = (windows: WindowBody[], override: ScheduleView["override"] = "none"): ScheduleView => ({
    timezone: "Asia/Jakarta",
    windows,
    override,
  });

  it("reads the wall clock of the time zone", () => {
    // Monday 2026-03-02 10:00 WIB is 03:00 UTC.
    expect(openState(schedule([weekdays]), at("2026-03-02T03:00:00Z"))).toBe("open");
    // 18:00 WIB closes (half-open).
    expect(openState(schedule([weekdays]), at("2026-03-02T11:00:00Z"))).toBe("closed");
    // Saturday.
    expect(openState(schedule([weekdays]), at("2026-03-07T03:00:00Z"))).toBe("closed");
  });

  it("lets a window cross midnight into the next day", () => {
    const night: WindowBody = { days: ["mon"], start: "22:00", end: "02:00" };
    // Tuesday 01:00 WIB = Monday 18:00 UTC.
    expect(openState(schedule([night]), at("2026-03-02T18:00:00Z"))).toBe("open");
    // Tuesday 22:30 WIB: Tuesday is not one of its days.
    expect(openState(schedule([night]), at("2026-03-03T15:30:00Z"))).toBe("closed");
    const wholeMonday: WindowBody = { days: ["mon"], start: "00:00", end: "00:00" };
    expect(openState(schedule([wholeMonday]), at("2026-03-02T16:59:00Z"))).toBe("open");
    expect(openState(schedule([wholeMonday]), at("2026-03-02T17:00:00Z"))).toBe("closed");
  });

  it("puts the override first and no windows as always on", () => {
    expect(openState(schedule([weekdays], "pause"), at("2026-03-02T03:00:00Z"))).toBe("paused");
    expect(openState(schedule([weekdays], "activate"), at("2026-03-07T03:00:00Z"))).toBe("activated");
    expect(openState(schedule([]), at("2026-03-07T03:00:00Z"))).toBe("always");
  });
});

describe("time zones", () => {
  it("offers Indonesia's first and keeps the current one", () => {
    const zones = timezones("Europe/Berlin");
    expect(zones.slice(0, 3)).toEqual(["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]);
    expect(zones).toContain("Europe/Berlin");
    expect(new Set(zones).size).toBe(zones.length);
  });
});
