// Campaign reads: the list, one campaign, its messages, its timeline, and
// the tenant's recent failed sends. Each read reflects what the event
// stream already reported (see `readFresh`).

import { useQuery } from "@tanstack/react-query";
import { useEffect } from "react";
import { campaignReadPositions, recordTimes, timesOf } from "../lib/campaigns";
import { api } from "./client";
import type { Campaign, CampaignMessage, MessageRecord, MessageStatus, Page } from "./types";

export const campaignKeys = {
  /** Every campaign read (the list and each campaign): what campaign news makes stale. */
  all: ["campaigns"] as const,
  list: ["campaigns", "list"] as const,
  one: (id: string) => ["campaigns", "one", id] as const,
  /** A campaign's messages table: what its messages' news makes stale. */
  messages: (id: string) => ["campaign-messages", id] as const,
  messagesPage: (id: string, status: MessageStatus | "", cursor: string | null) =>
    ["campaign-messages", id, status, cursor ?? ""] as const,
  /** Read once per visit; the stream adds to it afterwards. */
  timeline: (id: string) => ["campaign-timeline", id] as const,
  failures: ["messages", "failed"] as const,
};

const lastRead = new Map<string, string>();

/**
 * `path` read so that it reflects what the stream reported of both log
 * streams. The API waits for one position per request, so when the
 * campaigns' own events moved since this path was last read, a first read
 * waits for them and a second for the messages'. The projections only move
 * forward: the second answer reflects both.
 */
export async function readFresh<T>(path: string, signal?: AbortSignal): Promise<T> {
  const positions = campaignReadPositions();
  if (positions.length === 2 && lastRead.get(path) !== positions[0]) {
    await api<T>(path, { signal, after: positions[0] });
  }
  if (positions.length > 0) lastRead.set(path, positions[0]);
  return api<T>(path, { signal, after: positions[positions.length - 1] });
}

/** The most campaigns the console lists (ten pages). */
const CAMPAIGNS_MAX = 5_000;

/** The tenant's campaigns, newest first. */
export function useCampaigns() {
  return useQuery({
    queryKey: campaignKeys.list,
    queryFn: async ({ signal }) => {
      // The API lists them oldest first: the newest are on the last page.
      const campaigns: Campaign[] = [];
      let cursor: string | null = null;
      do {
        const query = new URLSearchParams({ limit: "500" });
        if (cursor) query.set("cursor", cursor);
        const page: Page<Campaign> = await readFresh(`/api/v1/campaigns?${query}`, signal);
        campaigns.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor && campaigns.length < CAMPAIGNS_MAX);
      return campaigns.reverse();
    },
  });
}

export function useCampaign(id: string) {
  return useQuery({
    queryKey: campaignKeys.one(id),
    queryFn: ({ signal }) => readFresh<Campaign>(`/api/v1/campaigns/${id}`, signal),
  });
}

export const MESSAGES_PER_PAGE = 50;

/** A page of a campaign's messages, only those in `status` when given. */
export function useCampaignMessages(id: string, status: MessageStatus | "", cursor: string | null) {
  return useQuery({
    queryKey: campaignKeys.messagesPage(id, status, cursor),
    queryFn: ({ signal }) => {
      const query = new URLSearchParams({ limit: String(MESSAGES_PER_PAGE) });
      if (status) query.set("status", status);
      if (cursor) query.set("cursor", cursor);
      return readFresh<Page<CampaignMessage>>(`/api/v1/campaigns/${id}/messages?${query}`, signal);
    },
    placeholderData: (previous) => previous,
  });
}

/** The most messages read for a campaign's chart: beyond, the stream's news only. */
export const TIMELINE_MAX = 2_500;

/**
 * Reads the times of a campaign's messages once into its timeline, which
 * the event stream keeps up to date (the caller watches the campaign).
 * Says whether the campaign had more messages than were read.
 */
export function useTimelineSeed(id: string) {
  const query = useQuery({
    queryKey: campaignKeys.timeline(id),
    staleTime: Infinity,
    gcTime: 0,
    queryFn: async ({ signal }) => {
      const messages: CampaignMessage[] = [];
      let cursor: string | null = null;
      do {
        const query = new URLSearchParams({ limit: "500" });
        if (cursor) query.set("cursor", cursor);
        const page: Page<CampaignMessage> = await readFresh(`/api/v1/campaigns/${id}/messages?${query}`, signal);
        messages.push(...page.items);
        cursor = page.next_cursor;
      } while (cursor && messages.length < TIMELINE_MAX);
      return { messages, partial: cursor !== null };
    },
  });
  const data = query.data;
  useEffect(() => {
    if (data) recordTimes(id, data.messages.map((m) => [m.id, timesOf(m)]));
  }, [id, data]);
  return { ...query, partial: data?.partial ?? false };
}

/** The tenant's latest failed sends. */
export function useRecentFailures(limit = 5) {
  return useQuery({
    queryKey: campaignKeys.failures,
    queryFn: ({ signal }) =>
      readFresh<Page<MessageRecord>>(`/api/v1/messages?direction=out&status=failed&limit=${limit}`, signal),
  });
}
