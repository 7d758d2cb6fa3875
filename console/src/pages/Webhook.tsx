// One webhook subscription: its state (why it is off, since when its
// receiver fails), a test ping with the receiver's answer, its deliveries
// by status, replays, enabling it again, and changing or deleting it.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useState, type FormEvent } from "react";
import { Link, useLocation } from "wouter";
import { ApiError, api } from "../api/client";
import { accountKeys, useDeliveries, useWebhook } from "../api/queries";
import type { Delivery, DeliveryStatus, PingResult, Replayed, Webhook as Subscription } from "../api/types";
import { Layout } from "../components/Layout";
import { Pager, useCursorPages } from "../components/Pager";
import { Alert, ConfirmActions, Dialog, EmptyState, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n, type MessageKey } from "../i18n";
import { isAll } from "../lib/eventTypes";
import { FROM_THE_BEGINNING, replayFrom } from "../lib/wallet";
import { WebhookForm, WebhookStatusBadge, type WebhookInput } from "./WebhookForm";

export function Webhook({ params }: { params: { id: string } }) {
  const { t } = useI18n();
  const webhook = useWebhook(params.id);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [from, setFrom] = useState(FROM_THE_BEGINNING);
  const data = webhook.data;
  return (
    <Layout
      title={t("webhook.title")}
      actions={
        data ? (
          <div className="flex flex-wrap gap-2">
            <button type="button" className="btn-secondary" onClick={() => setEditing(true)}>
              {t("webhook.edit")}
            </button>
            <button type="button" className="btn-secondary text-red-800" onClick={() => setDeleting(true)}>
              {t("webhook.delete")}
            </button>
          </div>
        ) : null
      }
    >
      <p className="mb-4 text-sm">
        <Link href="/developers" className="font-medium text-emerald-800 underline">
          {t("webhook.back")}
        </Link>
      </p>
      {webhook.error ? <Alert>{errorText(t, webhook.error)}</Alert> : null}
      {webhook.isPending ? <Spinner label={t("common.loading")} /> : null}
      {data ? (
        <div className="space-y-6">
          <Summary webhook={data} />
          <div className="grid gap-4 lg:grid-cols-2">
            <Ping webhook={data} />
            <Replay webhook={data} from={from} setFrom={setFrom} />
          </div>
          <Deliveries webhook={data} onReplayFrom={setFrom} />
        </div>
      ) : null}
      <Dialog open={editing} title={t("webhook.edit")} onClose={() => setEditing(false)}>
        {data ? <Edit webhook={data} onDone={() => setEditing(false)} /> : null}
      </Dialog>
      <Dialog open={deleting} title={t("webhook.delete.title")} onClose={() => setDeleting(false)}>
        {data ? <Delete webhook={data} onCancel={() => setDeleting(false)} /> : null}
      </Dialog>
    </Layout>
  );
}

function Summary({ webhook }: { webhook: Subscription }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const enable = useMutation({
    mutationFn: () => api<Subscription>(`/api/v1/webhooks/${webhook.id}/enable`, { method: "POST" }),
    onSuccess: (enabled) => {
      client.setQueryData(accountKeys.webhook(webhook.id), enabled);
      void client.invalidateQueries({ queryKey: accountKeys.webhooks });
    },
  });
  const disabled = webhook.status === "disabled";
  return (
    <section className="card space-y-3" aria-label={t("webhook.summary")} data-testid="webhook-summary" data-status={webhook.status}>
      <div className="flex flex-wrap items-start gap-3">
        <p className="min-w-0 flex-1 break-all font-mono text-sm" data-testid="webhook-url">
          {webhook.url}
        </p>
        <WebhookStatusBadge webhook={webhook} />
      </div>
      <dl className="grid gap-3 text-sm sm:grid-cols-2">
        <div>
          <dt className="text-slate-600">{t("webhook.events")}</dt>
          <dd data-testid="webhook-events">
            {isAll(webhook.events) ? (
              t("webhook.events.all")
            ) : (
              <ul className="flex flex-wrap gap-1">
                {webhook.events.map((type) => (
                  <li key={type} className="rounded bg-slate-100 px-1.5 py-0.5 font-mono text-xs">
                    {type}
                  </li>
                ))}
              </ul>
            )}
          </dd>
        </div>
        <div>
          <dt className="text-slate-600">{t("webhook.createdAt")}</dt>
          <dd>{format.date(webhook.created_at)}</dd>
        </div>
      </dl>
      {disabled ? (
        <div className="space-y-2 rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-900" data-testid="webhook-disabled">
          <p className="font-semibold">
            {t("webhook.disabled", { date: webhook.disabled_at ? format.date(webhook.disabled_at) : "—" })}
          </p>
          <p>
            {t(
              (webhook.disabled_reason === "receiver_failing" || webhook.disabled_reason === "secret_unreadable"
                ? `webhook.reason.${webhook.disabled_reason}`
                : "webhook.reason.other") as MessageKey,
              { reason: webhook.disabled_reason ?? "—" },
            )}
          </p>
          {webhook.failing_since ? <p>{t("webhook.failingSince", { date: format.date(webhook.failing_since) })}</p> : null}
          <p>{t("webhook.enableHint")}</p>
          <Alert>{enable.error ? errorText(t, enable.error) : null}</Alert>
          <button type="button" className="btn-primary" disabled={enable.isPending} onClick={() => enable.mutate()}>
            {t("webhook.enable")}
          </button>
        </div>
      ) : webhook.failing_since ? (
        <p className="rounded-md border border-amber-300 bg-amber-50 p-3 text-sm text-amber-900" data-testid="webhook-failing">
          {t("webhook.failingWarning", { date: format.date(webhook.failing_since) })}
        </p>
      ) : null}
    </section>
  );
}

