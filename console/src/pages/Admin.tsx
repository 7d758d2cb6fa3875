// The platform admin's page: plans on offer (and a new one), every plan's
// versions, sale and retirement, grants of a plan or points to a tenant by
// its id, the tenants (searched, suspended, reactivated), every tenant's
// numbers with their trust levels, the session engines (drained, their
// numbers moved and pinned) and the platform's figures. Everyone else is
// refused.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { ApiError, api } from "../api/client";
import { accountKeys, useMe, usePlans } from "../api/queries";
import type { Granted, Plan } from "../api/types";
import { Layout } from "../components/Layout";
import { Fleet, TrustLevels } from "../components/Fleet";
import { PlanManager, PlatformFigures, Tenants } from "../components/Operator";
import { PlansTable } from "../components/Plans";
import { SelectField } from "../components/Select";
import { Alert, EmptyState, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n, type Translate } from "../i18n";
import { isUuid } from "../lib/wallet";

export function Admin() {
  const { t } = useI18n();
  const me = useMe();
  if (me.error) {
    return (
      <Layout title={t("admin.title")}>
        <Alert>{errorText(t, me.error)}</Alert>
      </Layout>
    );
  }
  if (!me.data) {
    return (
      <Layout title={t("admin.title")}>
        <Spinner label={t("common.loading")} />
      </Layout>
    );
  }
  if (me.data.user?.role !== "admin") {
    return (
      <Layout title={t("admin.title")}>
        <div data-testid="admin-refused">
          <EmptyState title={t("admin.refused")}>{t("admin.refusedHint")}</EmptyState>
        </div>
      </Layout>
    );
  }
  return (
    <Layout title={t("admin.title")}>
      <div className="space-y-8">
        <Plans />
        <Grant />
        <Tenants />
        <TrustLevels />
        <Fleet />
        <PlatformFigures />
      </div>
    </Layout>
  );
}

/** A number field's value: a whole number, or NaN. */
function whole(text: string): number {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
}

const PLAN_FIELDS = ["name", "period_days", "points", "max_sessions", "max_recipients_per_campaign", "max_daily_limit", "price"];

/** An error about a plan's or grant's field, in the form's own words. */
function fieldError(t: Translate, err: unknown, field: string): string | undefined {
  if (!(err instanceof ApiError) || err.field !== field) return undefined;
  switch (field) {
    case "name":
      return t("admin.plan.nameError");
    case "points":
      return t("admin.plan.pointsError");
    case "max_sessions":
      return t("admin.plan.sessionsError");
    case "max_recipients_per_campaign":
      return t("admin.plan.recipientsError");
    case "max_daily_limit":
      return t("admin.plan.dailyLimitError");
    default:
      return errorText(t, err);
  }
}

