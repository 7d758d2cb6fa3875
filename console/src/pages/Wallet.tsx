// The wallet: points (live from the event stream), the plan and its
// expiry, the history of points, and the plans on offer. With payments on
// (Midtrans), a plan or points are bought here: the checkout's payment
// page opens, and the orders list shows each order and its receipt; with
// payments off, the platform admin grants them.

import { useMutation } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { api } from "../api/client";
import {
  ORDERS_PER_PAGE,
  TRANSACTIONS_PER_PAGE,
  useBillingOptions,
  useMe,
  useOrders,
  usePlans,
  useTransactions,
  useWallet,
} from "../api/queries";
import type { BillingOptions, CheckoutView, Order, Plan, Transaction } from "../api/types";
import { SelectField } from "../components/Select";
import { download } from "../lib/download";
import { Layout } from "../components/Layout";
import { Pager, useCursorPages } from "../components/Pager";
import { PlansTable, useRupiah } from "../components/Plans";
import { CopyButton } from "../components/Secret";
import { PlanCard, PointsCard } from "../components/WalletCards";
import { WalletNotices } from "../components/WalletNotices";
import { Alert, EmptyState, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n, type MessageKey } from "../i18n";
import { formatSigned, signedPoints } from "../lib/wallet";

export function Wallet() {
  const { t } = useI18n();
  return (
    <Layout title={t("wallet.title")}>
      <div className="space-y-6">
        <Summary />
        <GetPoints />
        <Orders />
        <History />
      </div>
    </Layout>
  );
}

function Summary() {
  const wallet = useWallet();
  return (
    <div>
      <WalletNotices wallet={wallet.data} />
      <div className="grid gap-4 md:grid-cols-2">
        <PointsCard wallet={wallet} hint />
        <PlanCard wallet={wallet} limits />
      </div>
    </div>
  );
}

/** How to get a plan or points: bought online when payments are on, else
 * from the platform admin. */
function GetPoints() {
  const { t } = useI18n();
  const me = useMe();
  const plans = usePlans();
  const options = useBillingOptions();
  const titleId = useId();
  const items = plans.data?.items;
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("wallet.plans")}
      </h2>
      {options.data?.payments_enabled ? <Buy options={options.data} plans={items ?? []} /> : null}
      {options.data && !options.data.payments_enabled ? <NoPayments tenantId={me.data?.tenant.id} /> : null}
      {plans.error ? <Alert>{errorText(t, plans.error)}</Alert> : null}
      {plans.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("plans.none")}>{t("plans.noneHint")}</EmptyState> : null}
      {items && items.length > 0 ? <PlansTable plans={items} caption={t("wallet.plans")} /> : null}
    </section>
  );
}

/** Payments are off: the platform admin grants plans and points. */
function NoPayments({ tenantId }: { tenantId?: string }) {
  const { t } = useI18n();
  return (
    <div className="rounded-lg border border-sky-200 bg-sky-50 p-4 text-sm text-sky-950" data-testid="no-payments">
        <p className="font-semibold">{t("wallet.noPayments")}</p>
        <p className="mt-1">{t("wallet.askAdmin")}</p>
        {tenantId ? (
          <div className="mt-3 flex flex-wrap items-center gap-2">
            <span>{t("wallet.accountId")}</span>
            <code className="break-all rounded bg-white px-2 py-1 font-mono text-slate-900" data-testid="account-id">
              {tenantId}
            </code>
            <CopyButton value={tenantId} label={t("wallet.copyAccountId")} />
          </div>
        ) : null}
    </div>
  );
}

/** Opens a checkout and sends the browser to Midtrans' payment page. */
function useCheckout() {
  return useMutation({
    mutationFn: (body: { plan_id: string } | { topup_points: number }) =>
      api<CheckoutView>("/api/v1/billing/checkout", { method: "POST", body }),
    onSuccess: (checkout) => {
      window.location.assign(checkout.redirect_url);
    },
  });
}

