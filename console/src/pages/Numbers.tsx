import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import { keys, useSessions } from "../api/queries";
import { LINKING, RUNNING, type BatchResults, type Session } from "../api/types";
import { Layout } from "../components/Layout";
import { Alert, ConfirmActions, Dialog, EmptyState, Field, Meter, Spinner, StatusBadge } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n } from "../i18n";
import { toE164 } from "../lib/phone";
import { LinkPanel } from "./Link";
import { AddOfficialNumber, OfficialPanel, TemplatesPanel } from "./Official";

type Open =
  | { kind: "add" }
  | { kind: "link"; id: string; phone?: string }
  | { kind: "official"; id: string; verifyToken?: string }
  | { kind: "templates"; id: string }
  | { kind: "settings"; id: string }
  | { kind: "confirm"; action: "delete" | "logout"; ids: string[] }
  | null;

export function Numbers() {
  const { t } = useI18n();
  const { sessions, error, isPending } = useSessions();
  const [open, setOpen] = useState<Open>(null);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [notice, setNotice] = useState<string | null>(null);
  const client = useQueryClient();
  const refresh = () => client.invalidateQueries({ queryKey: keys.sessions });
  const visible = new Set(sessions?.map((s) => s.id));
  const chosen = [...selected].filter((id) => visible.has(id));

  const bulk = useMutation({
    mutationFn: async (action: "start" | "stop") =>
      (await api<BatchResults>(`/api/v1/sessions/${action}`, { method: "POST", body: { ids: chosen } })).results,
    onSuccess: (results) => {
      const failed = results.filter((r) => r.status === "error").length;
      setNotice(t("numbers.bulk.done", { ok: results.length - failed, failed }));
    },
    onSettled: refresh,
  });

  const toggle = (id: string) =>
    setSelected((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const allChosen = !!sessions && sessions.length > 0 && chosen.length === sessions.length;

  const linking = open?.kind === "link" ? sessions?.find((s) => s.id === open.id) : undefined;
  const editing = open?.kind === "settings" ? sessions?.find((s) => s.id === open.id) : undefined;
  const official = open?.kind === "official" || open?.kind === "templates" ? sessions?.find((s) => s.id === open.id) : undefined;

  return (
    <Layout
      title={t("numbers.title")}
      actions={
        <button type="button" className="btn-primary" onClick={() => setOpen({ kind: "add" })}>
          {t("numbers.add")}
        </button>
      }
    >
      {error ? <Alert>{errorText(t, error)}</Alert> : null}
      {isPending ? <Spinner label={t("common.loading")} /> : null}
      {sessions && sessions.length === 0 ? (
        <EmptyState title={t("numbers.empty")}>
          <p>{t("numbers.emptyHint")}</p>
          <button type="button" className="btn-primary mt-4" onClick={() => setOpen({ kind: "add" })}>
            {t("numbers.add")}
          </button>
        </EmptyState>
      ) : null}

      {sessions && sessions.length > 0 ? (
        <>
          <div className="mb-4 flex flex-wrap items-center gap-3 rounded-lg border border-slate-200 bg-white px-4 py-3">
            <label className="flex items-center gap-2 text-sm">
              <input
                type="checkbox"
                className="h-4 w-4 accent-emerald-700"
                checked={allChosen}
                onChange={() => setSelected(allChosen ? new Set() : new Set(sessions.map((s) => s.id)))}
              />
              {t("numbers.selectAll")}
            </label>
            <span className="text-sm text-slate-700" aria-live="polite">
              {t("numbers.selected", { count: chosen.length })}
            </span>
            {chosen.length > 0 ? (
              <div className="flex flex-wrap gap-2" role="group" aria-label={t("numbers.bulk.label")}>
                <button type="button" className="btn-secondary" disabled={bulk.isPending} onClick={() => bulk.mutate("start")}>
                  {t("numbers.start")}
                </button>
                <button type="button" className="btn-secondary" disabled={bulk.isPending} onClick={() => bulk.mutate("stop")}>
                  {t("numbers.stop")}
                </button>
                <button
                  type="button"
                  className="btn-danger"
                  onClick={() => setOpen({ kind: "confirm", action: "delete", ids: chosen })}
                >
                  {t("numbers.delete")}
                </button>
              </div>
            ) : null}
          </div>
          <div role="status" className="mb-3 text-sm text-slate-800">
            {notice}
          </div>
          <Alert>{bulk.error ? errorText(t, bulk.error) : null}</Alert>
          <ul className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
            {sessions.map((session) => (
              <NumberCard
                key={session.id}
                session={session}
                selected={selected.has(session.id)}
                onToggle={() => toggle(session.id)}
                onOpen={setOpen}
              />
            ))}
          </ul>
        </>
      ) : null}

      <Dialog open={open?.kind === "add"} title={t("numbers.add")} onClose={() => setOpen(null)}>
        <AddNumberKind
          onCreated={(id, phone) => setOpen({ kind: "link", id, phone })}
          onOfficial={(id, verifyToken) => setOpen({ kind: "official", id, verifyToken })}
        />
      </Dialog>
      <Dialog open={open?.kind === "official"} title={t("official.title", { name: official?.name ?? "" })} onClose={() => setOpen(null)}>
        {official && open?.kind === "official" ? (
          <OfficialPanel session={official} verifyToken={open.verifyToken} onDone={() => setOpen(null)} />
        ) : (
          <Spinner label={t("common.loading")} />
        )}
      </Dialog>
      <Dialog open={open?.kind === "templates"} title={t("templates.title", { name: official?.name ?? "" })} onClose={() => setOpen(null)}>
        {official ? <TemplatesPanel session={official} /> : <Spinner label={t("common.loading")} />}
      </Dialog>
      <Dialog open={open?.kind === "link"} title={t("link.title", { name: linking?.name ?? "" })} onClose={() => setOpen(null)}>
        {linking ? (
          <LinkPanel session={linking} pairingPhone={open?.kind === "link" ? open.phone : undefined} onDone={() => setOpen(null)} />
        ) : (
          <Spinner label={t("common.loading")} />
        )}
      </Dialog>
      <Dialog open={open?.kind === "settings"} title={t("settings.title", { name: editing?.name ?? "" })} onClose={() => setOpen(null)}>
        {editing ? <Settings session={editing} onDone={() => setOpen(null)} /> : null}
      </Dialog>
      <Dialog
        open={open?.kind === "confirm"}
        title={open?.kind === "confirm" && open.action === "logout" ? t("numbers.logout.title") : t("numbers.delete.title")}
        onClose={() => setOpen(null)}
      >
        {open?.kind === "confirm" ? (
          <Confirm
            action={open.action}
            sessions={(sessions ?? []).filter((s) => open.ids.includes(s.id))}
            onCancel={() => setOpen(null)}
            onDone={(message) => {
              setOpen(null);
              setSelected(new Set());
              setNotice(message);
            }}
          />
        ) : null}
      </Dialog>
    </Layout>
  );
}

function NumberCard({
  session,
  selected,
  onToggle,
  onOpen,
}: {
  session: Session;
  selected: boolean;
  onToggle: () => void;
  onOpen: (open: Open) => void;
}) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const action = useMutation({
    mutationFn: (verb: "start" | "stop") => api<Session>(`/api/v1/sessions/${session.id}/${verb}`, { method: "POST" }),
    onSettled: () => client.invalidateQueries({ queryKey: keys.sessions }),
  });
  const running = RUNNING.includes(session.status);
  const cloud = session.driver === "cloud";
  const headingId = `session-${session.id}`;
  return (
    <li className="card flex flex-col gap-3" aria-labelledby={headingId} data-session-id={session.id} data-testid="number-card">
      <div className="flex items-start gap-3">
        <input
          type="checkbox"
          className="mt-1 h-4 w-4 accent-emerald-700"
          checked={selected}
          onChange={onToggle}
          aria-label={t("numbers.select", { name: session.name })}
        />
        <div className="min-w-0 flex-1">
          <h2 id={headingId} className="truncate font-semibold">
            {session.name}
          </h2>
          <p className="text-sm text-slate-700">{session.phone_number ?? t("numbers.notLinked")}</p>
          {cloud ? <p className="text-xs font-medium text-sky-900">{t("official.badge")}</p> : null}
        </div>
        <StatusBadge status={session.status} />
      </div>
      <div>
        <p className="mb-1 text-sm text-slate-800">
          {t("numbers.sentToday", { sent: format.number(session.sent_today), limit: format.number(session.daily_limit) })}
        </p>
        <Meter value={session.sent_today} max={session.daily_limit} label={t("numbers.sentTodayOf", { name: session.name })} />
      </div>
      <dl className="grid grid-cols-2 gap-2 text-sm">
        <div>
          <dt className="text-slate-600">{t("numbers.trust")}</dt>
          <dd className="font-medium">{t("numbers.trustValue", { level: session.trust_level })}</dd>
        </div>
        <div>
          <dt className="text-slate-600">{t("numbers.autoStart")}</dt>
          <dd className="font-medium">{session.auto_start ? t("common.yes") : t("common.no")}</dd>
        </div>
      </dl>
      {session.last_error && session.status !== "ready" ? <p className="text-sm text-red-700">{session.last_error}</p> : null}
      <Alert>{action.error ? errorText(t, action.error) : null}</Alert>
      <div className="mt-auto flex flex-wrap gap-2">
        {LINKING.includes(session.status) ? (
          <button type="button" className="btn-primary" onClick={() => onOpen({ kind: "link", id: session.id })}>
            {t("numbers.link")}
          </button>
        ) : null}
        {running ? (
          <button type="button" className="btn-secondary" disabled={action.isPending} onClick={() => action.mutate("stop")}>
            {t("numbers.stop")}
          </button>
        ) : (
          <button type="button" className="btn-secondary" disabled={action.isPending} onClick={() => action.mutate("start")}>
            {t("numbers.start")}
          </button>
        )}
        {session.phone_number && session.status !== "logged_out" ? (
          <button
            type="button"
            className="btn-secondary"
            onClick={() => onOpen({ kind: "confirm", action: "logout", ids: [session.id] })}
          >
            {t("numbers.logout")}
          </button>
        ) : null}
        {cloud ? (
          <>
            <button type="button" className="btn-secondary" onClick={() => onOpen({ kind: "templates", id: session.id })}>
              {t("templates.open")}
            </button>
            <button type="button" className="btn-secondary" onClick={() => onOpen({ kind: "official", id: session.id })}>
              {t("official.setup")}
            </button>
          </>
        ) : null}
        <button type="button" className="btn-secondary" onClick={() => onOpen({ kind: "settings", id: session.id })}>
          {t("numbers.settings")}
        </button>
        <button
          type="button"
          className="btn-secondary text-red-800"
          onClick={() => onOpen({ kind: "confirm", action: "delete", ids: [session.id] })}
        >
          {t("numbers.delete")}
        </button>
      </div>
    </li>
  );
}

/** What kind of number to add: one linked by the phone, or an official one. */
function AddNumberKind({
  onCreated,
  onOfficial,
}: {
  onCreated: (id: string, pairingPhone?: string) => void;
  onOfficial: (id: string, verifyToken: string) => void;
}) {
  const { t } = useI18n();
  const [kind, setKind] = useState<"phone" | "official">("phone");
  return (
    <div className="space-y-4">
      <fieldset className="space-y-2">
        <legend className="text-sm font-medium text-slate-800">{t("numbers.form.kind")}</legend>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name="kind" className="accent-emerald-700" checked={kind === "phone"} onChange={() => setKind("phone")} />
          {t("numbers.form.kindPhone")}
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name="kind" className="accent-emerald-700" checked={kind === "official"} onChange={() => setKind("official")} />
          {t("numbers.form.kindOfficial")}
        </label>
      </fieldset>
      {kind === "phone" ? <AddNumber onCreated={onCreated} /> : <AddOfficialNumber onCreated={onOfficial} />}
    </div>
  );
}

function AddNumber({ onCreated }: { onCreated: (id: string, pairingPhone?: string) => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [name, setName] = useState("");
  const [method, setMethod] = useState<"qr" | "pairing">("qr");
  const [phone, setPhone] = useState("");
  const [limit, setLimit] = useState("");
  const [phoneError, setPhoneError] = useState<string | undefined>();
  const create = useMutation({
    mutationFn: async (e164: string | null) => {
      const session = await api<Session>("/api/v1/sessions", {
        method: "POST",
        body: {
          name: name.trim(),
          login: method,
          ...(e164 ? { phone_number: e164 } : {}),
          ...(limit.trim() ? { daily_limit: Number(limit) } : {}),
        },
      });
      await api<Session>(`/api/v1/sessions/${session.id}/start`, { method: "POST" });
      return { session, e164 };
    },
    onSuccess: async ({ session, e164 }) => {
      await client.invalidateQueries({ queryKey: keys.sessions });
      onCreated(session.id, e164 ?? undefined);
    },
  });
  const errors = formErrors(t, create.error, ["name", "phone_number", "daily_limit"]);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    let e164: string | null = null;
    if (method === "pairing") {
      e164 = toE164(phone);
      if (!e164) {
        setPhoneError(t("error.invalid_phone"));
        return;
      }
    }
    setPhoneError(undefined);
    create.mutate(e164);
  };
  return (
    <form onSubmit={submit} noValidate className="space-y-4">
      <Field
        label={t("numbers.form.name")}
        value={name}
        onChange={(e) => setName(e.target.value)}
        error={errors.fields.name}
        hint={t("numbers.form.nameHint")}
        required
      />
      <fieldset className="space-y-2">
        <legend className="text-sm font-medium text-slate-800">{t("numbers.form.method")}</legend>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name="method" className="accent-emerald-700" checked={method === "qr"} onChange={() => setMethod("qr")} />
          {t("numbers.form.qr")}
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input
            type="radio"
            name="method"
            className="accent-emerald-700"
            checked={method === "pairing"}
            onChange={() => setMethod("pairing")}
          />
          {t("numbers.form.pairing")}
        </label>
      </fieldset>
      {method === "pairing" ? (
        <Field
          label={t("numbers.form.phone")}
          type="tel"
          inputMode="tel"
          autoComplete="tel"
          value={phone}
          onChange={(e) => setPhone(e.target.value)}
          error={phoneError ?? errors.fields.phone_number}
          hint={t("numbers.form.phoneHint")}
          required
        />
      ) : null}
      <Field
        label={t("numbers.form.limit")}
        type="number"
        min={1}
        inputMode="numeric"
        value={limit}
        onChange={(e) => setLimit(e.target.value)}
        error={errors.fields.daily_limit}
        hint={t("numbers.form.limitHint")}
      />
      <Alert>{errors.form}</Alert>
      <button type="submit" className="btn-primary w-full" disabled={create.isPending}>
        {create.isPending ? t("common.wait") : t("numbers.form.submit")}
      </button>
    </form>
  );
}

function Settings({ session, onDone }: { session: Session; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [name, setName] = useState(session.name);
  const [limit, setLimit] = useState(String(session.daily_limit));
  const [autoStart, setAutoStart] = useState(session.auto_start);
  const save = useMutation({
    mutationFn: () => {
      const patch: Record<string, unknown> = {};
      if (name.trim() !== session.name) patch.name = name.trim();
      if (limit.trim() !== String(session.daily_limit)) patch.daily_limit = Number(limit);
      if (autoStart !== session.auto_start) patch.auto_start = autoStart;
      return api<Session>(`/api/v1/sessions/${session.id}`, { method: "PATCH", body: patch });
    },
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: keys.sessions });
      onDone();
    },
  });
  const errors = formErrors(t, save.error, ["name", "daily_limit", "auto_start"]);
  return (
    <form
      noValidate
      className="space-y-4"
      onSubmit={(event) => {
        event.preventDefault();
        save.mutate();
      }}
    >
      <Field label={t("numbers.form.name")} value={name} onChange={(e) => setName(e.target.value)} error={errors.fields.name} />
      <Field
        label={t("numbers.form.limit")}
        type="number"
        min={1}
        inputMode="numeric"
        value={limit}
        onChange={(e) => setLimit(e.target.value)}
        error={errors.fields.daily_limit}
        hint={session.daily_limit_follows_trust_level ? t("settings.limitFollowsTrust") : undefined}
      />
      <label className="flex items-center gap-2 text-sm">
        <input
          type="checkbox"
          className="h-4 w-4 accent-emerald-700"
          checked={autoStart}
          onChange={(e) => setAutoStart(e.target.checked)}
        />
        {t("settings.autoStart")}
      </label>
      <Alert>{errors.form}</Alert>
      <div className="flex gap-2">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {save.isPending ? t("common.wait") : t("common.save")}
        </button>
        <button type="button" className="btn-secondary" onClick={onDone}>
          {t("common.cancel")}
        </button>
      </div>
    </form>
  );
}

