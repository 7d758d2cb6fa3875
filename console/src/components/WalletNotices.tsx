// What the wallet warns about, above the wallet and the dashboard: the
// account suspended by the platform operator, the plan ending within 3
// days (or in its grace days, or ended), the balance running low. The
// same facts the API's events (`PlanExpiryWarned`, `PlanRenewalDue`,
// `BalanceLowWarned`, `TenantSuspended`) announce.

import type { Wallet } from "../api/types";
import { useFormat, useI18n } from "../i18n";
import { walletNotices } from "../lib/notices";

export function WalletNotices({ wallet, now = new Date() }: { wallet: Wallet | undefined; now?: Date }) {
  const { t } = useI18n();
  const format = useFormat();
  if (!wallet) return null;
  const notices = walletNotices(wallet, now);
  if (notices.length === 0) return null;
  return (
    <div className="mb-4 space-y-2" data-testid="wallet-notices">
      {notices.map((notice) => (
        <p
          key={notice.kind}
          role="status"
          className={
            notice.severe
              ? "rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-950"
              : "rounded-md border border-amber-200 bg-amber-50 p-3 text-sm text-amber-950"
          }
        >
          {notice.kind === "suspended"
            ? t("notice.suspended", { reason: notice.reason ?? "" })
            : notice.kind === "expired"
              ? t("notice.expired")
              : notice.kind === "grace"
                ? t("notice.grace", { date: format.date(notice.until ?? "") })
                : notice.kind === "expiring"
                  ? t("notice.expiring", { date: format.date(notice.until ?? "") })
                  : t("notice.lowBalance", { points: format.number(wallet.available) })}
        </p>
      ))}
    </div>
  );
}