/** Buy a plan or points through Midtrans. */
function Buy({ options, plans }: { options: BillingOptions; plans: Plan[] }) {
  const { t } = useI18n();
  const format = useFormat();
  const rupiah = useRupiah();
  const [planId, setPlanId] = useState("");
  const [points, setPoints] = useState(String(options.topup.min_points));
  const plan = useCheckout();
  const topup = useCheckout();
  const chosen = plans.find((p) => p.id === planId) ?? plans[0];
  const count = Number.parseInt(points, 10);
  const valid = Number.isInteger(count) && count >= options.topup.min_points && count <= options.topup.max_points;
  const topupErrors = formErrors(t, topup.error, ["topup_points"]);
  const onPlan = (e: FormEvent) => {
    e.preventDefault();
    if (chosen) plan.mutate({ plan_id: chosen.id });
  };
  const onTopup = (e: FormEvent) => {
    e.preventDefault();
    if (valid) topup.mutate({ topup_points: count });
  };
  return (
    <div className="space-y-3" data-testid="buy">
      {!options.production ? <p className="text-sm text-amber-900">{t("billing.sandbox")}</p> : null}
      <div className="grid gap-4 md:grid-cols-2">
        {plans.length > 0 ? (
          <form className="card space-y-3" onSubmit={onPlan} noValidate aria-label={t("billing.buyPlanTitle")}>
            <h3 className="font-semibold">{t("billing.buyPlanTitle")}</h3>
            <SelectField label={t("billing.plan")} value={chosen?.id ?? ""} onChange={(e) => setPlanId(e.target.value)}>
              {plans.map((p) => (
                <option key={p.id} value={p.id}>
                  {t("billing.planOption", { name: p.name, price: rupiah(p.price), points: format.number(p.points), days: p.period_days })}
                </option>
              ))}
            </SelectField>
            <Alert>{plan.error ? errorText(t, plan.error) : null}</Alert>
            <button type="submit" className="btn-primary" disabled={plan.isPending || plan.isSuccess || !chosen}>
              {plan.isPending || plan.isSuccess ? t("billing.redirecting") : t("billing.buyPlan")}
            </button>
          </form>
        ) : null}
        <form className="card space-y-3" onSubmit={onTopup} noValidate aria-label={t("billing.buyPointsTitle")}>
          <h3 className="font-semibold">{t("billing.buyPointsTitle")}</h3>
          <Field
            label={t("billing.points")}
            inputMode="numeric"
            value={points}
            onChange={(e) => setPoints(e.target.value)}
            error={
              topupErrors.fields.topup_points ??
              (points !== "" && !valid
                ? t("billing.pointsRange", { min: format.number(options.topup.min_points), max: format.number(options.topup.max_points) })
                : undefined)
            }
            hint={t("billing.pointPrice", { price: rupiah(options.topup.price_per_point) })}
          />
          <p className="text-sm" data-testid="topup-price">
            {valid ? t("billing.total", { price: rupiah(count * options.topup.price_per_point) }) : ""}
          </p>
          <Alert>{topupErrors.form}</Alert>
          <button type="submit" className="btn-primary" disabled={!valid || topup.isPending || topup.isSuccess}>
            {topup.isPending || topup.isSuccess ? t("billing.redirecting") : t("billing.buyPoints")}
          </button>
        </form>
      </div>
    </div>
  );
}