function Confirm({
  action,
  sessions,
  onDone,
  onCancel,
}: {
  action: "delete" | "logout";
  sessions: Session[];
  onDone: (message: string) => void;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  const client = useQueryClient();
  const run = useMutation({
    mutationFn: async () => {
      const outcomes = await Promise.allSettled(
        sessions.map((s) =>
          action === "delete"
            ? api<void>(`/api/v1/sessions/${s.id}`, { method: "DELETE" })
            : api<Session>(`/api/v1/sessions/${s.id}/logout`, { method: "POST" }),
        ),
      );
      const failed = outcomes.filter((o) => o.status === "rejected");
      if (sessions.length === 1 && failed.length === 1) throw (failed[0] as PromiseRejectedResult).reason;
      return { ok: outcomes.length - failed.length, failed: failed.length };
    },
    onSuccess: ({ ok, failed }) =>
      onDone(sessions.length === 1 && failed === 0 ? t(`numbers.${action}.done`) : t("numbers.bulk.done", { ok, failed })),
    onSettled: () => client.invalidateQueries({ queryKey: keys.sessions }),
  });
  return (
    <div className="space-y-4">
      <p className="text-sm text-slate-800">
        {action === "delete" ? t("numbers.delete.body", { count: sessions.length }) : t("numbers.logout.body")}
      </p>
      <ul className="list-disc pl-5 text-sm">
        {sessions.map((s) => (
          <li key={s.id}>
            {s.name}
            {s.phone_number ? ` (${s.phone_number})` : ""}
          </li>
        ))}
      </ul>
      <ConfirmActions
        error={run.error}
        pending={run.isPending}
        confirm={action === "delete" ? t("numbers.delete.confirm") : t("numbers.logout.confirm")}
        onConfirm={() => run.mutate()}
        onCancel={onCancel}
      />
    </div>
  );
}