/** A signed `WebhookTest` sent now, and what the receiver said. */
function Ping({ webhook }: { webhook: Subscription }) {
  const { t } = useI18n();
  const format = useFormat();
  const titleId = useId();
  const ping = useMutation({
    mutationFn: () => api<PingResult>(`/api/v1/webhooks/${webhook.id}/test`, { method: "POST" }),
  });
  const result = ping.data;
  // An answer from another receiver is not this one's.
  const { reset } = ping;
  useEffect(() => reset(), [webhook.url, reset]);
  return (
    <section className="card space-y-3" aria-labelledby={titleId}>
      <div>
        <h2 id={titleId} className="font-semibold">
          {t("webhook.ping")}
        </h2>
        <p className="text-sm text-slate-700">{t("webhook.pingHint")}</p>
      </div>
      <button type="button" className="btn-secondary" disabled={ping.isPending} onClick={() => ping.mutate()}>
        {ping.isPending ? t("common.wait") : t("webhook.pingSend")}
      </button>
      <Alert>{ping.error ? errorText(t, ping.error) : null}</Alert>
      <div role="status" data-testid="ping-result" data-delivered={result ? String(result.delivered) : undefined}>
        {result ? (
          <div
            className={`space-y-1 rounded-md border p-3 text-sm ${
              result.delivered ? "border-emerald-200 bg-emerald-50 text-emerald-950" : "border-red-200 bg-red-50 text-red-900"
            }`}
          >
            <p className="font-semibold">
              {result.delivered
                ? t("webhook.ping.ok", { status: result.status ?? "—", ms: format.number(result.duration_ms) })
                : result.status != null
                  ? t("webhook.ping.refused", { status: result.status, ms: format.number(result.duration_ms) })
                  : t("webhook.ping.noAnswer", { ms: format.number(result.duration_ms) })}
            </p>
            {result.error ? (
              <p>
                {t("webhook.ping.said")} <q className="break-all font-mono">{result.error}</q>
              </p>
            ) : null}
          </div>
        ) : null}
      </div>
    </section>
  );
}

