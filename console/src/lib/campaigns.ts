// What the console works out about campaigns by itself: the points a start
// reserves, a template's variables, and a campaign's progress over time as
// the event stream reports it, ahead of the query tables.

import { useSyncExternalStore } from "react";
import type { CampaignCounts, CampaignMessage, CampaignStatus, EventData } from "../api/types";

/** Points a start reserves per recipient (media costs the same). */
export const POINTS_PER_MESSAGE = 2;

export function pointsFor(recipients: number): number {
  return recipients * POINTS_PER_MESSAGE;
}

/** Statuses a campaign never leaves. */
export const FINISHED: readonly CampaignStatus[] = ["completed", "cancelled"];

/** Messages that reached an end (sent or not); the rest still wait. */
export function doneOf(counts: CampaignCounts): number {
  return counts.sent + counts.delivered + counts.read + counts.failed + counts.cancelled + counts.unknown;
}

/** `insert` put in place of `text[start, end)`, and where the cursor goes after it. */
export function insertAt(text: string, start: number, end: number, insert: string): { text: string; cursor: number } {
  const from = Math.max(0, Math.min(start, text.length));
  const to = Math.max(from, Math.min(end, text.length));
  return { text: text.slice(0, from) + insert + text.slice(to), cursor: from + insert.length };
}

/**
 * The templates every Cloud API sender can send: synced on each of them
 * (same name and language), sendable everywhere, in the first's order.
 */
export function commonSendable<T extends { name: string; language: string; sendable: boolean }>(perSender: T[][]): T[] {
  if (perSender.length === 0) return [];
  const key = (t: T) => `${t.name}\u0000${t.language}`;
  const elsewhere = perSender.slice(1).map((list) => new Set(list.filter((t) => t.sendable).map(key)));
  return perSender[0].filter((t) => t.sendable && elsewhere.every((set) => set.has(key(t))));
}

export interface TemplateVariable {
  name: string;
  /** Whether it says what to write when a contact has no value (`{{name|Kak}}`). */
  fallback: boolean;
}

/** The variables a template uses (`{{name}}`, `{{kota|Jakarta}}`), each once. */
export function templateVariables(template: string): TemplateVariable[] {
  const found = new Map<string, TemplateVariable>();
  for (const match of template.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(\|[^}]*)?\}\}/g)) {
    const name = match[1];
    const key = name.toLowerCase();
    const fallback = match[2] !== undefined;
    const before = found.get(key);
    // Used once without a fallback, it needs a value everywhere.
    found.set(key, { name: before?.name ?? name, fallback: (before?.fallback ?? true) && fallback });
  }
  return [...found.values()];
}

/**
 * The variables some contacts lack (a preview's `missing`) that the
 * template uses without a fallback: the API refuses the campaign for them.
 */
export function missingWithoutFallback(template: string, missing: Record<string, number>): [string, number][] {
  const needed = new Set(templateVariables(template).filter((v) => !v.fallback).map((v) => v.name.toLowerCase()));
  return Object.entries(missing).filter(([name, count]) => count > 0 && needed.has(name.toLowerCase()));
}

// ---- positions: what a read after the stream's news must reflect ----

let lastEvents: number | undefined;
let lastMessages: number | undefined;

/** The campaign an event is about: its own, or a message's campaign. */
export function campaignOf(event: EventData): string | null {
  if (event.aggregate_type === "campaign") return event.aggregate_id;
  if (event.aggregate_type !== "message") return null;
  const data = Object.values(event.payload ?? {})[0];
  return typeof data?.campaign_id === "string" ? data.campaign_id : null;
}

/** Notes how far the stream read each of the log's streams. */
export function recordCampaignPosition(event: EventData) {
  if (event.stream === "events") lastEvents = Math.max(lastEvents ?? 0, event.stream_sequence);
  if (event.stream === "messages") lastMessages = Math.max(lastMessages ?? 0, event.stream_sequence);
}

/**
 * The positions a campaign read must reflect, one per stream (the API
 * takes one per request): the campaigns' own events, then their messages'.
 */
export function campaignReadPositions(): string[] {
  const positions: string[] = [];
  if (lastEvents !== undefined) positions.push(`events:${lastEvents}`);
  if (lastMessages !== undefined) positions.push(`messages:${lastMessages}`);
  return positions;
}

