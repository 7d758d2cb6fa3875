import { Link } from "wouter";
import { useSessions, useWallet } from "../api/queries";
import { DashboardCampaigns, RecentFailures } from "../components/DashboardCampaigns";
import { Layout } from "../components/Layout";
import { TenantFigures } from "../components/Operator";
import { WalletNotices } from "../components/WalletNotices";
import { PlanCard, PointsCard } from "../components/WalletCards";
import { Alert, EmptyState, Meter, Spinner, StatusBadge } from "../components/ui";
import { errorText, useFormat, useI18n } from "../i18n";

/** Today's sends of every number against their daily limits. */
export function todaysSends(sessions: { sent_today: number; daily_limit: number }[]) {
  return sessions.reduce(
    (sum, s) => ({ sent: sum.sent + s.sent_today, limit: sum.limit + s.daily_limit }),
    { sent: 0, limit: 0 },
  );
}

export function Dashboard() {
  const { t } = useI18n();
  const format = useFormat();
  const { sessions, error: sessionsError, isPending: sessionsPending } = useSessions();
  const wallet = useWallet();
  const ready = sessions?.filter((s) => s.status === "ready").length ?? 0;
  const today = todaysSends(sessions ?? []);

  return (
    <Layout title={t("dashboard.title")}>
      <WalletNotices wallet={wallet.data} />
      <div className="grid gap-4 md:grid-cols-3">
        <PointsCard wallet={wallet} />
        <PlanCard wallet={wallet} />

        <section className="card" aria-labelledby="today-title">
          <h2 id="today-title" className="text-sm font-medium text-slate-700">
            {t("dashboard.today")}
          </h2>
          <p className="mt-1 text-3xl font-bold">
            {format.number(today.sent)}
            <span className="text-base font-normal text-slate-700"> / {format.number(today.limit)}</span>
          </p>
          <p className="mb-2 text-sm text-slate-700">{t("dashboard.todayHint")}</p>
          <Meter value={today.sent} max={today.limit} label={t("dashboard.today")} />
        </section>
      </div>

      <TenantFigures />

      <DashboardCampaigns />

      <section className="mt-6" aria-labelledby="numbers-title">
        <div className="mb-3 flex items-center justify-between gap-3">
          <h2 id="numbers-title" className="text-lg font-semibold">
            {t("dashboard.numbers")}
          </h2>
          {sessions && sessions.length > 0 ? (
            <p className="text-sm text-slate-700">{t("dashboard.numbersReady", { ready, total: sessions.length })}</p>
          ) : null}
        </div>
        {sessionsError ? <Alert>{errorText(t, sessionsError)}</Alert> : null}
        {sessionsPending ? <Spinner label={t("common.loading")} /> : null}
        {sessions && sessions.length === 0 ? (
          <EmptyState title={t("dashboard.noNumbers")}>
            <p>{t("dashboard.noNumbersHint")}</p>
            <Link href="/numbers" className="btn-primary mt-4">
              {t("numbers.add")}
            </Link>
          </EmptyState>
        ) : null}
        {sessions && sessions.length > 0 ? (
          <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white">
            {sessions.map((s) => (
              <li key={s.id} className="flex flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3" data-session-id={s.id}>
                <div className="min-w-0 flex-1">
                  <p className="truncate font-medium">{s.name}</p>
                  <p className="text-sm text-slate-700">{s.phone_number ?? t("numbers.notLinked")}</p>
                </div>
                <StatusBadge status={s.status} />
                <div className="w-full sm:w-48">
                  <p className="text-xs text-slate-700">
                    {t("numbers.sentToday", { sent: format.number(s.sent_today), limit: format.number(s.daily_limit) })}
                  </p>
                  <Meter value={s.sent_today} max={s.daily_limit} label={t("numbers.sentTodayOf", { name: s.name })} />
                </div>
              </li>
            ))}
          </ul>
        ) : null}
      </section>

      <RecentFailures />
    </Layout>
  );
}
