import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { api } from "../api/client";
import { inboxKeys, useChat, useChats, useSessions, useThread } from "../api/queries";
import type { Chat, MessageRecord, QueuedMessage, Session } from "../api/types";
import { Layout } from "../components/Layout";
import { SelectField } from "../components/Select";
import { Alert, EmptyState, Spinner, StatusBadge } from "../components/ui";
import { errorText, useFormat, useI18n, type MessageKey } from "../i18n";
import { kindOf, refusalOf, threadOf, ticksOf, timeOf } from "../lib/inbox";

/** `/inbox` (the chats) and `/inbox/:session/:peer` (a conversation too). */
export function Inbox({ params }: { params?: { session?: string; peer?: string } }) {
  const { t } = useI18n();
  const search = useSearch();
  const [, navigate] = useLocation();
  const number = new URLSearchParams(search).get("number");
  const { sessions } = useSessions();
  const chats = useChats(number);
  const items = chats.data?.pages.flatMap((page) => page.items);
  const open = params?.session && params.peer ? { session: params.session, peer: decode(params.peer) } : null;
  const query = number ? `?number=${number}` : "";
  const byId = new Map(sessions?.map((s) => [s.id, s]));

  return (
    <Layout title={t("inbox.title")}>
      <div className="grid gap-4 md:grid-cols-[minmax(16rem,22rem)_1fr]">
        <section aria-label={t("inbox.chats")} className={`space-y-3 ${open ? "hidden md:block" : ""}`}>
          {sessions && sessions.length > 1 ? (
            <SelectField
              label={t("inbox.number")}
              value={number ?? ""}
              onChange={(e) => navigate(`/inbox${e.target.value ? `?number=${e.target.value}` : ""}`)}
            >
              <option value="">{t("inbox.allNumbers")}</option>
              {sessions.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.phone_number ? `${s.name} (${s.phone_number})` : s.name}
                </option>
              ))}
            </SelectField>
          ) : null}
          {chats.error ? <Alert>{errorText(t, chats.error)}</Alert> : null}
          {chats.isPending ? <Spinner label={t("common.loading")} /> : null}
          {items && items.length === 0 ? (
            <EmptyState title={t("inbox.empty")}>
              <p>{sessions && sessions.length === 0 ? t("inbox.emptyNoNumber") : t("inbox.emptyHint")}</p>
              {sessions && sessions.length === 0 ? (
                <Link href="/numbers" className="btn-primary mt-4">
                  {t("numbers.add")}
                </Link>
              ) : null}
            </EmptyState>
          ) : null}
          {items && items.length > 0 ? (
            <ul className="divide-y divide-slate-200 overflow-hidden rounded-lg border border-slate-200 bg-white" data-testid="chat-list">
              {items.map((chat) => (
                <ChatRow
                  key={chat.id}
                  chat={chat}
                  session={byId.get(chat.session_id)}
                  showNumber={!number && (sessions?.length ?? 0) > 1}
                  current={open?.session === chat.session_id && open.peer === chat.peer}
                  href={`/inbox/${chat.session_id}/${encodeURIComponent(chat.peer)}${query}`}
                />
              ))}
            </ul>
          ) : null}
          {chats.hasNextPage ? (
            <button type="button" className="btn-secondary w-full" disabled={chats.isFetchingNextPage} onClick={() => chats.fetchNextPage()}>
              {t("inbox.moreChats")}
            </button>
          ) : null}
        </section>
        {open ? (
          <Thread
            key={`${open.session}/${open.peer}`}
            sessionId={open.session}
            peer={open.peer}
            session={byId.get(open.session)}
            back={`/inbox${query}`}
          />
        ) : (
          <div className="hidden items-center justify-center rounded-lg border-2 border-dashed border-slate-300 p-8 text-sm text-slate-700 md:flex">
            {t("inbox.pick")}
          </div>
        )}
      </div>
    </Layout>
  );
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function ChatRow({
  chat,
  session,
  showNumber,
  current,
  href,
}: {
  chat: Chat;
  session: Session | undefined;
  showNumber: boolean;
  current: boolean;
  href: string;
}) {
  const { t } = useI18n();
  const format = useFormat();
  const preview = chat.last_message ?? t("inbox.attachment");
  return (
    <li data-testid="chat-row" data-peer={chat.peer} data-session-id={chat.session_id} data-unread={chat.unread}>
      <Link
        href={href}
        aria-current={current ? "true" : undefined}
        className={`flex items-start gap-3 px-3 py-3 hover:bg-slate-50 ${current ? "bg-emerald-50" : ""}`}
      >
        <span aria-hidden="true" className="mt-0.5 flex h-9 w-9 shrink-0 items-center justify-center rounded-full bg-slate-200 text-slate-600">
          <svg viewBox="0 0 24 24" className="h-5 w-5" fill="currentColor">
            <path d="M12 12a4.5 4.5 0 1 0 0-9 4.5 4.5 0 0 0 0 9Zm0 2c-4.4 0-8 2.2-8 5v2h16v-2c0-2.8-3.6-5-8-5Z" />
          </svg>
        </span>
        <span className="min-w-0 flex-1">
          <span className="flex items-baseline justify-between gap-2">
            <span className={`truncate ${chat.unread > 0 ? "font-bold" : "font-medium"}`}>{chat.peer}</span>
            <span className="shrink-0 text-xs text-slate-600">{format.date(chat.last_at)}</span>
          </span>
          {showNumber && session ? <span className="block truncate text-xs text-slate-600">{session.name}</span> : null}
          <span className="flex items-center justify-between gap-2">
            <span className={`truncate text-sm ${chat.unread > 0 ? "text-slate-900" : "text-slate-700"}`}>
              {chat.last_direction === "out" ? `${t("inbox.you")}: ` : ""}
              {preview}
            </span>
            {chat.unread > 0 ? (
              <span
                data-testid="unread"
                className="shrink-0 rounded-full bg-emerald-700 px-2 py-0.5 text-xs font-bold text-white"
                aria-label={t("inbox.unread", { count: chat.unread })}
              >
                {chat.unread}
              </span>
            ) : null}
          </span>
        </span>
      </Link>
    </li>
  );
}

