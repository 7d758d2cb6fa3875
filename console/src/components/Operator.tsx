// The platform operator's tools on the admin page: every plan with its
// version, on-sale switch, edit and retirement; the tenants, searched by
// name or email, with plan, expiry, balance and sessions, suspended and
// reactivated; the platform's figures. And the tenant's own figures for
// the dashboard. Everything goes through the public API.

import { keepPreviousData, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { accountKeys } from "../api/queries";
import type { Page, Plan, PlanFeatures, PlatformStats, TenantStats, TenantSummary } from "../api/types";
import { errorText, formErrors, useFormat, useI18n } from "../i18n";
import { Pager, useCursorPages } from "./Pager";
import { useRupiah } from "./Plans";
import { Alert, ConfirmActions, EmptyState, Field, Spinner } from "./ui";

const operatorKeys = {
  tenants: (q: string, cursor: string | null) => ["admin", "tenants", q, cursor ?? ""] as const,
  stats: ["admin", "stats"] as const,
  tenantStats: ["stats"] as const,
};

const FEATURES: (keyof PlanFeatures)[] = ["auto_replies", "webhooks", "official_mode"];

/** Every plan, with what the admin may do to each. */
export function PlanManager({ plans }: { plans: Plan[] }) {
  const { t } = useI18n();
  const titleId = useId();
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("operator.plans")}
      </h2>
      <p className="max-w-3xl text-sm text-slate-700">{t("operator.plansHint")}</p>
      <ul className="space-y-3">
        {plans.map((plan) => (
          <PlanItem key={plan.id} plan={plan} />
        ))}
      </ul>
    </section>
  );
}