// ---- progress over time ----

/** When one message reached each step (milliseconds since the epoch). */
export interface MessageTimes {
  sent?: number;
  delivered?: number;
  read?: number;
}

export type Timeline = ReadonlyMap<string, MessageTimes>;

/** A message's times as a page of the campaign's messages gives them. */
export function timesOf(message: CampaignMessage): MessageTimes {
  const at = (iso: string | null) => (iso ? Date.parse(iso) : undefined);
  return { sent: at(message.sent_at), delivered: at(message.delivered_at), read: at(message.read_at) };
}

/** What a message event says of its message's times, if anything. */
export function messageTimesOf(event: EventData): [string, MessageTimes] | null {
  if (event.aggregate_type !== "message") return null;
  const [type, data] = Object.entries(event.payload ?? {})[0] ?? [];
  if (!type || !data) return null;
  const at = Date.parse(typeof data.at === "string" ? data.at : event.occurred_at);
  switch (type) {
    case "MessageSent":
      return [event.aggregate_id, { sent: at }];
    case "MessageDelivered":
      return [event.aggregate_id, { delivered: at }];
    case "MessageRead":
      return [event.aggregate_id, { read: at }];
    default:
      return null;
  }
}

/** `times` with what `news` adds; a step's first time stays. */
export function mergeTimes(times: MessageTimes | undefined, news: MessageTimes): MessageTimes {
  return {
    sent: times?.sent ?? news.sent,
    delivered: times?.delivered ?? news.delivered,
    read: times?.read ?? news.read,
  };
}

export type Series = { at: number; count: number }[];

/**
 * How many messages had been sent, delivered and read over time: one
 * point per change. A message delivered or read was sent by then too.
 */
export function seriesOf(timeline: Timeline): { sent: Series; delivered: Series; read: Series } {
  const steps = (pick: (t: MessageTimes) => number | undefined): Series => {
    const times = [...timeline.values()].map(pick).filter((t): t is number => t !== undefined && !Number.isNaN(t));
    times.sort((a, b) => a - b);
    const series: Series = [];
    times.forEach((at, i) => {
      const last = series[series.length - 1];
      if (last && last.at === at) last.count = i + 1;
      else series.push({ at, count: i + 1 });
    });
    return series;
  };
  const first = (...times: (number | undefined)[]) => {
    const known = times.filter((t): t is number => t !== undefined);
    return known.length > 0 ? Math.min(...known) : undefined;
  };
  return {
    sent: steps((t) => first(t.sent, t.delivered, t.read)),
    delivered: steps((t) => first(t.delivered, t.read)),
    read: steps((t) => t.read),
  };
}

// The timelines of the campaigns a page watches, fed by the event stream.
const watched = new Map<string, number>();
let timelines: ReadonlyMap<string, Timeline> = new Map();
const listeners = new Set<() => void>();

function changed() {
  for (const listener of listeners) listener();
}

/** Keeps the stream's news of campaign `id` while a page shows it. */
export function watchCampaign(id: string): () => void {
  watched.set(id, (watched.get(id) ?? 0) + 1);
  return () => {
    const left = (watched.get(id) ?? 1) - 1;
    if (left > 0) {
      watched.set(id, left);
      return;
    }
    watched.delete(id);
    const next = new Map(timelines);
    next.delete(id);
    timelines = next;
    changed();
  };
}

/** Adds messages' times to campaign `id`'s timeline (if it is watched). */
export function recordTimes(id: string, news: [string, MessageTimes][]) {
  if (!watched.has(id) || news.length === 0) return;
  const timeline = new Map(timelines.get(id));
  for (const [message, times] of news) timeline.set(message, mergeTimes(timeline.get(message), times));
  const next = new Map(timelines);
  next.set(id, timeline);
  timelines = next;
  changed();
}

export function clearCampaigns() {
  timelines = new Map();
  lastEvents = undefined;
  lastMessages = undefined;
  changed();
}

const EMPTY: Timeline = new Map();

export function useTimeline(id: string): Timeline {
  const all = useSyncExternalStore(
    (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    () => timelines,
  );
  return all.get(id) ?? EMPTY;
}
