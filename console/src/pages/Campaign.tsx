// One campaign: a live board of its counts and a chart of its sends over
// time, why it waits when it waits, pause / resume / cancel, its messages
// with their rendered text, and the CSV export.

import { Pager, useCursorPages } from "../components/Pager";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useState, type ReactNode } from "react";
import { Link } from "wouter";
import { campaignKeys, useCampaign, useCampaignMessages, useTimelineSeed } from "../api/campaigns";
import { api } from "../api/client";
import { useContactLists, useSessions } from "../api/queries";
import type { Campaign as CampaignView, CampaignStatus, MessageStatus } from "../api/types";
import { CampaignBar, CampaignStatusBadge, MessageStatusBadge, campaignWaitText } from "../components/Campaign";
import { Layout } from "../components/Layout";
import { MediaThumb } from "../components/MediaThumb";
import { ProgressChart } from "../components/ProgressChart";
import { SelectField } from "../components/Select";
import { Alert, ConfirmActions, Dialog, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n, type MessageKey } from "../i18n";
import { FINISHED, pointsFor, seriesOf, useTimeline, watchCampaign } from "../lib/campaigns";
import { download } from "../lib/download";
import { localInputValue } from "../lib/time";

type Action = "start" | "pause" | "resume" | "cancel" | "schedule";

/** What a person may do to a campaign in each status. */
const ACTIONS: Record<CampaignStatus, Action[]> = {
  draft: ["start", "schedule", "cancel"],
  scheduled: ["start", "schedule", "cancel"],
  running: ["pause", "cancel"],
  paused: ["resume", "cancel"],
  completed: [],
  cancelled: [],
};

export function Campaign({ params }: { params: { id: string } }) {
  const { t } = useI18n();
  const client = useQueryClient();
  // Watched before anything is read: the stream's news is kept from now on.
  useEffect(() => watchCampaign(params.id), [params.id]);
  const campaign = useCampaign(params.id);
  const [confirm, setConfirm] = useState(false);
  const [scheduling, setScheduling] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);

  const act = useMutation({
    mutationFn: (action: Exclude<Action, "schedule">) =>
      api<{ id: string; status: CampaignStatus }>(`/api/v1/campaigns/${params.id}/${action}`, { method: "POST" }),
    onSuccess: (changed) => {
      client.setQueryData<CampaignView>(campaignKeys.one(params.id), (before) =>
        before ? { ...before, status: changed.status } : before,
      );
      setConfirm(false);
    },
    onSettled: () => client.invalidateQueries({ queryKey: campaignKeys.all }),
  });
  const exporting = useMutation({
    mutationFn: () => download(`/api/v1/campaigns/${params.id}/export`, `campaign-${params.id}.csv`),
    onSuccess: (name) => setNotice(t("campaign.exported", { name })),
  });

  const data = campaign.data;
  const actions = data ? ACTIONS[data.status] : [];
  return (
    <Layout
      title={data?.name ?? t("campaign.title")}
      actions={
        data ? (
          <div className="flex flex-wrap items-center gap-2" role="group" aria-label={t("campaign.actions")}>
            <CampaignStatusBadge status={data.status} />
            {actions.includes("start") ? (
              <button type="button" className="btn-primary" disabled={act.isPending} onClick={() => act.mutate("start")}>
                {t("campaign.start")}
              </button>
            ) : null}
            {actions.includes("schedule") ? (
              <button type="button" className="btn-secondary" onClick={() => setScheduling(true)}>
                {data.status === "scheduled" ? t("campaign.reschedule") : t("campaign.schedule")}
              </button>
            ) : null}
            {actions.includes("pause") ? (
              <button type="button" className="btn-secondary" disabled={act.isPending} onClick={() => act.mutate("pause")}>
                {t("campaign.pause")}
              </button>
            ) : null}
            {actions.includes("resume") ? (
              <button type="button" className="btn-primary" disabled={act.isPending} onClick={() => act.mutate("resume")}>
                {t("campaign.resume")}
              </button>
            ) : null}
            {actions.includes("cancel") ? (
              <button type="button" className="btn-secondary text-red-800" onClick={() => setConfirm(true)}>
                {t("campaign.cancel")}
              </button>
            ) : null}
            {data.started_at ? (
              <button type="button" className="btn-secondary" disabled={exporting.isPending} onClick={() => exporting.mutate()}>
                {exporting.isPending ? t("common.wait") : t("campaign.export")}
              </button>
            ) : null}
          </div>
        ) : null
      }
    >
      <p className="mb-4 text-sm">
        <Link href="/campaigns" className="font-medium text-emerald-800 underline">
          {t("campaign.back")}
        </Link>
      </p>
      {campaign.error ? <Alert>{errorText(t, campaign.error)}</Alert> : null}
      {campaign.isPending ? <Spinner label={t("common.loading")} /> : null}
      {data ? (
        <div className="space-y-6">
          <Alert>{act.error && !confirm ? errorText(t, act.error) : exporting.error ? errorText(t, exporting.error) : null}</Alert>
          {notice ? (
            <p role="status" className="text-sm text-emerald-800">
              {notice}
            </p>
          ) : null}
          <WaitNotice campaign={data} />
          <Board campaign={data} />
          <Chart campaign={data} />
          <Details campaign={data} />
          {data.started_at ? <Messages campaign={data} /> : null}
        </div>
      ) : null}
      <Dialog open={confirm} title={t("campaign.cancel.title")} onClose={() => setConfirm(false)}>
        <div className="space-y-4">
          <p>{t("campaign.cancel.body")}</p>
          <ConfirmActions
            error={act.error}
            pending={act.isPending}
            confirm={t("campaign.cancel.confirm")}
            onConfirm={() => act.mutate("cancel")}
            cancel={t("campaign.cancel.keep")}
            onCancel={() => setConfirm(false)}
          />
        </div>
      </Dialog>
      <Dialog open={scheduling} title={t("campaign.schedule.title")} onClose={() => setScheduling(false)}>
        {scheduling && data ? <Schedule campaign={data} onDone={() => setScheduling(false)} /> : null}
      </Dialog>
    </Layout>
  );
}