function PlanItem({ plan }: { plan: Plan }) {
  const { t } = useI18n();
  const rupiah = useRupiah();
  const format = useFormat();
  const client = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [retiring, setRetiring] = useState(false);
  const [points, setPoints] = useState(String(plan.points));
  const [price, setPrice] = useState(String(plan.price));
  const [grace, setGrace] = useState(String(plan.grace_days ?? 0));
  const [features, setFeatures] = useState<PlanFeatures>(
    plan.features ?? { auto_replies: true, webhooks: true, official_mode: true },
  );
  const replace = (next: Plan) =>
    client.setQueryData(accountKeys.plans, (page: Page<Plan> | undefined) =>
      page ? { ...page, items: page.items.map((p) => (p.id === next.id ? next : p)) } : page,
    );
  const edit = useMutation({
    mutationFn: (body: Record<string, unknown>) => api<Plan>(`/api/v1/admin/plans/${plan.id}`, { method: "PATCH", body }),
    onSuccess: (next) => {
      replace(next);
      setEditing(false);
    },
  });
  const retire = useMutation({
    mutationFn: () => api<Plan>(`/api/v1/admin/plans/${plan.id}/retire`, { method: "POST", body: {} }),
    onSuccess: (next) => {
      replace(next);
      setRetiring(false);
    },
  });
  const errors = formErrors(t, edit.error, ["points", "price", "grace_days"]);
  const retired = Boolean(plan.retired_at);
  const onSale = plan.on_sale ?? true;
  const status = retired ? t("operator.plan.retired") : onSale ? t("operator.plan.onSale") : t("operator.plan.offSale");

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    edit.mutate({ points: Number(points), price: Number(price), grace_days: Number(grace), features });
  };

  return (
    <li className="card space-y-2" data-testid="plan-admin" data-plan-id={plan.id}>
      <div className="flex flex-wrap items-center gap-x-4 gap-y-1">
        <p className="font-semibold">{plan.name}</p>
        <span className="text-sm text-slate-700">{t("operator.plan.version", { version: plan.version ?? 1 })}</span>
        <span className="rounded bg-slate-100 px-2 py-0.5 text-xs font-medium text-slate-800">{status}</span>
        <span className="text-sm text-slate-700">
          {t("operator.plan.summary", {
            points: format.number(plan.points),
            price: rupiah(plan.price),
            grace: plan.grace_days ?? 0,
          })}
        </span>
        <span className="text-sm text-slate-700">
          {FEATURES.filter((f) => (plan.features ?? {})[f] ?? true)
            .map((f) => t(`operator.feature.${f}`))
            .join(", ") || t("operator.feature.none")}
        </span>
      </div>
      {retired ? null : (
        <div className="flex flex-wrap gap-2">
          <button type="button" className="btn-secondary" onClick={() => setEditing((v) => !v)}>
            {t("operator.plan.edit")}
          </button>
          <button
            type="button"
            className="btn-secondary"
            disabled={edit.isPending}
            onClick={() => edit.mutate({ on_sale: !onSale })}
          >
            {onSale ? t("operator.plan.stopSale") : t("operator.plan.startSale")}
          </button>
          <button type="button" className="btn-secondary" onClick={() => setRetiring(true)}>
            {t("operator.plan.retire")}
          </button>
        </div>
      )}
      {retiring ? (
        <div className="space-y-2 rounded-md border border-red-200 bg-red-50 p-3 text-sm">
          <p>{t("operator.plan.retireConfirm", { name: plan.name })}</p>
          <ConfirmActions
            error={retire.error}
            pending={retire.isPending}
            confirm={t("operator.plan.retire")}
            onConfirm={() => retire.mutate()}
            onCancel={() => setRetiring(false)}
          />
        </div>
      ) : null}
      {editing ? (
        <form className="space-y-3" onSubmit={onSubmit} noValidate aria-label={t("operator.plan.editOf", { name: plan.name })}>
          <div className="grid gap-3 sm:grid-cols-3">
            <Field label={t("admin.plan.points")} inputMode="numeric" value={points} onChange={(e) => setPoints(e.target.value)} error={errors.fields.points} />
            <Field label={t("admin.plan.price")} inputMode="numeric" value={price} onChange={(e) => setPrice(e.target.value)} error={errors.fields.price} />
            <Field label={t("operator.plan.grace")} inputMode="numeric" value={grace} onChange={(e) => setGrace(e.target.value)} error={errors.fields.grace_days} />
          </div>
          <fieldset className="flex flex-wrap gap-4">
            <legend className="text-sm font-medium text-slate-800">{t("operator.plan.features")}</legend>
            {FEATURES.map((f) => (
              <label key={f} className="flex items-center gap-2 text-sm">
                <input
                  type="checkbox"
                  className="h-4 w-4 accent-emerald-700"
                  checked={features[f]}
                  onChange={(e) => setFeatures((current) => ({ ...current, [f]: e.target.checked }))}
                />
                {t(`operator.feature.${f}`)}
              </label>
            ))}
          </fieldset>
          <p className="text-sm text-slate-700">{t("operator.plan.editHint")}</p>
          <Alert>{errors.form}</Alert>
          <button type="submit" className="btn-primary" disabled={edit.isPending}>
            {edit.isPending ? t("common.wait") : t("operator.plan.save")}
          </button>
        </form>
      ) : null}
      {!editing && edit.error ? <Alert>{errorText(t, edit.error)}</Alert> : null}
    </li>
  );
}

