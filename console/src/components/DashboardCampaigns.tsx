// The dashboard's campaigns: those sending or paused with their progress,
// then the latest others; and the latest sends that failed. Both live.

import { useId } from "react";
import { Link } from "wouter";
import { useCampaigns, useRecentFailures } from "../api/campaigns";
import { errorText, useFormat, useI18n } from "../i18n";
import { CampaignProgress, CampaignStatusBadge, campaignWaitText } from "./Campaign";
import { Alert, EmptyState, Spinner } from "./ui";

/** At most this many campaigns on the dashboard. */
const SHOWN = 5;

export function DashboardCampaigns() {
  const { t } = useI18n();
  const format = useFormat();
  const campaigns = useCampaigns();
  const titleId = useId();
  const all = campaigns.data ?? [];
  const active = all.filter((c) => c.status === "running" || c.status === "paused");
  const others = all.filter((c) => c.status !== "running" && c.status !== "paused");
  const shown = [...active, ...others].slice(0, Math.max(SHOWN, active.length));
  return (
    <section className="mt-6" aria-labelledby={titleId} data-testid="dashboard-campaigns">
      <div className="mb-3 flex items-center justify-between gap-3">
        <h2 id={titleId} className="text-lg font-semibold">
          {t("dashboard.campaigns")}
        </h2>
        <p className="flex flex-wrap gap-x-4 text-sm text-slate-700">
          {campaigns.data ? (
            <span>{t("dashboard.campaignsRunning", { count: active.filter((c) => c.status === "running").length })}</span>
          ) : null}
          <Link href="/campaigns" className="font-medium text-emerald-800 underline">
            {t("dashboard.campaignsAll")}
          </Link>
        </p>
      </div>
      {campaigns.error ? <Alert>{errorText(t, campaigns.error)}</Alert> : null}
      {campaigns.isPending ? <Spinner label={t("common.loading")} /> : null}
      {campaigns.data && all.length === 0 ? (
        <EmptyState title={t("campaigns.empty")}>
          <p>{t("campaigns.emptyHint")}</p>
          <Link href="/campaigns/new" className="btn-primary mt-4">
            {t("campaigns.new")}
          </Link>
        </EmptyState>
      ) : null}
      {shown.length > 0 ? (
        <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white">
          {shown.map((c) => {
            const waiting = c.status === "running" || c.status === "paused" ? campaignWaitText(t, format.date, c) : null;
            return (
              <li key={c.id} className="flex flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3" data-campaign-id={c.id}>
                <div className="min-w-0 flex-1">
                  <Link href={`/campaigns/${c.id}`} className="block truncate font-medium text-emerald-800 underline">
                    {c.name}
                  </Link>
                  {waiting ? <p className="text-xs text-amber-900">{waiting}</p> : null}
                </div>
                <CampaignStatusBadge status={c.status} />
                <div className="w-full sm:w-56">
                  <CampaignProgress campaign={c} />
                </div>
              </li>
            );
          })}
        </ul>
      ) : null}
    </section>
  );
}

export function RecentFailures() {
  const { t } = useI18n();
  const format = useFormat();
  const failures = useRecentFailures();
  const titleId = useId();
  const items = failures.data?.items;
  return (
    <section className="mt-6" aria-labelledby={titleId} data-testid="recent-failures">
      <h2 id={titleId} className="mb-3 text-lg font-semibold">
        {t("dashboard.failures")}
      </h2>
      {failures.error ? <Alert>{errorText(t, failures.error)}</Alert> : null}
      {failures.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <p className="text-sm text-slate-700">{t("dashboard.noFailures")}</p> : null}
      {items && items.length > 0 ? (
        <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white">
          {items.map((m) => (
            <li key={m.id} className="px-4 py-3 text-sm" data-message-id={m.id}>
              <p className="flex flex-wrap items-center gap-x-3">
                <span className="font-mono">{m.peer}</span>
                <span className="text-slate-700">{format.date(m.queued_at ?? m.sent_at ?? new Date().toISOString())}</span>
                {m.campaign_id ? (
                  <Link href={`/campaigns/${m.campaign_id}`} className="text-emerald-800 underline">
                    {t("dashboard.failureCampaign")}
                  </Link>
                ) : null}
              </p>
              <p className="text-red-800">{m.error ?? t("dashboard.failureUnknown")}</p>
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}