/** The tenant's orders, each with its receipt once paid. */
function Orders() {
  const { t } = useI18n();
  const options = useBillingOptions();
  const pages = useCursorPages();
  const page = useOrders(pages.cursor);
  const items = page.data?.items;
  const titleId = useId();
  // Payments off and nothing ever ordered: nothing to show.
  if (!options.data?.payments_enabled && items && items.length === 0 && pages.number === 1) return null;
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("billing.orders")}
      </h2>
      {page.error ? <Alert>{errorText(t, page.error)}</Alert> : null}
      {page.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 && pages.number === 1 ? <EmptyState title={t("billing.ordersEmpty")} /> : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm" data-testid="orders">
            <caption className="sr-only">{t("billing.ordersCaption", { n: pages.number, size: ORDERS_PER_PAGE })}</caption>
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">
                  {t("billing.col.when")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("billing.col.item")}
                </th>
                <th scope="col" className="px-4 py-2 text-right font-medium">
                  {t("billing.col.amount")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("billing.col.status")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  <span className="sr-only">{t("billing.col.receipt")}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((order) => (
                <OrderRow key={order.id} order={order} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager pages={pages} nextCursor={page.data?.next_cursor} loading={page.isPlaceholderData} label={t("billing.pages")} />
    </section>
  );
}

function OrderRow({ order }: { order: Order }) {
  const { t } = useI18n();
  const format = useFormat();
  const rupiah = useRupiah();
  const receipt = useMutation({
    mutationFn: () => download(`/api/v1/billing/orders/${order.id}/receipt.pdf`, `receipt-${order.id}.pdf`),
  });
  const item = order.plan
    ? t("billing.item.plan", { name: order.plan.name, days: order.plan.period_days })
    : t("billing.item.topup", { points: format.number(order.points) });
  return (
    <tr className="border-t border-slate-200 align-top" data-testid="order" data-status={order.status}>
      <td className="hidden whitespace-nowrap px-4 py-2 sm:table-cell">{format.date(order.created_at)}</td>
      <td className="px-4 py-2">
        <span className="font-medium">{item}</span>
        <span className="block text-xs text-slate-700 sm:hidden">{format.date(order.created_at)}</span>
      </td>
      <td className="whitespace-nowrap px-4 py-2 text-right tabular-nums">{rupiah(order.amount)}</td>
      <td className="px-4 py-2" data-testid="order-status">
        {t(`billing.status.${order.status}` as MessageKey)}
        {order.failure_reason ? (
          <span className="block text-xs text-slate-700">{t(`billing.failure.${order.failure_reason}` as MessageKey)}</span>
        ) : null}
        {order.points_owed > 0 ? (
          <span className="block text-xs text-red-800">{t("billing.owed", { points: format.number(order.points_owed) })}</span>
        ) : null}
      </td>
      <td className="whitespace-nowrap px-4 py-2">
        {order.paid_at ? (
          <button type="button" className="btn-secondary" onClick={() => receipt.mutate()} disabled={receipt.isPending}>
            {t("billing.receipt")}
          </button>
        ) : order.redirect_url ? (
          <a className="btn-secondary" href={order.redirect_url}>
            {t("billing.payNow")}
          </a>
        ) : null}
        {receipt.error ? <Alert>{errorText(t, receipt.error)}</Alert> : null}
      </td>
    </tr>
  );
}

function History() {
  const { t } = useI18n();
  const pages = useCursorPages();
  const page = useTransactions(pages.cursor);
  const items = page.data?.items;
  const titleId = useId();
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("wallet.history")}
      </h2>
      {page.error ? <Alert>{errorText(t, page.error)}</Alert> : null}
      {page.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 && pages.number === 1 ? (
        <EmptyState title={t("wallet.historyEmpty")}>{t("wallet.historyEmptyHint")}</EmptyState>
      ) : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm" data-testid="transactions">
            <caption className="sr-only">
              {t("wallet.historyCaption", { n: pages.number, size: TRANSACTIONS_PER_PAGE })}
            </caption>
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">
                  {t("wallet.col.when")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("wallet.col.kind")}
                </th>
                <th scope="col" className="px-4 py-2 text-right font-medium">
                  {t("wallet.col.points")}
                </th>
                <th scope="col" className="px-4 py-2 text-right font-medium">
                  {t("wallet.col.balanceAfter")}
                </th>
                <th scope="col" className="hidden px-4 py-2 text-right font-medium sm:table-cell">
                  {t("wallet.col.availableAfter")}
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((transaction) => (
                <TransactionRow key={transaction.id} transaction={transaction} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager pages={pages} nextCursor={page.data?.next_cursor} loading={page.isPlaceholderData} label={t("wallet.pages")} />
    </section>
  );
}

function TransactionRow({ transaction }: { transaction: Transaction }) {
  const { t } = useI18n();
  const format = useFormat();
  const signed = signedPoints(transaction);
  return (
    <tr className="border-t border-slate-200 align-top" data-testid="transaction" data-kind={transaction.kind}>
      <td className="hidden whitespace-nowrap px-4 py-2 sm:table-cell">{format.date(transaction.created_at)}</td>
      <td className="px-4 py-2">
        <span className="font-medium">{t(`wallet.kind.${transaction.kind}` as MessageKey)}</span>
        {/* On a phone, the time goes under the kind. */}
        <span className="block text-xs text-slate-700 sm:hidden">{format.date(transaction.created_at)}</span>
        {transaction.reference ? (
          <span className="block max-w-[9rem] truncate font-mono text-xs text-slate-600 sm:max-w-[16rem]" title={transaction.reference}>
            {transaction.reference}
          </span>
        ) : null}
      </td>
      <td
        className={`whitespace-nowrap px-4 py-2 text-right font-semibold tabular-nums ${
          signed > 0 ? "text-emerald-800" : signed < 0 ? "text-red-800" : "text-slate-700"
        }`}
        data-testid="transaction-points"
      >
        {formatSigned(signed, format.number)}
      </td>
      <td className="px-4 py-2 text-right tabular-nums" data-testid="transaction-balance">
        {format.number(transaction.balance_after)}
      </td>
      <td className="hidden px-4 py-2 text-right tabular-nums sm:table-cell">{format.number(transaction.available_after)}</td>
    </tr>
  );
}