/** The tenants, searched by name or email, a page at a time. */
export function Tenants() {
  const { t } = useI18n();
  const titleId = useId();
  const pages = useCursorPages();
  const [text, setText] = useState("");
  const [q, setQ] = useState("");
  const tenants = useQuery({
    queryKey: operatorKeys.tenants(q, pages.cursor),
    queryFn: ({ signal }) => {
      const params = new URLSearchParams({ limit: "20" });
      if (q) params.set("q", q);
      if (pages.cursor) params.set("cursor", pages.cursor);
      return api<Page<TenantSummary>>(`/api/v1/admin/tenants?${params}`, { signal });
    },
    placeholderData: keepPreviousData,
  });
  const onSearch = (event: FormEvent) => {
    event.preventDefault();
    pages.first();
    setQ(text.trim());
  };
  const items = tenants.data?.items;
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("operator.tenants")}
      </h2>
      <form className="flex flex-wrap items-end gap-2" role="search" onSubmit={onSearch} aria-label={t("operator.tenants.search")}>
        <div className="min-w-64 flex-1">
          <Field label={t("operator.tenants.search")} value={text} onChange={(e) => setText(e.target.value)} hint={t("operator.tenants.searchHint")} />
        </div>
        <button type="submit" className="btn-secondary">
          {t("operator.tenants.find")}
        </button>
      </form>
      {tenants.error ? <Alert>{errorText(t, tenants.error)}</Alert> : null}
      {tenants.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("operator.tenants.none")} /> : null}
      {items && items.length > 0 ? (
        <ul className="space-y-2">
          {items.map((tenant) => (
            <TenantItem key={tenant.id} tenant={tenant} />
          ))}
        </ul>
      ) : null}
      <Pager pages={pages} nextCursor={tenants.data?.next_cursor} loading={tenants.isPlaceholderData} label={t("operator.tenants")} />
    </section>
  );
}

function TenantItem({ tenant }: { tenant: TenantSummary }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const [suspending, setSuspending] = useState(false);
  const [reason, setReason] = useState("");
  const refresh = () => client.invalidateQueries({ queryKey: ["admin", "tenants"] });
  const suspend = useMutation({
    mutationFn: () => api<TenantSummary>(`/api/v1/admin/tenants/${tenant.id}/suspend`, { method: "POST", body: { reason: reason.trim() } }),
    onSuccess: () => {
      setSuspending(false);
      setReason("");
      return refresh();
    },
  });
  const reactivate = useMutation({
    mutationFn: () => api<TenantSummary>(`/api/v1/admin/tenants/${tenant.id}/reactivate`, { method: "POST", body: {} }),
    onSuccess: refresh,
  });
  const reasonError = formErrors(t, suspend.error, ["reason"]);
  return (
    <li className="card space-y-2" data-testid="tenant-row" data-tenant-id={tenant.id}>
      <div className="flex flex-wrap items-baseline gap-x-4 gap-y-1">
        <p className="font-semibold">{tenant.name}</p>
        <p className="text-sm text-slate-700">{tenant.owner_email ?? "—"}</p>
        {tenant.suspended ? (
          <span className="rounded bg-red-100 px-2 py-0.5 text-xs font-semibold text-red-900">
            {t("operator.tenant.suspended", { reason: tenant.suspended_reason ?? "" })}
          </span>
        ) : (
          <span className="rounded bg-emerald-100 px-2 py-0.5 text-xs font-semibold text-emerald-900">{t("operator.tenant.active")}</span>
        )}
      </div>
      <p className="text-sm text-slate-800">
        {t("operator.tenant.facts", {
          plan: tenant.plan?.name ?? t("operator.tenant.noPlan"),
          expires: tenant.plan_expires_at ? format.date(tenant.plan_expires_at) : "—",
          balance: format.number(tenant.balance),
          sessions: format.number(tenant.sessions),
          activity: tenant.last_activity_at ? format.date(tenant.last_activity_at) : "—",
        })}
      </p>
      <p className="break-all font-mono text-xs text-slate-700">{tenant.id}</p>
      <div className="flex flex-wrap gap-2">
        {tenant.suspended ? (
          <button type="button" className="btn-secondary" disabled={reactivate.isPending} onClick={() => reactivate.mutate()}>
            {t("operator.tenant.reactivate")}
          </button>
        ) : (
          <button type="button" className="btn-secondary" onClick={() => setSuspending(true)}>
            {t("operator.tenant.suspend")}
          </button>
        )}
      </div>
      {reactivate.error ? <Alert>{errorText(t, reactivate.error)}</Alert> : null}
      {suspending ? (
        <div className="space-y-2 rounded-md border border-red-200 bg-red-50 p-3">
          <Field
            label={t("operator.tenant.reason")}
            value={reason}
            maxLength={500}
            onChange={(e) => setReason(e.target.value)}
            error={reasonError.fields.reason}
            hint={t("operator.tenant.reasonHint")}
          />
          <ConfirmActions
            error={reasonError.form ? suspend.error : null}
            pending={suspend.isPending}
            confirm={t("operator.tenant.suspendConfirm")}
            onConfirm={() => suspend.mutate()}
            onCancel={() => setSuspending(false)}
          />
        </div>
      ) : null}
    </li>
  );
}

