// The tenant's event stream, read for as long as someone is signed in:
// session statuses go straight to the cards; other changes refresh the
// queries they touch.

import { useQueryClient } from "@tanstack/react-query";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { accountKeys, inboxKeys, keys } from "./api/queries";
import type { EventData } from "./api/types";
import { getToken, signOut } from "./lib/auth";
import { checkProgressOf, clearChecks, recordCheck } from "./lib/checks";
import { clearLive, liveStatusOf, recordLive, recordPosition } from "./lib/live";
import { readEventStream, type StreamState } from "./lib/sse";

const Context = createContext<StreamState>("connecting");

/** Which queries an event of `aggregateType` makes stale. */
export function staleBy(aggregateType: string): (readonly string[])[] {
  switch (aggregateType) {
    case "session":
    case "session_day":
      return [keys.sessions];
    case "wallet":
      return [keys.wallet];
    // A subscription turned off or on again.
    case "webhook":
      return [accountKeys.webhooks];
    // A plan put on offer or retired (the platform admin's stream).
    case "plan":
      return [accountKeys.plans];
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
    case "schedule":
      return [inboxKeys.schedule];
    default:
      return [];
  }
}

export function EventsProvider({ children }: { children: ReactNode }) {
  const client = useQueryClient();
  const [state, setState] = useState<StreamState>("connecting");
  useEffect(() => {
    const abort = new AbortController();
    const pending = new Set<readonly string[]>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Many events at once (a campaign's sends) refresh once.
    const refresh = (queryKeys: (readonly string[])[]) => {
      for (const key of queryKeys) pending.add(key);
      if (timer === undefined) {
        timer = setTimeout(() => {
          timer = undefined;
          for (const key of pending) void client.invalidateQueries({ queryKey: key });
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
        if (next === "open") refresh([keys.sessions, keys.wallet, inboxKeys.chats, inboxKeys.messages]);
      },
      onEvent: (sse) => {
        let event: EventData;
        try {
          event = JSON.parse(sse.data) as EventData;
        } catch {
          return;
        }
        recordPosition(event);
        const live = liveStatusOf(event);
        if (live) recordLive(...live);
        const check = checkProgressOf(event);
        // The bar moves at once; the contacts' statuses follow on refresh.
        if (check) recordCheck(...check);
        refresh(staleBy(event.aggregate_type));
      },
    });
    return () => {
      abort.abort();
      clearTimeout(timer);
      clearLive();
      clearChecks();
    };
  }, [client]);
  return <Context.Provider value={state}>{children}</Context.Provider>;
}

export function useStreamState(): StreamState {
  return useContext(Context);
}
