import type { Campaign, CampaignCounts, CampaignStatus, MessageStatus } from "../api/types";
import { isMessageKey, useFormat, useI18n, type MessageKey, type Translate } from "../i18n";
import { doneOf } from "../lib/campaigns";

const BADGE: Record<CampaignStatus, string> = {
  draft: "bg-slate-100 text-slate-800",
  scheduled: "bg-sky-100 text-sky-900",
  running: "bg-emerald-100 text-emerald-900",
  paused: "bg-amber-100 text-amber-900",
  completed: "bg-slate-200 text-slate-900",
  cancelled: "bg-red-100 text-red-900",
};

export function CampaignStatusBadge({ status }: { status: CampaignStatus }) {
  const { t } = useI18n();
  return (
    <span
      data-campaign-status={status}
      className={`inline-flex items-center rounded-full px-2.5 py-0.5 text-xs font-semibold ${BADGE[status] ?? BADGE.draft}`}
    >
      {t(`campaign.status.${status}` as MessageKey)}
    </span>
  );
}

const MESSAGE_BADGE: Record<MessageStatus, string> = {
  queued: "bg-slate-100 text-slate-800",
  sending: "bg-sky-100 text-sky-900",
  sent: "bg-emerald-100 text-emerald-900",
  delivered: "bg-emerald-100 text-emerald-900",
  read: "bg-violet-100 text-violet-900",
  failed: "bg-red-100 text-red-900",
  cancelled: "bg-slate-200 text-slate-800",
  unknown: "bg-amber-100 text-amber-900",
  received: "bg-slate-100 text-slate-800",
};

export function MessageStatusBadge({ status }: { status: MessageStatus }) {
  const { t } = useI18n();
  return (
    <span
      data-message-status={status}
      className={`inline-flex items-center rounded-full px-2 py-0.5 text-xs font-semibold ${MESSAGE_BADGE[status] ?? MESSAGE_BADGE.queued}`}
    >
      {t(`message.status.${status}` as MessageKey)}
    </span>
  );
}

/**
 * How far a campaign got, as a progress bar: what went out, what failed,
 * what was not sent (cancelled, unknown), of all its recipients.
 */
export function CampaignBar({ counts, label }: { counts: CampaignCounts; label: string }) {
  const share = (n: number) => `${counts.total > 0 ? Math.min(100, (n / counts.total) * 100) : 0}%`;
  return (
    <div
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={counts.total}
      aria-valuenow={doneOf(counts)}
      className="flex h-2 w-full overflow-hidden rounded-full bg-slate-200"
    >
      <div className="h-full bg-emerald-600" style={{ width: share(counts.sent + counts.delivered + counts.read) }} />
      <div className="h-full bg-red-600" style={{ width: share(counts.failed) }} />
      <div className="h-full bg-slate-500" style={{ width: share(counts.cancelled + counts.unknown) }} />
    </div>
  );
}

/** How far a campaign got: a bar and its words. */
export function CampaignProgress({ campaign }: { campaign: Campaign }) {
  const { t } = useI18n();
  const format = useFormat();
  const { counts } = campaign;
  if (campaign.status === "draft" || campaign.status === "scheduled") {
    return <p className="text-sm text-slate-700">{t("campaign.notStarted")}</p>;
  }
  const sent = counts.sent + counts.delivered + counts.read;
  return (
    <div className="space-y-1">
      <CampaignBar counts={counts} label={t("campaign.progressOf", { name: campaign.name })} />
      <p className="text-xs text-slate-700" data-testid="campaign-progress">
        {t("campaign.progress", { sent: format.number(sent), total: format.number(counts.total) })}
        {counts.failed > 0 ? ` · ${t("campaign.progressFailed", { failed: format.number(counts.failed) })}` : ""}
      </p>
    </div>
  );
}

/**
 * Why a campaign sends nothing for now, in words: paused (by whom, why),
 * waiting (for what, until when), scheduled, or refused at its time.
 */
export function campaignWaitText(t: Translate, date: (iso: string) => string, campaign: Campaign): string | null {
  const until = (iso: string | null | undefined) => (iso ? ` ${t("campaign.until", { date: date(iso) })}` : "");
  switch (campaign.status) {
    case "running": {
      if (!campaign.waiting) return null;
      const key = `campaign.waiting.${campaign.waiting.reason}`;
      const why = isMessageKey(key) ? t(key) : t("campaign.waiting.other", { reason: campaign.waiting.reason });
      return `${why}${until(campaign.waiting.until)}.`;
    }
    case "paused": {
      const reason = campaign.pause_reason;
      switch (reason?.kind) {
        case "auto_consecutive_failures":
          return `${t("campaign.paused.auto", { failures: reason.failures })}${
            campaign.resume_at ? ` ${t("campaign.resumesAt", { date: date(campaign.resume_at) })}` : ""
          }`;
        case "sender_unavailable":
          return t("campaign.paused.sender", { why: t(`campaign.sender.${reason.why}` as MessageKey) });
        case "outside_active_hours":
          return t("campaign.paused.hours");
        default:
          return t("campaign.paused.manual");
      }
    }
    case "scheduled":
      return campaign.scheduled_at ? t("campaign.scheduledFor", { date: date(campaign.scheduled_at) }) : null;
    case "draft":
      if (!campaign.start_refusal) return null;
      return t("campaign.refused", {
        reason: isMessageKey(`error.${campaign.start_refusal.code}`)
          ? t(`error.${campaign.start_refusal.code}` as MessageKey)
          : campaign.start_refusal.message,
      });
    default:
      return null;
  }
}
