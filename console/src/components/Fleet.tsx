// The platform admin's fleet: the live session engines with their load
// (refreshed every few seconds), drained and undrained; each engine's
// sessions, moved to another engine (optionally pinned there) or
// unpinned. And every tenant's numbers with their trust levels, searched
// and set. Everything goes through the public API (`/api/v1/admin/...`).

import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { api } from "../api/client";
import type { AdminSession, EngineSession, EngineView, Moved, Page } from "../api/types";
import { errorText, isMessageKey, useFormat, useI18n } from "../i18n";
import { Pager, useCursorPages } from "./Pager";
import { SelectField } from "./Select";
import { Alert, ConfirmActions, EmptyState, Field, Spinner } from "./ui";

const fleetKeys = {
  engines: ["admin", "engines"] as const,
  sessions: (engine: string) => ["admin", "engines", engine, "sessions"] as const,
  trust: (q: string, level: string, cursor: string | null) => ["admin", "sessions", q, level, cursor ?? ""] as const,
};

/** How often the fleet is read again (heartbeats come every 1.5 s). */
const REFRESH_MS = 5_000;

/** Bytes as MB, for an engine's memory. */
function megabytes(bytes: number | null): string {
  return bytes === null ? "—" : `${Math.round(bytes / (1024 * 1024))} MB`;
}

/** The live engines, what each runs, and the operator's levers. */
export function Fleet() {
  const { t } = useI18n();
  const titleId = useId();
  const engines = useQuery({
    queryKey: fleetKeys.engines,
    queryFn: ({ signal }) => api<{ items: EngineView[] }>("/api/v1/admin/engines", { signal }),
    refetchInterval: REFRESH_MS,
  });
  const items = engines.data?.items;
  return (
    <section aria-labelledby={titleId} className="space-y-3" data-testid="fleet">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("fleet.title")}
      </h2>
      <p className="max-w-3xl text-sm text-slate-700">{t("fleet.hint")}</p>
      {engines.error ? <Alert>{errorText(t, engines.error)}</Alert> : null}
      {engines.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("fleet.none")}>{t("fleet.noneHint")}</EmptyState> : null}
      {items && items.length > 0 ? (
        <ul className="space-y-3">
          {items.map((engine) => (
            <EngineItem key={engine.id} engine={engine} engines={items} />
          ))}
        </ul>
      ) : null}
    </section>
  );
}

function EngineItem({ engine, engines }: { engine: EngineView; engines: EngineView[] }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const [open, setOpen] = useState(false);
  const [draining, setDraining] = useState(false);
  const refresh = () => client.invalidateQueries({ queryKey: ["admin", "engines"] });
  const drain = useMutation({
    mutationFn: () => api<EngineView>(`/api/v1/admin/engines/${encodeURIComponent(engine.id)}/drain`, { method: "POST", body: {} }),
    onSuccess: () => {
      setDraining(false);
      return refresh();
    },
  });
  const undrain = useMutation({
    mutationFn: () => api<EngineView>(`/api/v1/admin/engines/${encodeURIComponent(engine.id)}/undrain`, { method: "POST", body: {} }),
    onSuccess: refresh,
  });
  const sessionsId = useId();
  return (
    <li className="card space-y-2" data-testid="engine-row" data-engine-id={engine.id} data-drained={engine.drained}>
      <div className="flex flex-wrap items-baseline gap-x-4 gap-y-1">
        <p className="font-mono font-semibold">{engine.id}</p>
        {engine.drained ? (
          <span className="rounded bg-amber-100 px-2 py-0.5 text-xs font-semibold text-amber-900">{t("fleet.engine.drained")}</span>
        ) : (
          <span className="rounded bg-emerald-100 px-2 py-0.5 text-xs font-semibold text-emerald-900">{t("fleet.engine.live")}</span>
        )}
        <span className="text-sm text-slate-700">{t("fleet.engine.host", { host: engine.host || "—", version: engine.version })}</span>
      </div>
      <p className="text-sm text-slate-800" data-testid="engine-load">
        {t("fleet.engine.load", {
          sessions: format.number(engine.sessions),
          sends: format.number(engine.sends_per_minute),
          memory: megabytes(engine.memory_rss_bytes),
        })}
      </p>
      <p className="text-sm text-slate-700">
        {t("fleet.engine.times", { started: format.date(engine.started_at), beat: format.date(engine.last_heartbeat_at) })}
      </p>
      <div className="flex flex-wrap gap-2">
        <button type="button" className="btn-secondary" aria-expanded={open} aria-controls={sessionsId} onClick={() => setOpen((v) => !v)}>
          {open ? t("fleet.engine.hideSessions") : t("fleet.engine.showSessions")}
        </button>
        {engine.drained ? (
          <button type="button" className="btn-secondary" disabled={undrain.isPending} onClick={() => undrain.mutate()}>
            {t("fleet.engine.undrain")}
          </button>
        ) : (
          <button type="button" className="btn-secondary" onClick={() => setDraining(true)}>
            {t("fleet.engine.drain")}
          </button>
        )}
      </div>
      {undrain.error ? <Alert>{errorText(t, undrain.error)}</Alert> : null}
      {draining ? (
        <div className="space-y-2 rounded-md border border-amber-200 bg-amber-50 p-3 text-sm">
          <p>{t("fleet.engine.drainConfirm", { engine: engine.id })}</p>
          <ConfirmActions
            error={drain.error}
            pending={drain.isPending}
            confirm={t("fleet.engine.drainYes")}
            onConfirm={() => drain.mutate()}
            onCancel={() => setDraining(false)}
          />
        </div>
      ) : null}
      <div id={sessionsId}>{open ? <EngineSessions engine={engine} engines={engines} /> : null}</div>
    </li>
  );
}

