// The wallet's points and plan as cards: on the dashboard, and with more
// detail on the wallet page.

import type { useWallet } from "../api/queries";
import { errorText, useFormat, useI18n } from "../i18n";
import { daysUntil } from "../lib/time";
import { Alert, Spinner } from "./ui";

type WalletQuery = ReturnType<typeof useWallet>;

/** Points available, with the balance and what is reserved; `hint`: how points are spent. */
export function PointsCard({ wallet, hint = false }: { wallet: WalletQuery; hint?: boolean }) {
  const { t } = useI18n();
  const format = useFormat();
  return (
    <section className="card" aria-labelledby="points-title" data-testid="points">
      <h2 id="points-title" className="text-sm font-medium text-slate-700">
        {t("dashboard.points")}
      </h2>
      {wallet.error ? <Alert>{errorText(t, wallet.error)}</Alert> : null}
      {wallet.data ? (
        <>
          <p className="mt-1 text-3xl font-bold tabular-nums" data-testid="points-available">
            {format.number(wallet.data.available)}
          </p>
          <p className="text-sm text-slate-700">{t("dashboard.pointsAvailable")}</p>
          <dl className="mt-3 grid grid-cols-2 gap-2 text-sm">
            <div>
              <dt className="text-slate-600">{t("dashboard.balance")}</dt>
              <dd className="font-medium tabular-nums" data-testid="points-balance">
                {format.number(wallet.data.balance)}
              </dd>
            </div>
            <div>
              <dt className="text-slate-600">{t("dashboard.reserved")}</dt>
              <dd className="font-medium tabular-nums" data-testid="points-reserved">
                {format.number(wallet.data.reserved)}
              </dd>
            </div>
          </dl>
          {hint ? <p className="mt-3 text-xs text-slate-600">{t("wallet.pointsHint")}</p> : null}
        </>
      ) : wallet.isPending ? (
        <Spinner label={t("common.loading")} />
      ) : null}
    </section>
  );
}

/** The plan, its period and expiry; `limits`: the terms it holds the tenant to. */
export function PlanCard({ wallet, limits = false }: { wallet: WalletQuery; limits?: boolean }) {
  const { t } = useI18n();
  const format = useFormat();
  const plan = wallet.data?.plan;
  const expiresAt = wallet.data?.plan_expires_at;
  return (
    <section className="card" aria-labelledby="plan-title" data-testid="plan">
      <h2 id="plan-title" className="text-sm font-medium text-slate-700">
        {t("dashboard.plan")}
      </h2>
      {wallet.data && plan ? (
        <>
          <p className="mt-1 text-xl font-semibold">{plan.name}</p>
          <p className="text-sm text-slate-700">{t("dashboard.planPeriod", { days: plan.period_days })}</p>
          {expiresAt ? (
            <p
              className={`mt-2 text-sm ${wallet.data.plan_expired ? "font-semibold text-red-700" : "text-slate-800"}`}
              data-testid="plan-expiry"
            >
              {wallet.data.plan_expired
                ? t("dashboard.planExpired", { date: format.date(expiresAt) })
                : t("dashboard.planExpires", {
                    date: format.date(expiresAt),
                    days: Math.max(0, daysUntil(expiresAt, Date.now())),
                  })}
            </p>
          ) : null}
          {limits ? (
            <dl className="mt-3 grid grid-cols-3 gap-2 text-sm">
              {(
                [
                  ["plans.col.sessions", plan.max_sessions],
                  ["plans.col.recipients", plan.max_recipients_per_campaign],
                  ["plans.col.dailyLimit", plan.max_daily_limit],
                ] as const
              ).map(([label, value]) => (
                <div key={label}>
                  <dt className="text-slate-600">{t(label)}</dt>
                  <dd className="font-medium tabular-nums">{value == null ? "—" : format.number(value)}</dd>
                </div>
              ))}
            </dl>
          ) : null}
        </>
      ) : wallet.data ? (
        <p className="mt-2 text-sm text-slate-800">{t("dashboard.noPlan")}</p>
      ) : null}
    </section>
  );
}