/** Starts a draft or scheduled campaign by itself at a time of the person's choosing. */
function Schedule({ campaign, onDone }: { campaign: CampaignView; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [at, setAt] = useState(() => localInputValue(campaign.scheduled_at ? Date.parse(campaign.scheduled_at) : Date.now() + 3_600_000));
  const [problem, setProblem] = useState<string | undefined>();
  const schedule = useMutation({
    mutationFn: (when: string) =>
      api<{ id: string; status: CampaignStatus }>(`/api/v1/campaigns/${campaign.id}/schedule`, {
        method: "POST",
        body: { scheduled_at: when },
      }),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: campaignKeys.all });
      onDone();
    },
  });
  const errors = formErrors(t, schedule.error, ["scheduled_at"]);
  return (
    <form
      className="space-y-4"
      noValidate
      onSubmit={(event) => {
        event.preventDefault();
        const when = Date.parse(at);
        if (Number.isNaN(when) || when <= Date.now()) {
          setProblem(t("wizard.schedule.future"));
          return;
        }
        setProblem(undefined);
        schedule.mutate(new Date(when).toISOString());
      }}
    >
      <Field
        label={t("wizard.schedule.at")}
        type="datetime-local"
        value={at}
        onChange={(e) => {
          setAt(e.target.value);
          setProblem(undefined);
        }}
        error={problem ?? errors.fields.scheduled_at}
      />
      <p className="text-sm text-slate-700">{t("wizard.review.atStart")}</p>
      <Alert>{errors.form}</Alert>
      <div className="flex gap-2">
        <button type="submit" className="btn-primary" disabled={schedule.isPending}>
          {t("campaign.schedule.confirm")}
        </button>
        <button type="button" className="btn-secondary" onClick={onDone}>
          {t("common.cancel")}
        </button>
      </div>
    </form>
  );
}

function WaitNotice({ campaign }: { campaign: CampaignView }) {
  const { t } = useI18n();
  const format = useFormat();
  const text = campaignWaitText(t, format.date, campaign);
  if (!text) return null;
  const refused = campaign.status === "draft";
  return (
    <div
      role="status"
      data-testid="campaign-waiting"
      data-reason={campaign.waiting?.reason ?? campaign.pause_reason?.kind ?? campaign.start_refusal?.code ?? campaign.status}
      className={`rounded-md border px-3 py-2 text-sm ${refused ? "border-red-200 bg-red-50 text-red-900" : "border-amber-200 bg-amber-50 text-amber-950"}`}
    >
      {text}
    </div>
  );
}

function Count({ name, label, value, hint }: { name: string; label: string; value: number; hint?: string }) {
  const format = useFormat();
  return (
    <div className="card" data-testid={`count-${name}`} data-value={value}>
      <dt className="text-sm text-slate-600">{label}</dt>
      <dd className="text-2xl font-bold tabular-nums">{format.number(value)}</dd>
      {hint ? <dd className="text-xs text-slate-600">{hint}</dd> : null}
    </div>
  );
}