/** Sends the subscription's events again from a position of the log on. */
function Replay({ webhook, from, setFrom }: { webhook: Subscription; from: string; setFrom: (from: string) => void }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const titleId = useId();
  const replay = useMutation({
    mutationFn: (position: string) =>
      api<Replayed>(`/api/v1/webhooks/${webhook.id}/replay`, { method: "POST", body: { from_position: position } }),
    onSuccess: () => client.invalidateQueries({ queryKey: accountKeys.webhook(webhook.id) }),
  });
  const errors = formErrors(t, replay.error, ["from_position"]);
  const refusedWhileOff = replay.error instanceof ApiError && replay.error.code === "invalid_state";
  // Enabled (or disabled) since: the last refusal or count is stale.
  const { reset } = replay;
  useEffect(() => reset(), [webhook.status, reset]);
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    replay.mutate(from.trim());
  };
  const result = replay.data;
  return (
    <section className="card space-y-3" aria-labelledby={titleId}>
      <div>
        <h2 id={titleId} className="font-semibold">
          {t("webhook.replay")}
        </h2>
        <p className="text-sm text-slate-700">{t("webhook.replayHint")}</p>
      </div>
      <form className="space-y-3" onSubmit={onSubmit} noValidate>
        <Field
          label={t("webhook.replayFrom")}
          value={from}
          spellCheck={false}
          className="input font-mono"
          onChange={(e) => setFrom(e.target.value)}
          error={errors.fields.from_position ? t("webhook.replayFromError") : undefined}
          hint={t("webhook.replayFromHint", { start: FROM_THE_BEGINNING })}
        />
        <Alert>{refusedWhileOff ? t("webhook.replayDisabled") : errors.form}</Alert>
        <button type="submit" className="btn-secondary" disabled={replay.isPending}>
          {replay.isPending ? t("common.wait") : t("webhook.replaySend")}
        </button>
      </form>
      <div role="status" className="text-sm" data-testid="replay-result">
        {result ? (
          <div className="space-y-2">
            <p className="font-medium">{t("webhook.replayed", { count: format.number(result.queued) })}</p>
            {result.next_position ? (
              <div className="flex flex-wrap items-center gap-2">
                <span>{t("webhook.replayMore", { position: result.next_position })}</span>
                <button
                  type="button"
                  className="btn-secondary"
                  disabled={replay.isPending}
                  onClick={() => {
                    setFrom(result.next_position!);
                    replay.mutate(result.next_position!);
                  }}
                >
                  {t("webhook.replayContinue")}
                </button>
              </div>
            ) : null}
          </div>
        ) : null}
      </div>
    </section>
  );
}

const FILTERS: (DeliveryStatus | null)[] = [null, "pending", "delivered", "failed"];

const DELIVERY_BADGE: Record<DeliveryStatus, string> = {
  pending: "bg-sky-100 text-sky-900",
  delivered: "bg-emerald-100 text-emerald-900",
  failed: "bg-red-100 text-red-900",
};

