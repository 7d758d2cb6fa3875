// The plans on offer, as a table: what the wallet shows an owner and the
// admin page shows the platform admin.

import { useMemo } from "react";
import type { Plan } from "../api/types";
import { useFormat, useI18n } from "../i18n";

/** Rupiah, without decimals, in the language's conventions. */
export function useRupiah() {
  const { lang } = useI18n();
  return useMemo(() => {
    const format = new Intl.NumberFormat(lang === "id" ? "id-ID" : "en-GB", {
      style: "currency",
      currency: "IDR",
      maximumFractionDigits: 0,
    });
    return (amount: number) => format.format(amount);
  }, [lang]);
}

export function PlansTable({ plans, caption }: { plans: Plan[]; caption: string }) {
  const { t } = useI18n();
  const format = useFormat();
  const rupiah = useRupiah();
  return (
    <>
      {/* On a phone: one card per plan, every term in view. */}
      <ul className="space-y-3 sm:hidden" aria-label={caption}>
        {plans.map((plan) => (
          <li key={plan.id} className="card" data-plan-id={plan.id}>
            <div className="flex items-baseline justify-between gap-3">
              <p className="font-semibold">{plan.name}</p>
              <p className="whitespace-nowrap font-semibold tabular-nums">{rupiah(plan.price)}</p>
            </div>
            <dl className="mt-2 grid grid-cols-2 gap-x-3 gap-y-1 text-sm">
              {(
                [
                  ["plans.col.points", format.number(plan.points)],
                  ["plans.col.period", t("plans.days", { days: plan.period_days })],
                  ["plans.col.sessions", format.number(plan.max_sessions)],
                  ["plans.col.recipients", format.number(plan.max_recipients_per_campaign)],
                  ["plans.col.dailyLimit", format.number(plan.max_daily_limit)],
                ] as const
              ).map(([label, value]) => (
                <div key={label}>
                  <dt className="text-slate-600">{t(label)}</dt>
                  <dd className="font-medium tabular-nums">{value}</dd>
                </div>
              ))}
            </dl>
          </li>
        ))}
      </ul>
      <div className="hidden overflow-x-auto rounded-lg border border-slate-200 bg-white sm:block">
        <table className="w-full text-left text-sm" data-testid="plans-table">
          <caption className="sr-only">{caption}</caption>
          <thead className="bg-slate-50 text-slate-700">
            <tr>
              <th scope="col" className="px-4 py-2 font-medium">
                {t("plans.col.name")}
              </th>
              <th scope="col" className="px-4 py-2 text-right font-medium">
                {t("plans.col.points")}
              </th>
              <th scope="col" className="px-4 py-2 text-right font-medium">
                {t("plans.col.period")}
              </th>
              <th scope="col" className="px-4 py-2 text-right font-medium">
                {t("plans.col.sessions")}
              </th>
              <th scope="col" className="px-4 py-2 text-right font-medium">
                {t("plans.col.recipients")}
              </th>
              <th scope="col" className="px-4 py-2 text-right font-medium">
                {t("plans.col.dailyLimit")}
              </th>
              <th scope="col" className="px-4 py-2 text-right font-medium">
                {t("plans.col.price")}
              </th>
            </tr>
          </thead>
          <tbody>
            {plans.map((plan) => (
              <tr key={plan.id} className="border-t border-slate-200" data-testid="plan-row" data-plan-id={plan.id}>
                <th scope="row" className="px-4 py-2 font-medium">
                  {plan.name}
                </th>
                <td className="px-4 py-2 text-right tabular-nums">{format.number(plan.points)}</td>
                <td className="whitespace-nowrap px-4 py-2 text-right tabular-nums">{t("plans.days", { days: plan.period_days })}</td>
                <td className="px-4 py-2 text-right tabular-nums">{format.number(plan.max_sessions)}</td>
                <td className="px-4 py-2 text-right tabular-nums">{format.number(plan.max_recipients_per_campaign)}</td>
                <td className="px-4 py-2 text-right tabular-nums">{format.number(plan.max_daily_limit)}</td>
                <td className="whitespace-nowrap px-4 py-2 text-right tabular-nums">{rupiah(plan.price)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
