import { useInfiniteQuery, useQuery } from "@tanstack/react-query";
import { mergeLive, readAfter, useLiveStatuses } from "../lib/live";
import { useMemo } from "react";
import { api } from "./client";
import { ApiError } from "./client";
import type { Contact, ContactList, ListCheck, Me, Page, Session, Wallet } from "./types";
import type { ApiKey, Delivery, DeliveryStatus, Plan, Transaction, Webhook } from "./types";
import type { AutoReply, AutoReplyStats, Chat, MessageRecord } from "./types";
import type { BillingOptions, Order } from "./types";
import type { ScheduleView } from "../lib/schedule";

export const keys = {
  me: ["me"] as const,
  sessions: ["sessions"] as const,
  wallet: ["wallet"] as const,
  lists: ["contact-lists"] as const,
  list: (id: string) => ["contact-lists", id] as const,
  contacts: (id: string, cursor: string | null) => ["contact-lists", id, "contacts", cursor ?? ""] as const,
  check: (id: string) => ["contact-lists", id, "check"] as const,
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

/** The tenant's contact lists (the first 500). */
export function useContactLists() {
  return useQuery({
    queryKey: keys.lists,
    queryFn: ({ signal }) => api<Page<ContactList>>("/api/v1/contact-lists?limit=500", { signal }),
  });
}

export function useContactList(id: string) {
  return useQuery({ queryKey: keys.list(id), queryFn: ({ signal }) => api<ContactList>(`/api/v1/contact-lists/${id}`, { signal }) });
}

export const CONTACTS_PER_PAGE = 50;

/** A page of a list's contacts, from `cursor` (null: the first page). */
export function useContacts(id: string, cursor: string | null) {
  return useQuery({
    queryKey: keys.contacts(id, cursor),
    queryFn: ({ signal }) =>
      api<Page<Contact>>(
        `/api/v1/contact-lists/${id}/contacts?limit=${CONTACTS_PER_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        { signal },
      ),
    placeholderData: (previous) => previous,
  });
}

/**
 * The list's latest number check; null when it was never checked. Asked
 * only when there may be one (`enabled`): a never-checked list answers 404,
 * which the browser logs as an error.
 */
export function useListCheck(id: string, enabled: boolean) {
  return useQuery({
    queryKey: keys.check(id),
    enabled,
    queryFn: async ({ signal }) => {
      try {
        return await api<ListCheck>(`/api/v1/contact-lists/${id}/check`, { signal, after: readAfter() });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      }
    },
  });
}

// — wallet, developers and admin —

export const accountKeys = {
  // Under the wallet's key: an event that refreshes the wallet refreshes these.
  transactions: (cursor: string | null) => ["wallet", "transactions", cursor ?? ""] as const,
  plans: ["plans"] as const,
  // Under the wallet's key too: a payment credited refreshes them.
  orders: (cursor: string | null) => ["wallet", "orders", cursor ?? ""] as const,
  billingOptions: ["billing-options"] as const,
  apiKeys: ["api-keys"] as const,
  webhooks: ["webhooks"] as const,
  webhook: (id: string) => ["webhooks", id] as const,
  deliveries: (id: string, status: DeliveryStatus | null, cursor: string | null) =>
    ["webhooks", id, "deliveries", status ?? "", cursor ?? ""] as const,
};

export const TRANSACTIONS_PER_PAGE = 20;

/** A page of the wallet's history, newest first, from `cursor` (null: the first). */
export function useTransactions(cursor: string | null) {
  return useQuery({
    queryKey: accountKeys.transactions(cursor),
    queryFn: ({ signal }) =>
      api<Page<Transaction>>(
        `/api/v1/wallet/transactions?limit=${TRANSACTIONS_PER_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        { signal, after: readAfter() },
      ),
    placeholderData: (previous) => previous,
  });
}

export const ORDERS_PER_PAGE = 20;

/** A page of the tenant's orders, newest first. */
export function useOrders(cursor: string | null) {
  return useQuery({
    queryKey: accountKeys.orders(cursor),
    queryFn: ({ signal }) =>
      api<Page<Order>>(
        `/api/v1/billing/orders?limit=${ORDERS_PER_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        { signal, after: readAfter() },
      ),
    placeholderData: (previous) => previous,
  });
}

/** Whether payments are on, and what points cost. */
export function useBillingOptions() {
  return useQuery({
    queryKey: accountKeys.billingOptions,
    queryFn: ({ signal }) => api<BillingOptions>("/api/v1/billing/options", { signal }),
  });
}

/** The plans on offer (one page holds them all). */
export function usePlans() {
  return useQuery({ queryKey: accountKeys.plans, queryFn: ({ signal }) => api<Page<Plan>>("/api/v1/plans", { signal }) });
}

export function useApiKeys() {
  return useQuery({ queryKey: accountKeys.apiKeys, queryFn: ({ signal }) => api<Page<ApiKey>>("/api/v1/api-keys", { signal }) });
}

export function useWebhooks() {
  return useQuery({
    queryKey: accountKeys.webhooks,
    queryFn: ({ signal }) => api<Page<Webhook>>("/api/v1/webhooks?limit=500", { signal }),
  });
}

export function useWebhook(id: string) {
  return useQuery({ queryKey: accountKeys.webhook(id), queryFn: ({ signal }) => api<Webhook>(`/api/v1/webhooks/${id}`, { signal }) });
}

export const DELIVERIES_PER_PAGE = 25;

/**
 * A page of a subscription's deliveries (newest first), only those in
 * `status` when given. Deliveries are not events: they are asked again
 * every few seconds while the page shows them.
 */
export function useDeliveries(id: string, status: DeliveryStatus | null, cursor: string | null) {
  const params = new URLSearchParams({ limit: String(DELIVERIES_PER_PAGE) });
  if (status) params.set("status", status);
  if (cursor) params.set("cursor", cursor);
  return useQuery({
    queryKey: accountKeys.deliveries(id, status, cursor),
    queryFn: ({ signal }) => api<Page<Delivery>>(`/api/v1/webhooks/${id}/deliveries?${params}`, { signal }),
    placeholderData: (previous) => previous,
    refetchInterval: 3000,
  });
}

// — Inbox, automation, schedule —

export const inboxKeys = {
  chats: ["chats"] as const,
  chatsOf: (sessionId: string | null) => ["chats", sessionId ?? ""] as const,
  messages: ["messages"] as const,
  thread: (sessionId: string, peer: string) => ["messages", sessionId, peer] as const,
  autoReplies: ["auto-replies"] as const,
  stats: (id: string) => ["auto-replies", id, "stats"] as const,
  schedule: ["schedule"] as const,
};

export const CHATS_PAGE = 50;

/** The chats, the latest first (of one number, or all), with unread
 * counts, a page at a time. */
export function useChats(sessionId: string | null) {
  return useInfiniteQuery({
    queryKey: inboxKeys.chatsOf(sessionId),
    initialPageParam: null as string | null,
    queryFn: ({ signal, pageParam }) =>
      api<Page<Chat>>(
        `/api/v1/chats?limit=${CHATS_PAGE}${sessionId ? `&session_id=${sessionId}` : ""}${
          pageParam ? `&cursor=${encodeURIComponent(pageParam)}` : ""
        }`,
        { signal, after: readAfter("messages") },
      ),
    getNextPageParam: (last) => last.next_cursor,
  });
}

/** The chat of one number with one peer (null until there is one). */
export function useChat(sessionId: string, peer: string) {
  return useQuery({
    queryKey: [...inboxKeys.chatsOf(sessionId), "peer", peer],
    queryFn: ({ signal }) =>
      api<Page<Chat>>(`/api/v1/chats?session_id=${sessionId}&peer=${encodeURIComponent(peer)}`, {
        signal,
        after: readAfter("messages"),
      }).then((page) => page.items[0] ?? null),
  });
}

export const THREAD_PAGE = 50;

/** A conversation's messages, newest first, a page at a time. */
export function useThread(sessionId: string, peer: string) {
  return useInfiniteQuery({
    queryKey: inboxKeys.thread(sessionId, peer),
    initialPageParam: null as string | null,
    queryFn: ({ signal, pageParam }) =>
      api<Page<MessageRecord>>(
        `/api/v1/messages?session_id=${sessionId}&peer=${encodeURIComponent(peer)}&limit=${THREAD_PAGE}${
          pageParam ? `&cursor=${encodeURIComponent(pageParam)}` : ""
        }`,
        { signal, after: readAfter("messages") },
      ),
    getNextPageParam: (last) => last.next_cursor,
  });
}

/** The tenant's auto-reply rules, oldest first. */
export function useAutoReplies() {
  return useQuery({
    queryKey: inboxKeys.autoReplies,
    queryFn: ({ signal }) => api<Page<AutoReply>>("/api/v1/auto-replies?limit=500", { signal }),
  });
}

/** What a rule decided: answers and silences. */
export function useAutoReplyStats(id: string) {
  return useQuery({
    queryKey: inboxKeys.stats(id),
    queryFn: ({ signal }) => api<AutoReplyStats>(`/api/v1/auto-replies/${id}/stats`, { signal, after: readAfter("messages") }),
  });
}

/** The tenant's active hours. */
export function useSchedule() {
  return useQuery({
    queryKey: inboxKeys.schedule,
    queryFn: ({ signal }) => api<ScheduleView>("/api/v1/schedule", { signal, after: readAfter() }),
  });
}