function Plans() {
  const { t } = useI18n();
  const client = useQueryClient();
  const plans = usePlans();
  const titleId = useId();
  const [form, setForm] = useState({
    name: "",
    period_days: "30",
    points: "",
    max_sessions: "",
    max_recipients_per_campaign: "200",
    max_daily_limit: "500",
    price: "",
  });
  const [local, setLocal] = useState<Record<string, string>>({});
  const [made, setMade] = useState<Plan | null>(null);
  const create = useMutation({
    mutationFn: (body: Record<string, unknown>) => api<Plan>("/api/v1/admin/plans", { method: "POST", body }),
    onSuccess: (plan) => {
      setMade(plan);
      // The list may lag behind the write: the new plan is in it at once.
      client.setQueryData(accountKeys.plans, (page: { items: Plan[]; next_cursor: string | null } | undefined) =>
        page && !page.items.some((p) => p.id === plan.id) ? { ...page, items: [...page.items, plan] } : page,
      );
      setForm((current) => ({ ...current, name: "" }));
    },
  });
  const errors = formErrors(t, create.error, PLAN_FIELDS);
  const error = (field: string) => local[field] ?? fieldError(t, create.error, field);
  const set = (field: keyof typeof form) => (value: string) => setForm((current) => ({ ...current, [field]: value }));

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    setMade(null);
    const numbers = ["points", "max_sessions", "max_recipients_per_campaign", "max_daily_limit", "price"] as const;
    const problems: Record<string, string> = {};
    if (!form.name.trim()) problems.name = t("admin.plan.nameError");
    for (const field of numbers) {
      if (Number.isNaN(whole(form[field]))) problems[field] = t("admin.wholeNumber");
    }
    setLocal(problems);
    if (Object.keys(problems).length > 0) return;
    create.mutate({
      name: form.name.trim(),
      period_days: Number(form.period_days),
      ...Object.fromEntries(numbers.map((field) => [field, whole(form[field])])),
    });
  };
  const items = plans.data?.items;

  return (
    <section aria-labelledby={titleId} className="space-y-4">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("admin.plans")}
      </h2>
      {plans.error ? <Alert>{errorText(t, plans.error)}</Alert> : null}
      {plans.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("plans.none")}>{t("admin.plansNoneHint")}</EmptyState> : null}
      {items && items.length > 0 ? <PlansTable plans={items} caption={t("admin.plans")} /> : null}
      {items && items.length > 0 ? <PlanManager plans={items} /> : null}

      <form className="card space-y-4" onSubmit={onSubmit} noValidate aria-label={t("admin.plan.new")}>
        <h3 className="font-semibold">{t("admin.plan.new")}</h3>
        <div className="grid gap-4 sm:grid-cols-2 lg:grid-cols-3">
          <Field label={t("admin.plan.name")} value={form.name} maxLength={100} onChange={(e) => set("name")(e.target.value)} error={error("name")} />
          <SelectField
            label={t("admin.plan.period")}
            value={form.period_days}
            onChange={(e) => set("period_days")(e.target.value)}
            error={error("period_days")}
          >
            <option value="15">{t("plans.days", { days: 15 })}</option>
            <option value="30">{t("plans.days", { days: 30 })}</option>
          </SelectField>
          <Field
            label={t("admin.plan.points")}
            inputMode="numeric"
            value={form.points}
            onChange={(e) => set("points")(e.target.value)}
            error={error("points")}
            hint={t("admin.plan.pointsHint")}
          />
          <Field
            label={t("admin.plan.sessions")}
            inputMode="numeric"
            value={form.max_sessions}
            onChange={(e) => set("max_sessions")(e.target.value)}
            error={error("max_sessions")}
          />
          <Field
            label={t("admin.plan.recipients")}
            inputMode="numeric"
            value={form.max_recipients_per_campaign}
            onChange={(e) => set("max_recipients_per_campaign")(e.target.value)}
            error={error("max_recipients_per_campaign")}
          />
          <Field
            label={t("admin.plan.dailyLimit")}
            inputMode="numeric"
            value={form.max_daily_limit}
            onChange={(e) => set("max_daily_limit")(e.target.value)}
            error={error("max_daily_limit")}
          />
          <Field
            label={t("admin.plan.price")}
            inputMode="numeric"
            value={form.price}
            onChange={(e) => set("price")(e.target.value)}
            error={error("price")}
            hint={t("admin.plan.priceHint")}
          />
        </div>
        <Alert>{errors.form}</Alert>
        <div className="flex flex-wrap items-center gap-3">
          <button type="submit" className="btn-primary" disabled={create.isPending}>
            {create.isPending ? t("common.wait") : t("admin.plan.create")}
          </button>
          <p role="status" className="text-sm text-emerald-900">
            {made ? t("admin.plan.created", { name: made.name }) : ""}
          </p>
        </div>
      </form>
    </section>
  );
}