function EngineSessions({ engine, engines }: { engine: EngineView; engines: EngineView[] }) {
  const { t } = useI18n();
  const sessions = useQuery({
    queryKey: fleetKeys.sessions(engine.id),
    queryFn: ({ signal }) =>
      api<{ items: EngineSession[] }>(`/api/v1/admin/engines/${encodeURIComponent(engine.id)}/sessions`, { signal }),
    refetchInterval: REFRESH_MS,
  });
  const items = sessions.data?.items;
  return (
    <div className="space-y-2">
      {sessions.error ? <Alert>{errorText(t, sessions.error)}</Alert> : null}
      {sessions.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <p className="text-sm text-slate-700">{t("fleet.sessions.none")}</p> : null}
      {items && items.length > 0 ? (
        <ul className="divide-y divide-slate-200 rounded-md border border-slate-200" aria-label={t("fleet.sessions.of", { engine: engine.id })}>
          {items.map((session) => (
            <SessionItem key={session.id} session={session} engine={engine} engines={engines} />
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function SessionItem({ session, engine, engines }: { session: EngineSession; engine: EngineView; engines: EngineView[] }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const others = engines.filter((e) => e.id !== engine.id && !e.drained);
  const [target, setTarget] = useState("");
  const [pin, setPin] = useState(false);
  const refresh = () => client.invalidateQueries({ queryKey: ["admin", "engines"] });
  const move = useMutation({
    mutationFn: () =>
      api<Moved>(`/api/v1/admin/sessions/${session.id}/move`, {
        method: "POST",
        body: target ? { engine_id: target, pin } : {},
      }),
    onSuccess: () => {
      setPin(false);
      setTarget("");
      return refresh();
    },
  });
  const unpin = useMutation({
    mutationFn: () => api<void>(`/api/v1/admin/sessions/${session.id}/unpin`, { method: "POST", body: {} }),
    onSuccess: refresh,
  });
  const onMove = (event: FormEvent) => {
    event.preventDefault();
    move.mutate();
  };
  const statusKey = `status.${session.status}`;
  return (
    <li className="space-y-2 p-3" data-testid="engine-session" data-session-id={session.id}>
      <div className="flex flex-wrap items-baseline gap-x-3 gap-y-1">
        <p className="font-medium">{session.name}</p>
        <span className="text-sm text-slate-700">{isMessageKey(statusKey) ? t(statusKey) : session.status}</span>
        <span className="font-mono text-xs text-slate-700">{session.tenant_id}</span>
        {session.pinned_to ? (
          <span className="rounded bg-sky-100 px-2 py-0.5 text-xs font-semibold text-sky-900" data-testid="pinned">
            {t("fleet.session.pinned", { engine: session.pinned_to })}
          </span>
        ) : null}
      </div>
      <form className="flex flex-wrap items-end gap-3" onSubmit={onMove} aria-label={t("fleet.session.moveOf", { name: session.name })}>
        <div className="min-w-48">
          <SelectField label={t("fleet.session.target")} value={target} onChange={(e) => setTarget(e.target.value)}>
            <option value="">{t("fleet.session.leastLoaded")}</option>
            {others.map((e) => (
              <option key={e.id} value={e.id}>
                {e.id}
              </option>
            ))}
          </SelectField>
        </div>
        <label className="flex items-center gap-2 pb-2 text-sm">
          <input
            type="checkbox"
            className="h-4 w-4 accent-emerald-700"
            checked={pin}
            disabled={!target}
            onChange={(e) => setPin(e.target.checked)}
          />
          {t("fleet.session.pin")}
        </label>
        <button type="submit" className="btn-secondary" disabled={move.isPending}>
          {move.isPending ? t("common.wait") : t("fleet.session.move")}
        </button>
        {session.pinned_to ? (
          <button type="button" className="btn-secondary" disabled={unpin.isPending} onClick={() => unpin.mutate()}>
            {t("fleet.session.unpin")}
          </button>
        ) : null}
      </form>
      {move.data ? (
        <p role="status" className="text-sm text-emerald-800">
          {t("fleet.session.moved", { to: move.data.to })}
        </p>
      ) : null}
      {move.error ? <Alert>{errorText(t, move.error)}</Alert> : null}
      {unpin.error ? <Alert>{errorText(t, unpin.error)}</Alert> : null}
    </li>
  );
}

const LEVELS = ["1", "2", "3", "4", "5"];

/** Every tenant's numbers with their trust levels, searched and set. */
export function TrustLevels() {
  const { t } = useI18n();
  const titleId = useId();
  const pages = useCursorPages();
  const [text, setText] = useState("");
  const [q, setQ] = useState("");
  const [level, setLevel] = useState("");
  const sessions = useQuery({
    queryKey: fleetKeys.trust(q, level, pages.cursor),
    queryFn: ({ signal }) => {
      const params = new URLSearchParams({ limit: "20" });
      if (q) params.set("q", q);
      if (level) params.set("trust_level", level);
      if (pages.cursor) params.set("cursor", pages.cursor);
      return api<Page<AdminSession>>(`/api/v1/admin/sessions?${params}`, { signal });
    },
    placeholderData: keepPreviousData,
  });
  const onSearch = (event: FormEvent) => {
    event.preventDefault();
    pages.first();
    setQ(text.trim());
  };
  const items = sessions.data?.items;
  return (
    <section aria-labelledby={titleId} className="space-y-3" data-testid="trust-levels">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("trust.title")}
      </h2>
      <p className="max-w-3xl text-sm text-slate-700">{t("trust.hint")}</p>
      <form className="flex flex-wrap items-end gap-2" role="search" onSubmit={onSearch} aria-label={t("trust.search")}>
        <div className="min-w-64 flex-1">
          <Field label={t("trust.search")} value={text} onChange={(e) => setText(e.target.value)} hint={t("trust.searchHint")} />
        </div>
        <div className="min-w-40">
          <SelectField
            label={t("trust.filter")}
            value={level}
            onChange={(e) => {
              pages.first();
              setLevel(e.target.value);
            }}
          >
            <option value="">{t("trust.any")}</option>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {t("trust.level", { level: l })}
              </option>
            ))}
          </SelectField>
        </div>
        <button type="submit" className="btn-secondary">
          {t("trust.find")}
        </button>
      </form>
      {sessions.error ? <Alert>{errorText(t, sessions.error)}</Alert> : null}
      {sessions.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("trust.none")} /> : null}
      {items && items.length > 0 ? (
        <ul className="space-y-2">
          {items.map((session) => (
            <TrustItem key={session.id} session={session} />
          ))}
        </ul>
      ) : null}
      <Pager pages={pages} nextCursor={sessions.data?.next_cursor} loading={sessions.isPlaceholderData} label={t("trust.title")} />
    </section>
  );
}

function TrustItem({ session }: { session: AdminSession }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const [level, setLevel] = useState(String(session.trust_level));
  const save = useMutation({
    mutationFn: () =>
      api<{ trust_level: number; daily_limit: number }>(`/api/v1/sessions/${session.id}`, {
        method: "PATCH",
        body: { trust_level: Number(level) },
      }),
    onSuccess: () => client.invalidateQueries({ queryKey: ["admin", "sessions"] }),
  });
  const onSave = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  return (
    <li className="card space-y-2" data-testid="trust-row" data-session-id={session.id} data-trust-level={session.trust_level}>
      <div className="flex flex-wrap items-baseline gap-x-4 gap-y-1">
        <p className="font-semibold">{session.name}</p>
        <p className="text-sm text-slate-700">{session.phone_number ?? "—"}</p>
        <p className="text-sm text-slate-700">{session.tenant_name}</p>
      </div>
      <p className="text-sm text-slate-800">
        {t("trust.facts", {
          level: session.trust_level,
          limit: format.number(session.daily_limit),
          engine: session.engine_id ?? "—",
        })}
      </p>
      <form className="flex flex-wrap items-end gap-2" onSubmit={onSave} aria-label={t("trust.setOf", { name: session.name })}>
        <div className="min-w-40">
          <SelectField label={t("trust.set")} value={level} onChange={(e) => setLevel(e.target.value)}>
            {LEVELS.map((l) => (
              <option key={l} value={l}>
                {t("trust.level", { level: l })}
              </option>
            ))}
          </SelectField>
        </div>
        <button type="submit" className="btn-secondary" disabled={save.isPending || level === String(session.trust_level)}>
          {save.isPending ? t("common.wait") : t("trust.save")}
        </button>
      </form>
      {save.isSuccess ? (
        <p role="status" className="text-sm text-emerald-800">
          {t("trust.saved", { level: save.data.trust_level, limit: format.number(save.data.daily_limit) })}
        </p>
      ) : null}
      {save.error ? <Alert>{errorText(t, save.error)}</Alert> : null}
    </li>
  );
}