/** The counts: what went out is counted once, however far it got since. */
function Board({ campaign }: { campaign: CampaignView }) {
  const { t } = useI18n();
  const format = useFormat();
  const { counts } = campaign;
  const titleId = useId();
  const lists = useContactLists();
  if (campaign.started_at === null) {
    // Its recipients are counted when it starts; until then, the list's contacts.
    const list = lists.data?.items.find((l) => l.id === campaign.contact_list_id);
    return (
      <section aria-labelledby={titleId} className="card space-y-1" data-testid="campaign-not-started">
        <h2 id={titleId} className="font-semibold">
          {t("campaign.board")}
        </h2>
        <p className="text-sm text-slate-800">
          {campaign.status === "cancelled"
            ? t("campaign.neverStarted")
            : list
              ? t("campaign.toStart", {
                  contacts: format.number(list.accepted),
                  points: format.number(pointsFor(list.accepted)),
                })
              : t("campaign.notStarted")}
        </p>
      </section>
    );
  }
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("campaign.board")}
      </h2>
      <CampaignBar counts={counts} label={t("campaign.progressOf", { name: campaign.name })} />
      <dl className="grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-6">
        <Count name="total" label={t("campaign.count.total")} value={counts.total} />
        <Count name="waiting" label={t("campaign.count.waiting")} value={counts.queued + counts.sending} />
        <Count name="sent" label={t("campaign.count.sent")} value={counts.sent + counts.delivered + counts.read} />
        <Count name="delivered" label={t("campaign.count.delivered")} value={counts.delivered + counts.read} />
        <Count name="read" label={t("campaign.count.read")} value={counts.read} />
        <Count
          name="failed"
          label={t("campaign.count.failed")}
          value={counts.failed}
          hint={
            counts.cancelled + counts.unknown > 0
              ? t("campaign.count.notSent", { cancelled: counts.cancelled, unknown: counts.unknown })
              : undefined
          }
        />
      </dl>
      <p className="text-sm text-slate-800" data-testid="campaign-points">
        {t("campaign.points", {
          reserved: format.number(campaign.points_reserved),
          spent: format.number(campaign.points_spent),
        })}
      </p>
    </section>
  );
}

function Chart({ campaign }: { campaign: CampaignView }) {
  const { t } = useI18n();
  const titleId = useId();
  const seed = useTimelineSeed(campaign.id);
  const timeline = useTimeline(campaign.id);
  // The axis runs to now while it sends; a running chart moves with the news.
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => setNow(Date.now()), [timeline, campaign.updated_at]);
  // While it runs, the axis reaches now even when nothing is sent (a redraw, no request).
  useEffect(() => {
    if (campaign.status !== "running") return;
    const timer = setInterval(() => setNow(Date.now()), 5_000);
    return () => clearInterval(timer);
  }, [campaign.status]);
  if (!campaign.started_at) return null;
  const series = seriesOf(timeline);
  const from = Date.parse(campaign.started_at);
  const last = Math.max(from, ...[series.sent, series.delivered, series.read].map((s) => s.at(-1)?.at ?? from));
  const finished = FINISHED.includes(campaign.status);
  const to = finished ? Math.max(last, campaign.finished_at ? Date.parse(campaign.finished_at) : last) : Math.max(last, now);
  return (
    <section aria-labelledby={titleId} className="card space-y-2">
      <h2 id={titleId} className="font-semibold">
        {t("campaign.chart.title")}
      </h2>
      {seed.error ? <Alert>{errorText(t, seed.error)}</Alert> : null}
      <ProgressChart series={series} total={campaign.counts.total} from={from} to={to} />
      {seed.partial ? <p className="text-xs text-slate-600">{t("campaign.chart.partial")}</p> : null}
    </section>
  );
}