function Grant() {
  const { t } = useI18n();
  const format = useFormat();
  const plans = usePlans();
  const titleId = useId();
  const [tenant, setTenant] = useState("");
  const [what, setWhat] = useState<"plan" | "points">("plan");
  const [planId, setPlanId] = useState("");
  const [points, setPoints] = useState("");
  const [reason, setReason] = useState("");
  const [local, setLocal] = useState<Record<string, string>>({});
  const items = plans.data?.items ?? [];
  const chosenPlan = items.some((p) => p.id === planId) ? planId : (items[0]?.id ?? "");
  const grant = useMutation({
    mutationFn: ({ id, body }: { id: string; body: Record<string, unknown> }) =>
      api<Granted>(`/api/v1/admin/tenants/${id}/grant`, { method: "POST", body }),
  });
  const errors = formErrors(t, grant.error, ["plan_id", "points", "reason"]);
  // A 404 without a field is the tenant's.
  const tenantMissing = grant.error instanceof ApiError && grant.error.status === 404 && !grant.error.field;

  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    const problems: Record<string, string> = {};
    if (!isUuid(tenant)) problems.tenant = t("admin.grant.tenantInvalid");
    if (what === "plan" && !chosenPlan) problems.plan_id = t("admin.grant.noPlan");
    if (what === "points" && !(whole(points) >= 1)) problems.points = t("admin.grant.pointsInvalid");
    setLocal(problems);
    if (Object.keys(problems).length > 0) return;
    grant.reset();
    grant.mutate({
      id: tenant.trim().toLowerCase(),
      body:
        what === "plan"
          ? { plan_id: chosenPlan }
          : { points: whole(points), ...(reason.trim() ? { reason: reason.trim() } : {}) },
    });
  };
  const done = grant.data;

  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <div>
        <h2 id={titleId} className="text-lg font-semibold">
          {t("admin.grant")}
        </h2>
        <p className="max-w-3xl text-sm text-slate-700">{t("admin.grantHint")}</p>
      </div>
      <form className="card space-y-4" onSubmit={onSubmit} noValidate aria-label={t("admin.grant")}>
        <Field
          label={t("admin.grant.tenant")}
          value={tenant}
          spellCheck={false}
          autoComplete="off"
          className="input font-mono"
          placeholder="0190f0a2-7c1e-7b3a-9d2e-1a2b3c4d5e6f"
          onChange={(e) => setTenant(e.target.value)}
          error={local.tenant ?? (tenantMissing ? t("admin.grant.tenantMissing") : undefined)}
          hint={t("admin.grant.tenantHint")}
        />
        <fieldset className="space-y-2">
          <legend className="text-sm font-medium text-slate-800">{t("admin.grant.what")}</legend>
          <div className="flex flex-wrap gap-4">
            {(["plan", "points"] as const).map((option) => (
              <label key={option} className="flex items-center gap-2 text-sm">
                <input
                  type="radio"
                  name="grant-what"
                  className="h-4 w-4 accent-emerald-700"
                  checked={what === option}
                  onChange={() => setWhat(option)}
                />
                {t(option === "plan" ? "admin.grant.plan" : "admin.grant.points")}
              </label>
            ))}
          </div>
        </fieldset>
        {what === "plan" ? (
          <SelectField
            label={t("admin.grant.planLabel")}
            value={chosenPlan}
            onChange={(e) => setPlanId(e.target.value)}
            error={local.plan_id ?? errors.fields.plan_id}
          >
            {items.length === 0 ? <option value="">{t("plans.none")}</option> : null}
            {items.map((plan) => (
              <option key={plan.id} value={plan.id}>
                {t("admin.grant.planOption", { name: plan.name, points: format.number(plan.points), days: plan.period_days })}
              </option>
            ))}
          </SelectField>
        ) : (
          <div className="grid gap-4 sm:grid-cols-2">
            <Field
              label={t("admin.grant.pointsLabel")}
              inputMode="numeric"
              value={points}
              onChange={(e) => setPoints(e.target.value)}
              error={local.points ?? errors.fields.points}
            />
            <Field
              label={t("admin.grant.reason")}
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              error={errors.fields.reason}
              hint={t("admin.grant.reasonHint")}
            />
          </div>
        )}
        <Alert>{tenantMissing ? null : errors.form}</Alert>
        <button type="submit" className="btn-primary" disabled={grant.isPending}>
          {grant.isPending ? t("common.wait") : t("admin.grant.submit")}
        </button>
        <div role="status" data-testid="grant-result">
          {done ? (
            <div className="space-y-1 rounded-md border border-emerald-200 bg-emerald-50 p-3 text-sm text-emerald-950">
              <p className="font-semibold">
                {!done.credited
                  ? t("admin.grant.repeat")
                  : done.plan
                    ? t("admin.grant.donePlan", { name: done.plan.name, points: format.number(done.points) })
                    : t("admin.grant.donePoints", { points: format.number(done.points) })}
              </p>
              <p>
                {t("admin.grant.wallet", {
                  tenant: done.tenant_id,
                  balance: format.number(done.balance),
                  available: format.number(done.available),
                })}
              </p>
              {done.plan_expires_at ? <p>{t("admin.grant.until", { date: format.date(done.plan_expires_at) })}</p> : null}
            </div>
          ) : null}
        </div>
      </form>
    </section>
  );
}