function Thread({ sessionId, peer, session, back }: { sessionId: string; peer: string; session?: Session; back: string }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const thread = useThread(sessionId, peer);
  const chat = useChat(sessionId, peer).data;
  const messages = thread.data ? threadOf(thread.data.pages) : [];
  const end = useRef<HTMLLIElement>(null);
  const last = messages[messages.length - 1];

  // Read as long as it is open: what arrives while it is is read too.
  const reading = useRef(false);
  useEffect(() => {
    if (!chat || chat.unread === 0 || reading.current) return;
    reading.current = true;
    api<void>(`/api/v1/chats/${chat.id}/read`, { method: "POST" })
      .then(() => client.invalidateQueries({ queryKey: inboxKeys.chats }))
      .catch(() => {})
      .finally(() => {
        reading.current = false;
      });
  }, [chat, client]);

  // The newest message in view when it arrives.
  useEffect(() => {
    end.current?.scrollIntoView({ block: "nearest" });
  }, [last?.id, last?.status]);

  return (
    <section
      aria-labelledby="thread-title"
      className="flex min-h-[28rem] flex-col rounded-lg border border-slate-200 bg-white"
      data-testid="thread"
      data-peer={peer}
    >
      <header className="flex flex-wrap items-center gap-3 border-b border-slate-200 px-4 py-3">
        <Link href={back} className="basis-full text-sm font-medium text-emerald-800 underline md:hidden">
          {t("inbox.back")}
        </Link>
        <div className="min-w-0 flex-1">
          <h2 id="thread-title" className="truncate font-semibold">
            {peer}
          </h2>
          {session ? (
            <p className="truncate text-xs text-slate-600">
              {t("inbox.via", { name: session.phone_number ? `${session.name} (${session.phone_number})` : session.name })}
            </p>
          ) : null}
        </div>
        {session ? <StatusBadge status={session.status} /> : null}
      </header>
      <div className="flex-1 space-y-2 overflow-y-auto bg-slate-50 px-3 py-3 md:max-h-[60vh]">
        {thread.hasNextPage ? (
          <div className="text-center">
            <button type="button" className="btn-secondary text-xs" disabled={thread.isFetchingNextPage} onClick={() => thread.fetchNextPage()}>
              {t("inbox.older")}
            </button>
          </div>
        ) : null}
        {thread.error ? <Alert>{errorText(t, thread.error)}</Alert> : null}
        {thread.isPending ? <Spinner label={t("common.loading")} /> : null}
        <ol aria-label={t("inbox.messages")} className="space-y-2">
          {messages.map((message) => (
            <Bubble key={message.id} message={message} />
          ))}
          <li ref={end} aria-hidden="true" />
        </ol>
      </div>
      <Reply sessionId={sessionId} peer={peer} session={session} />
    </section>
  );
}

const STATUS_KEYS: Record<string, MessageKey> = {
  queued: "inbox.status.queued",
  sending: "inbox.status.sending",
  sent: "inbox.status.sent",
  delivered: "inbox.status.delivered",
  read: "inbox.status.read",
  failed: "inbox.status.failed",
  cancelled: "inbox.status.cancelled",
  unknown: "inbox.status.unknown",
};

