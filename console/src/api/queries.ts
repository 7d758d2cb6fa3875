import { useQuery } from "@tanstack/react-query";
import { mergeLive, readAfter, useLiveStatuses } from "../lib/live";
import { useMemo } from "react";
import { api } from "./client";
import type { Me, Page, Session, Wallet } from "./types";

export const keys = {
  me: ["me"] as const,
  sessions: ["sessions"] as const,
  wallet: ["wallet"] as const,
};

export function useMe() {
  return useQuery({ queryKey: keys.me, queryFn: ({ signal }) => api<Me>("/api/v1/me", { signal }) });
}

export function useWallet() {
  return useQuery({ queryKey: keys.wallet, queryFn: ({ signal }) => api<Wallet>("/api/v1/wallet", { signal, after: readAfter() }) });
}

/** The tenant's sessions, each with its live status from the event stream. */
export function useSessions() {
  const query = useQuery({
    queryKey: keys.sessions,
    queryFn: ({ signal }) => api<Page<Session>>("/api/v1/sessions?limit=500", { signal, after: readAfter() }),
  });
  const live = useLiveStatuses();
  const sessions = useMemo(() => (query.data ? mergeLive(query.data.items, live) : undefined), [query.data, live]);
  return { ...query, sessions };
}
