// The wallet: points (live from the event stream), the plan and its
// expiry, the history of points, and the plans on offer (read-only: no
// payments yet, the platform admin grants them).

import { useId } from "react";
import { TRANSACTIONS_PER_PAGE, useMe, usePlans, useTransactions, useWallet } from "../api/queries";
import type { Transaction } from "../api/types";
import { Layout } from "../components/Layout";
import { Pager, useCursorPages } from "../components/Pager";
import { PlansTable } from "../components/Plans";
import { CopyButton } from "../components/Secret";
import { PlanCard, PointsCard } from "../components/WalletCards";
import { WalletNotices } from "../components/WalletNotices";
import { Alert, EmptyState, Spinner } from "../components/ui";
import { errorText, useFormat, useI18n, type MessageKey } from "../i18n";
import { formatSigned, signedPoints } from "../lib/wallet";

export function Wallet() {
  const { t } = useI18n();
  return (
    <Layout title={t("wallet.title")}>
      <div className="space-y-6">
        <Summary />
        <GetPoints />
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

/** How to get a plan or points today: from the platform admin, not online yet. */
function GetPoints() {
  const { t } = useI18n();
  const me = useMe();
  const plans = usePlans();
  const titleId = useId();
  const items = plans.data?.items;
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("wallet.plans")}
      </h2>
      <div className="rounded-lg border border-sky-200 bg-sky-50 p-4 text-sm text-sky-950" data-testid="no-payments">
        <p className="font-semibold">{t("wallet.noPayments")}</p>
        <p className="mt-1">{t("wallet.askAdmin")}</p>
        {me.data ? (
          <div className="mt-3 flex flex-wrap items-center gap-2">
            <span>{t("wallet.accountId")}</span>
            <code className="break-all rounded bg-white px-2 py-1 font-mono text-slate-900" data-testid="account-id">
              {me.data.tenant.id}
            </code>
            <CopyButton value={me.data.tenant.id} label={t("wallet.copyAccountId")} />
          </div>
        ) : null}
      </div>
      {plans.error ? <Alert>{errorText(t, plans.error)}</Alert> : null}
      {plans.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("plans.none")}>{t("plans.noneHint")}</EmptyState> : null}
      {items && items.length > 0 ? <PlansTable plans={items} caption={t("wallet.plans")} /> : null}
    </section>
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