function Bubble({ message }: { message: MessageRecord }) {
  const { t } = useI18n();
  const format = useFormat();
  const out = message.direction === "out";
  const kind = kindOf(message);
  const at = timeOf(message);
  const ticks = out ? ticksOf(message.status) : 0;
  return (
    <li
      className={`flex ${out ? "justify-end" : "justify-start"}`}
      data-testid="bubble"
      data-direction={message.direction}
      data-status={message.status}
      data-message-id={message.id}
    >
      <div
        className={`max-w-[85%] rounded-lg px-3 py-2 text-sm shadow-sm ${
          out ? "rounded-br-none bg-emerald-100 text-slate-900" : "rounded-bl-none bg-white text-slate-900"
        }`}
      >
        <span className="sr-only">{out ? t("inbox.sentByYou") : t("inbox.receivedFrom")}</span>
        {kind ? (
          <p className="mb-1 inline-block rounded bg-slate-100 px-1.5 py-0.5 text-xs font-semibold text-slate-700" data-kind={kind}>
            {t(`inbox.kind.${kind}` as MessageKey)}
          </p>
        ) : null}
        {message.text ? <p className="whitespace-pre-wrap break-words">{message.text}</p> : null}
        {!message.text && !kind ? <p className="italic text-slate-600">{t("inbox.noText")}</p> : null}
        {message.campaign_id ? <p className="mt-1 text-xs text-slate-600">{t("inbox.fromCampaign")}</p> : null}
        <p className="mt-1 flex items-center justify-end gap-1 text-xs text-slate-600">
          {at ? <time dateTime={at}>{format.date(at)}</time> : null}
          {out ? (
            <span data-testid="message-status" className={ticks === 3 ? "text-sky-700" : ticks < 0 ? "text-red-700" : ""}>
              <span aria-hidden="true">{ticks < 0 ? " ✗" : ticks === 0 ? " ◷" : ticks === 1 ? " ✓" : " ✓✓"} </span>
              {t(STATUS_KEYS[message.status] ?? "inbox.status.unknown")}
            </span>
          ) : null}
        </p>
        {out && message.error ? <p className="mt-1 text-xs text-red-700">{message.error}</p> : null}
      </div>
    </li>
  );
}

function Reply({ sessionId, peer, session }: { sessionId: string; peer: string; session?: Session }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const id = useId();
  const [text, setText] = useState("");
  // One key per message written: a retry after a lost answer sends it once.
  const [key, setKey] = useState(() => crypto.randomUUID());
  const send = useMutation({
    mutationFn: (body: string) =>
      api<QueuedMessage>("/api/v1/messages", {
        method: "POST",
        idempotencyKey: key,
        // A reply is now or not at all: outside active hours it is refused
        // (with when they open) rather than left waiting for them.
        body: { session_id: sessionId, to: peer, text: body, outside_active_hours: "refuse" },
      }),
    onSuccess: () => {
      setText("");
      setKey(crypto.randomUUID());
      void client.invalidateQueries({ queryKey: inboxKeys.thread(sessionId, peer) });
      void client.invalidateQueries({ queryKey: inboxKeys.chats });
    },
  });
  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (text.trim() === "" || send.isPending) return;
    send.mutate(text);
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };
  const refusal = refusalOf(send.error);
  const refused = refusal
    ? t(`inbox.refused.${refusal.reason}` as MessageKey, {
        at: refusal.at ? format.date(refusal.at) : "—",
        status: refusal.status ? t(`status.${refusal.status}` as MessageKey) : "—",
      })
    : send.error
      ? errorText(t, send.error)
      : null;
  const notReady = session && session.status !== "ready";
  return (
    <form onSubmit={submit} className="space-y-2 border-t border-slate-200 p-3">
      {notReady ? (
        <p className="rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900">
          {t("inbox.notReady", { status: t(`status.${session.status}` as MessageKey) })}
        </p>
      ) : null}
      <Alert>{refused}</Alert>
      <label htmlFor={id} className="sr-only">
        {t("inbox.reply")}
      </label>
      <div className="flex items-end gap-2">
        <textarea
          id={id}
          className="input min-h-[2.75rem] resize-y"
          rows={2}
          maxLength={4096}
          placeholder={t("inbox.replyPlaceholder")}
          value={text}
          onChange={(e) => {
            setText(e.target.value);
            if (send.error) send.reset();
          }}
          onKeyDown={onKeyDown}
        />
        <button type="submit" className="btn-primary" disabled={send.isPending || text.trim() === ""}>
          {send.isPending ? t("common.wait") : t("inbox.send")}
        </button>
      </div>
      <p className="text-xs text-slate-600">{t("inbox.replyHint")}</p>
    </form>
  );
}
