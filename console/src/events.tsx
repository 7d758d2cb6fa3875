// The tenant's event stream, read for as long as someone is signed in:
// session statuses go straight to the cards, messages' times to the chart
// of the campaign on screen; other changes refresh the queries they touch.

import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { campaignKeys } from "./api/campaigns";
import { accountKeys, inboxKeys, keys } from "./api/queries";
import type { EventData } from "./api/types";
import { getToken, signOut } from "./lib/auth";
import { campaignOf, clearCampaigns, messageTimesOf, recordCampaignPosition, recordTimes } from "./lib/campaigns";
import { checkProgressOf, clearChecks, recordCheck } from "./lib/checks";
import { clearLive, liveStatusOf, recordLive, recordPosition } from "./lib/live";
import { readEventStream, type StreamState } from "./lib/sse";

const Context = createContext<StreamState>("connecting");

/** Which queries an event of `aggregateType` makes stale. */
export function staleBy(aggregateType: string): (readonly string[])[] {
  switch (aggregateType) {
    // A campaign's waiting reason follows its senders' and the schedule's.
    case "session":
    case "session_day":
      return [keys.sessions, campaignKeys.all];
    case "schedule":
      return [inboxKeys.schedule, campaignKeys.all];
    case "wallet":
      return [keys.wallet];
    // A subscription turned off or on again.
    case "webhook":
      return [accountKeys.webhooks];
    // A plan put on offer or retired (the platform admin's stream).
    case "plan":
      return [accountKeys.plans];
    case "campaign":
      return [campaignKeys.all];
    // A check's end: the list's contacts show what it found.
    case "list_check":
      return [keys.lists];
    // A message received or sent, its status: the inbox; an auto-reply's
    // decision: its rule's stats.
    case "inbound":
    case "message":
      return [inboxKeys.chats, inboxKeys.messages];
    case "auto_reply_thread":
      return [inboxKeys.autoReplies];
    default:
      return [];
  }
}

/** The queries an event makes stale beyond its aggregate type's. */
export function staleByEvent(event: EventData): (readonly string[])[] {
  if (event.aggregate_type !== "message") return [];
  const campaign = campaignOf(event);
  const stale: (readonly string[])[] = [];
  // A campaign's counts and messages move with each of its messages.
  if (campaign) stale.push(campaignKeys.all, campaignKeys.messages(campaign));
  if (event.type === "MessageFailed") stale.push(campaignKeys.failures);
  return stale;
}

export function EventsProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [state, setState] = useState<StreamState>("connecting");
  useEffect(() => {
    const abort = new AbortController();
    const pending = new Map<string, readonly string[]>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Many events at once (a campaign's sends) refresh once.
    const refresh = (queryKeys: (readonly string[])[]) => {
      if (queryKeys.length === 0) return;
      for (const key of queryKeys) pending.set(JSON.stringify(key), key);
      if (timer === undefined) {
        timer = setTimeout(() => {
          timer = undefined;
          for (const key of pending.values()) void client.invalidateQueries({ queryKey: key });
          pending.clear();
        }, 300);
      }
    };
    void readEventStream({
      url: "/api/v1/events",
      token: getToken,
      signal: abort.signal,
      onUnauthorized: signOut,
      onState: (next) => {
        setState(next);
        // What changed while no stream was read.
        if (next === "open")
          refresh([keys.sessions, keys.wallet, inboxKeys.chats, inboxKeys.messages, campaignKeys.all, campaignKeys.failures]);
      },
      onEvent: (sse) => {
        let event: EventData;
        try {
          event = JSON.parse(sse.data) as EventData;
        } catch {
          return;
        }
        recordPosition(event);
        recordCampaignPosition(event);
        const live = liveStatusOf(event);
        if (live) recordLive(...live);
        const check = checkProgressOf(event);
        // The bar moves at once; the contacts' statuses follow on refresh.
        if (check) recordCheck(...check);
        const times = messageTimesOf(event);
        const campaign = times ? campaignOf(event) : null;
        // The chart moves at once; the counts follow on refresh.
        if (times && campaign) recordTimes(campaign, [times]);
        refresh([...staleBy(event.aggregate_type), ...staleByEvent(event)]);
      },
    });
    return () => {
      abort.abort();
      clearTimeout(timer);
      clearLive();
      clearChecks();
      clearCampaigns();
    };
  }, [client]);
  return <Context.Provider value={state}>{children}</Context.Provider>;
}

export function useStreamState(): StreamState {
  return useContext(Context);
}