/** The platform's figures over the last 30 days. */
export function PlatformFigures() {
  const { t } = useI18n();
  const format = useFormat();
  const rupiah = useRupiah();
  const titleId = useId();
  const stats = useQuery({
    queryKey: operatorKeys.stats,
    queryFn: ({ signal }) => api<PlatformStats>("/api/v1/admin/stats", { signal }),
  });
  const s = stats.data;
  return (
    <section aria-labelledby={titleId} className="space-y-2" data-testid="platform-stats">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("operator.stats")}
      </h2>
      {stats.error ? <Alert>{errorText(t, stats.error)}</Alert> : null}
      {s ? (
        <>
          <p className="text-sm text-slate-800">
            {t("operator.stats.tenants", {
              tenants: format.number(s.tenants),
              active: format.number(s.tenants_active),
              suspended: format.number(s.tenants_suspended),
            })}
          </p>
          <p className="text-sm text-slate-800">
            {t("stats.line", {
              sent: format.number(s.totals.sent),
              delivered: format.number(s.totals.delivered),
              read: format.number(s.totals.read),
              failed: format.number(s.totals.failed),
            })}
          </p>
          {s.failures.length > 0 ? (
            <ul className="list-disc pl-5 text-sm text-slate-800">
              {s.failures.slice(0, 5).map((f) => (
                <li key={f.reason}>{t("stats.failure", { reason: f.reason, count: format.number(f.failed) })}</li>
              ))}
            </ul>
          ) : null}
          {s.revenue_by_plan.length === 0 ? (
            <p className="text-sm text-slate-700">{t("operator.stats.noRevenue")}</p>
          ) : (
            <ul className="list-disc pl-5 text-sm text-slate-800" aria-label={t("operator.stats.revenue")} data-testid="revenue-by-plan">
              {s.revenue_by_plan.map((r) => (
                <li key={`${r.item}/${r.plan_id ?? ""}`}>
                  {t("operator.stats.revenueLine", {
                    item: r.item === "top_up" ? t("operator.stats.topUps") : (r.plan_name ?? "—"),
                    orders: format.number(r.orders),
                    net: rupiah(r.net),
                    refunded: rupiah(r.refunded),
                  })}
                </li>
              ))}
            </ul>
          )}
        </>
      ) : null}
    </section>
  );
}

/** The tenant's own figures over the last 30 days (the dashboard's). */
export function TenantFigures() {
  const { t } = useI18n();
  const format = useFormat();
  const titleId = useId();
  const stats = useQuery({
    queryKey: operatorKeys.tenantStats,
    queryFn: ({ signal }) => api<TenantStats>("/api/v1/stats", { signal }),
  });
  const s = stats.data;
  return (
    <section aria-labelledby={titleId} className="card mt-6 space-y-1" data-testid="tenant-stats">
      <h2 id={titleId} className="text-sm font-medium text-slate-700">
        {t("stats.title")}
      </h2>
      {stats.error ? <Alert>{errorText(t, stats.error)}</Alert> : null}
      {s ? (
        <>
          <p className="text-sm text-slate-900">
            {t("stats.line", {
              sent: format.number(s.totals.sent),
              delivered: format.number(s.totals.delivered),
              read: format.number(s.totals.read),
              failed: format.number(s.totals.failed),
            })}
          </p>
          <p className="text-sm text-slate-700">
            {t("stats.replies", {
              replies: format.number(s.totals.replies),
              rate: format.number(Math.round(s.totals.reply_rate * 100)),
              points: format.number(s.totals.points_spent),
            })}
          </p>
        </>
      ) : null}
    </section>
  );
}
