// Campaigns: every campaign of the tenant with its status and progress,
// live, and the way to a new one.

import { Link } from "wouter";
import { useCampaigns } from "../api/campaigns";
import { CampaignProgress, CampaignStatusBadge } from "../components/Campaign";
import { Layout } from "../components/Layout";
import { Alert, EmptyState, Spinner } from "../components/ui";
import { errorText, useFormat, useI18n } from "../i18n";

export function Campaigns() {
  const { t } = useI18n();
  const format = useFormat();
  const campaigns = useCampaigns();
  const items = campaigns.data;
  return (
    <Layout
      title={t("campaigns.title")}
      actions={
        <Link href="/campaigns/new" className="btn-primary">
          {t("campaigns.new")}
        </Link>
      }
    >
      {campaigns.error ? <Alert>{errorText(t, campaigns.error)}</Alert> : null}
      {campaigns.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? (
        <EmptyState title={t("campaigns.empty")}>
          <p>{t("campaigns.emptyHint")}</p>
          <Link href="/campaigns/new" className="btn-primary mt-4">
            {t("campaigns.new")}
          </Link>
        </EmptyState>
      ) : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm">
            <caption className="sr-only">{t("campaigns.title")}</caption>
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("campaigns.col.name")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("campaigns.col.status")}
                </th>
                <th scope="col" className="min-w-[12rem] px-4 py-2 font-medium">
                  {t("campaigns.col.progress")}
                </th>
                <th scope="col" className="hidden px-4 py-2 font-medium sm:table-cell">
                  {t("campaigns.col.created")}
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((campaign) => (
                <tr
                  key={campaign.id}
                  className="border-t border-slate-200"
                  data-testid="campaign-row"
                  data-campaign-id={campaign.id}
                >
                  <td className="px-4 py-2">
                    <Link href={`/campaigns/${campaign.id}`} className="font-medium text-emerald-800 underline">
                      {campaign.name}
                    </Link>
                  </td>
                  <td className="px-4 py-2">
                    <CampaignStatusBadge status={campaign.status} />
                  </td>
                  <td className="px-4 py-2">
                    <CampaignProgress campaign={campaign} />
                  </td>
                  <td className="hidden whitespace-nowrap px-4 py-2 sm:table-cell">{format.date(campaign.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Layout>
  );
}
