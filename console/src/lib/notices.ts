// The wallet's notices, decided from the wallet alone (see
// components/WalletNotices.tsx).

import type { Wallet } from "../api/types";

export type Notice = {
  kind: "suspended" | "expired" | "grace" | "expiring" | "lowBalance";
  severe: boolean;
  reason?: string;
  until?: string;
};

const DAY = 24 * 60 * 60 * 1000;

/** The notices a wallet calls for at `now`, most severe first. */
export function walletNotices(wallet: Wallet, now: Date): Notice[] {
  const notices: Notice[] = [];
  if (wallet.suspended_reason) notices.push({ kind: "suspended", severe: true, reason: wallet.suspended_reason });
  if (wallet.plan && wallet.plan_expires_at) {
    const ends = Date.parse(wallet.plan_expires_at);
    const until = wallet.sending_until ?? wallet.plan_expires_at;
    const stops = Date.parse(until);
    if (wallet.plan_expired || now.getTime() >= stops) notices.push({ kind: "expired", severe: true });
    else if (now.getTime() >= ends) notices.push({ kind: "grace", severe: true, until });
    else if (ends - now.getTime() <= 3 * DAY) notices.push({ kind: "expiring", severe: false, until: wallet.plan_expires_at });
  }
  if (wallet.low_balance) notices.push({ kind: "lowBalance", severe: false });
  return notices;
}