function Details({ campaign }: { campaign: CampaignView }) {
  const { t } = useI18n();
  const format = useFormat();
  const { sessions } = useSessions();
  const lists = useContactLists();
  const list = lists.data?.items.find((l) => l.id === campaign.contact_list_id);
  const titleId = useId();
  const row = (label: string, value: ReactNode) => (
    <div className="grid gap-1 py-2 sm:grid-cols-[12rem_1fr]">
      <dt className="text-sm text-slate-600">{label}</dt>
      <dd className="text-sm">{value}</dd>
    </div>
  );
  const seconds = (ms: number) => format.number(ms / 1000);
  return (
    <section aria-labelledby={titleId} className="card">
      <h2 id={titleId} className="font-semibold">
        {t("campaign.details")}
      </h2>
      <dl className="divide-y divide-slate-100">
        {row(t("campaign.message"), <p className="whitespace-pre-wrap break-words font-mono text-[13px]">{campaign.template}</p>)}
        {campaign.whatsapp_template
          ? row(
              t("wizard.review.template"),
              <p className="font-mono text-[13px]">
                {campaign.whatsapp_template.name} · {campaign.whatsapp_template.language}
                {campaign.whatsapp_template.header?.type === "text" ? ` · (${campaign.whatsapp_template.header.parameters.join(" | ")})` : ""}
                {campaign.whatsapp_template.parameters.length > 0 ? ` · ${campaign.whatsapp_template.parameters.join(" | ")}` : ""}
              </p>,
            )
          : null}
        {campaign.whatsapp_template?.header?.type === "media"
          ? row(
              t("wizard.template.headerMedia"),
              <MediaThumb id={campaign.whatsapp_template.header.media_id} />,
            )
          : null}
        {campaign.media_id ? row(t("campaign.media"), <MediaThumb id={campaign.media_id} />) : null}
        {row(
          t("campaign.list"),
          list ? (
            <Link href={`/contacts/${list.id}`} className="text-emerald-800 underline">
              {list.name}
            </Link>
          ) : (
            "—"
          ),
        )}
        {row(
          t("campaign.senders"),
          campaign.sender_session_ids
            .map((id) => {
              const s = sessions?.find((session) => session.id === id);
              return s ? `${s.name}${s.phone_number ? ` (${s.phone_number})` : ""}` : id;
            })
            .join(", ") || "—",
        )}
        {row(
          t("campaign.throttle"),
          t("campaign.throttleValue", { min: seconds(campaign.throttle.min_delay_ms), max: seconds(campaign.throttle.max_delay_ms) }),
        )}
        {campaign.scheduled_at ? row(t("campaign.scheduledAt"), format.date(campaign.scheduled_at)) : null}
        {row(t("campaign.createdAt"), format.date(campaign.created_at))}
        {campaign.started_at ? row(t("campaign.startedAt"), format.date(campaign.started_at)) : null}
        {campaign.finished_at ? row(t("campaign.finishedAt"), format.date(campaign.finished_at)) : null}
      </dl>
    </section>
  );
}

const STATUSES: MessageStatus[] = ["queued", "sending", "sent", "delivered", "read", "failed", "cancelled", "unknown"];

function Messages({ campaign }: { campaign: CampaignView }) {
  const { t } = useI18n();
  const format = useFormat();
  const [status, setStatus] = useState<MessageStatus | "">("");
  const pages = useCursorPages();
  const page = useCampaignMessages(campaign.id, status, pages.cursor);
  const items = page.data?.items;
  const titleId = useId();
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <h2 id={titleId} className="text-lg font-semibold">
          {t("campaign.messages")}
        </h2>
        <div className="w-56">
          <SelectField
            label={t("campaign.messages.filter")}
            value={status}
            onChange={(e) => {
              setStatus(e.target.value as MessageStatus | "");
              pages.first();
            }}
          >
            <option value="">{t("campaign.messages.all")}</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {t(`message.status.${s}` as MessageKey)}
              </option>
            ))}
          </SelectField>
        </div>
      </div>
      {page.error ? <Alert>{errorText(t, page.error)}</Alert> : null}
      {page.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? (
        <p className="text-sm text-slate-700" data-testid="messages-empty">
          {status ? t("campaign.messages.noneIn", { status: t(`message.status.${status}` as MessageKey) }) : t("campaign.messages.none")}
        </p>
      ) : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm" data-testid="messages-table">
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("contact.phone")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("campaign.messages.status")}
                </th>
                <th scope="col" className="min-w-[16rem] px-3 py-2 font-medium">
                  {t("campaign.messages.text")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("campaign.messages.when")}
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((m) => (
                <tr key={m.id} className="border-t border-slate-200 align-top" data-testid="message-row" data-phone={m.phone} data-status={m.status}>
                  <td className="whitespace-nowrap px-3 py-2">
                    <span className="font-mono">{m.phone}</span>
                    {m.name ? <span className="block text-xs text-slate-700">{m.name}</span> : null}
                  </td>
                  <td className="px-3 py-2">
                    <MessageStatusBadge status={m.status} />
                  </td>
                  <td className="px-3 py-2">
                    {m.text !== null ? (
                      <p className="whitespace-pre-wrap break-words" data-testid="message-text">
                        {m.text}
                      </p>
                    ) : (
                      <span className="text-slate-600">{t("campaign.messages.notRendered")}</span>
                    )}
                    {m.error ? <p className="mt-1 text-xs text-red-800">{m.error}</p> : null}
                  </td>
                  <td className="whitespace-nowrap px-3 py-2 text-slate-800">
                    {m.read_at
                      ? t("campaign.messages.readAt", { date: format.date(m.read_at) })
                      : m.delivered_at
                        ? t("campaign.messages.deliveredAt", { date: format.date(m.delivered_at) })
                        : m.sent_at
                          ? t("campaign.messages.sentAt", { date: format.date(m.sent_at) })
                          : "—"}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager
        pages={pages}
        nextCursor={page.data?.next_cursor}
        loading={page.isPlaceholderData}
        label={t("campaign.messages.pages")}
      />
    </section>
  );
}
