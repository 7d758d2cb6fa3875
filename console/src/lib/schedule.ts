// Active hours as the API holds them (weekly windows in an IANA time zone,
// plus an override) and as the editor shows them (each weekday with its
// time ranges). Semantics (domain/src/types/active_hours.rs): a window
// belongs to the day it starts on; `end < start` crosses midnight;
// `end == start` is a whole day; no windows at all is always on.

export type Weekday = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";
export const WEEKDAYS: readonly Weekday[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export interface WindowBody {
  days: Weekday[];
  start: string;
  end: string;
}

export interface Range {
  start: string;
  end: string;
}

/** The ranges of each weekday. */
export type Week = Record<Weekday, Range[]>;

export type OverrideMode = "none" | "pause" | "activate";

export interface ScheduleView {
  timezone: string;
  windows: WindowBody[];
  override: OverrideMode;
}

export const DEFAULT_TIMEZONE = "Asia/Jakarta";

export function emptyWeek(): Week {
  return { mon: [], tue: [], wed: [], thu: [], fri: [], sat: [], sun: [] };
}

/** The API's windows as ranges per weekday, each day's sorted. */
export function toWeek(windows: readonly WindowBody[]): Week {
  const week = emptyWeek();
  for (const window of windows) {
    for (const day of window.days) {
      if (week[day] && !week[day].some((r) => r.start === window.start && r.end === window.end)) {
        week[day].push({ start: window.start, end: window.end });
      }
    }
  }
  for (const day of WEEKDAYS) week[day].sort((a, b) => a.start.localeCompare(b.start) || a.end.localeCompare(b.end));
  return week;
}

/** Ranges per weekday as the API's windows: one window per distinct range,
 * with every day that has it (Monday first), in the order they first
 * appear from Monday on. */
export function toWindows(week: Week): WindowBody[] {
  const byRange = new Map<string, WindowBody>();
  for (const day of WEEKDAYS) {
    for (const range of week[day]) {
      const key = `${range.start}-${range.end}`;
      const window = byRange.get(key) ?? { days: [], start: range.start, end: range.end };
      if (!window.days.includes(day)) window.days.push(day);
      byRange.set(key, window);
    }
  }
  return [...byRange.values()];
}

export type PresetId = "weekdays" | "weekdaysSaturday" | "everyday" | "always";

export const PRESETS: readonly { id: PresetId; windows: WindowBody[] }[] = [
  { id: "weekdays", windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "18:00" }] },
  {
    id: "weekdaysSaturday",
    windows: [
      { days: ["mon", "tue", "wed", "thu", "fri"], start: "09:00", end: "18:00" },
      { days: ["sat"], start: "09:00", end: "15:00" },
    ],
  },
  { id: "everyday", windows: [{ days: [...WEEKDAYS], start: "08:00", end: "21:00" }] },
  { id: "always", windows: [] },
];

/** The preset `windows` are, if any. */
export function presetOf(windows: readonly WindowBody[]): PresetId | null {
  const key = (w: readonly WindowBody[]) => JSON.stringify(toWindows(toWeek(w)));
  return PRESETS.find((preset) => key(preset.windows) === key(windows))?.id ?? null;
}

const minutes = (hhmm: string) => {
  const [h, m] = hhmm.split(":").map(Number);
  return h * 60 + m;
};

/** Whether `range` closes on the next day (`end <= start`). */
export function crossesMidnight(range: Range): boolean {
  return minutes(range.end) <= minutes(range.start);
}

/** The weekday and minute of the day at `at` in `timezone`. */
export function localClock(at: Date, timezone: string): { day: Weekday; minute: number } {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: timezone,
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(at);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  const day = part("weekday").slice(0, 3).toLowerCase() as Weekday;
  return { day, minute: Number(part("hour")) * 60 + Number(part("minute")) };
}

export type OpenState = "paused" | "activated" | "always" | "open" | "closed";

/** What the hours say at `at` (by the local wall clock: a clock change's
 * hour may differ by the server's exact rule). */
export function openState(schedule: ScheduleView, at: Date): OpenState {
  if (schedule.override === "pause") return "paused";
  if (schedule.override === "activate") return "activated";
  if (schedule.windows.length === 0) return "always";
  const { day, minute } = localClock(at, schedule.timezone);
  const yesterday = WEEKDAYS[(WEEKDAYS.indexOf(day) + 6) % 7];
  for (const window of schedule.windows) {
    const start = minutes(window.start);
    const end = minutes(window.end);
    if (end > start) {
      if (window.days.includes(day) && minute >= start && minute < end) return "open";
    } else {
      if (window.days.includes(day) && minute >= start) return "open";
      if (window.days.includes(yesterday) && minute < end) return "open";
    }
  }
  return "closed";
}

/** Time zones to choose from: Indonesia's first, then the rest A–Z. */
export function timezones(current: string): string[] {
  const first = ["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"];
  let all: string[] = [];
  try {
    all = (Intl as unknown as { supportedValuesOf?: (key: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];
  } catch {
    all = [];
  }
  const rest = [...new Set([...all, current, "UTC"])].filter((zone) => !first.includes(zone)).sort();
  return [...first, ...rest];
}