function Deliveries({ webhook, onReplayFrom }: { webhook: Subscription; onReplayFrom: (from: string) => void }) {
  const { t } = useI18n();
  const titleId = useId();
  const [status, setStatus] = useState<DeliveryStatus | null>(null);
  const pages = useCursorPages();
  const page = useDeliveries(webhook.id, status, pages.cursor);
  const items = page.data?.items;
  return (
    <section aria-labelledby={titleId} className="space-y-3" data-testid="deliveries">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h2 id={titleId} className="text-lg font-semibold">
            {t("deliveries.title")}
          </h2>
          <p className="text-sm text-slate-700">{t("deliveries.hint")}</p>
        </div>
        <div role="group" aria-label={t("deliveries.filter")} className="flex flex-wrap gap-1">
          {FILTERS.map((filter) => (
            <button
              key={filter ?? "all"}
              type="button"
              aria-pressed={status === filter}
              className={`btn px-3 py-1.5 ${
                status === filter ? "bg-emerald-700 text-white" : "border border-slate-300 bg-white text-slate-800 hover:bg-slate-100"
              }`}
              onClick={() => {
                setStatus(filter);
                pages.first();
              }}
            >
              {t(`deliveries.filter.${filter ?? "all"}` as MessageKey)}
            </button>
          ))}
        </div>
      </div>
      {page.error ? <Alert>{errorText(t, page.error)}</Alert> : null}
      {page.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 && pages.number === 1 ? (
        <EmptyState title={t(`deliveries.none.${status ?? "all"}` as MessageKey)}>{t("deliveries.noneHint")}</EmptyState>
      ) : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm" data-testid="deliveries-table">
            <caption className="sr-only">{t("deliveries.title")}</caption>
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("deliveries.col.event")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("deliveries.col.status")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("deliveries.col.answer")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("deliveries.col.when")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  <span className="sr-only">{t("deliveries.col.actions")}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((delivery) => (
                <DeliveryRow key={delivery.id} delivery={delivery} onReplayFrom={onReplayFrom} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager pages={pages} nextCursor={page.data?.next_cursor} loading={page.isPlaceholderData} label={t("deliveries.pages")} />
    </section>
  );
}

function DeliveryRow({ delivery, onReplayFrom }: { delivery: Delivery; onReplayFrom: (from: string) => void }) {
  const { t } = useI18n();
  const format = useFormat();
  const from = delivery.status === "failed" ? replayFrom(delivery.event_id) : null;
  return (
    <tr
      className="border-t border-slate-200 align-top"
      data-testid="delivery"
      data-event-type={delivery.event_type}
      data-status={delivery.status}
      data-replayed={String(delivery.replayed)}
    >
      <td className="px-3 py-2">
        <span className="font-mono text-xs font-semibold">{delivery.event_type}</span>
        <span className="block font-mono text-xs text-slate-600">{delivery.event_id}</span>
      </td>
      <td className="px-3 py-2">
        <span className={`inline-flex rounded-full px-2.5 py-0.5 text-xs font-semibold ${DELIVERY_BADGE[delivery.status]}`}>
          {t(`deliveries.status.${delivery.status}` as MessageKey)}
        </span>
        <span className="mt-1 block text-xs text-slate-600">
          {t("deliveries.attempts", { count: delivery.attempts })}
          {delivery.replayed ? ` · ${t("deliveries.replayed")}` : ""}
        </span>
      </td>
      <td className="max-w-xs px-3 py-2">
        {delivery.last_status != null ? <span className="font-mono text-xs font-semibold">HTTP {delivery.last_status}</span> : null}
        {delivery.last_error ? <span className="block break-all text-xs text-slate-700">{delivery.last_error}</span> : null}
        {delivery.last_status == null && !delivery.last_error ? <span className="text-xs text-slate-600">—</span> : null}
      </td>
      <td className="whitespace-nowrap px-3 py-2 text-xs">
        {delivery.delivered_at
          ? t("deliveries.deliveredAt", { date: format.date(delivery.delivered_at) })
          : delivery.next_attempt_at
            ? t("deliveries.nextAt", { date: format.date(delivery.next_attempt_at) })
            : delivery.last_attempt_at
              ? t("deliveries.lastAt", { date: format.date(delivery.last_attempt_at) })
              : t("deliveries.queuedAt", { date: format.date(delivery.created_at) })}
      </td>
      <td className="px-3 py-2 text-right">
        {from ? (
          <button
            type="button"
            className="btn-secondary whitespace-nowrap px-2 py-1 text-xs"
            onClick={() => onReplayFrom(from)}
            aria-label={t("deliveries.replayFromOne", { id: delivery.event_id })}
          >
            {t("deliveries.replayFromHere")}
          </button>
        ) : null}
      </td>
    </tr>
  );
}

function Edit({ webhook, onDone }: { webhook: Subscription; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const save = useMutation({
    mutationFn: (input: WebhookInput) =>
      api<Subscription>(`/api/v1/webhooks/${webhook.id}`, {
        method: "PATCH",
        body: { url: input.url, events: input.events, ...(input.secret ? { secret: input.secret } : {}) },
      }),
    onSuccess: (changed) => {
      client.setQueryData(accountKeys.webhook(webhook.id), changed);
      void client.invalidateQueries({ queryKey: accountKeys.webhooks, exact: true });
      onDone();
    },
  });
  return (
    <WebhookForm initial={webhook} submit={(input) => save.mutate(input)} pending={save.isPending} error={save.error}>
      <button type="button" className="btn-secondary" onClick={onDone}>
        {t("common.cancel")}
      </button>
    </WebhookForm>
  );
}

function Delete({ webhook, onCancel }: { webhook: Subscription; onCancel: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const remove = useMutation({
    mutationFn: () => api<void>(`/api/v1/webhooks/${webhook.id}`, { method: "DELETE" }),
    onSuccess: async () => {
      // Away first: this page's queries would ask for it again (a 404).
      navigate("/developers");
      client.removeQueries({ queryKey: accountKeys.webhook(webhook.id) });
      await client.invalidateQueries({ queryKey: accountKeys.webhooks, exact: true });
    },
  });
  return (
    <div className="space-y-4">
      <p className="break-all">{t("webhook.delete.body", { url: webhook.url })}</p>
      <ConfirmActions
        error={remove.error}
        pending={remove.isPending}
        confirm={t("webhook.delete.confirm")}
        onConfirm={() => remove.mutate()}
        onCancel={onCancel}
      />
    </div>
  );
}
