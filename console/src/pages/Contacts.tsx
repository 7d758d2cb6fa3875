// Contact lists: every list of the tenant, and the way to a new one.

import { useState } from "react";
import { Link } from "wouter";
import { useContactLists } from "../api/queries";
import { Layout } from "../components/Layout";
import { Alert, Dialog, EmptyState, Spinner } from "../components/ui";
import { errorText, useFormat, useI18n, type MessageKey } from "../i18n";
import { GroupImport } from "./GroupImport";

export function Contacts() {
  const { t } = useI18n();
  const format = useFormat();
  const lists = useContactLists();
  const items = lists.data?.items;
  const [group, setGroup] = useState(false);
  return (
    <Layout
      title={t("contacts.title")}
      actions={
        <div className="flex flex-wrap gap-2">
          <Link href="/contacts/upload" className="btn-primary">
            {t("contacts.upload")}
          </Link>
          <button type="button" className="btn-secondary" onClick={() => setGroup(true)}>
            {t("group.open")}
          </button>
        </div>
      }
    >
      {lists.error ? <Alert>{errorText(t, lists.error)}</Alert> : null}
      {lists.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? (
        <EmptyState title={t("contacts.empty")}>
          <p>{t("contacts.emptyHint")}</p>
          <Link href="/contacts/upload" className="btn-primary mt-4">
            {t("contacts.upload")}
          </Link>
        </EmptyState>
      ) : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm">
            <caption className="sr-only">{t("contacts.title")}</caption>
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("contacts.col.name")}
                </th>
                <th scope="col" className="px-4 py-2 text-right font-medium">
                  {t("contacts.col.contacts")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("contacts.col.source")}
                </th>
                <th scope="col" className="px-4 py-2 font-medium">
                  {t("contacts.col.created")}
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((list) => (
                <tr key={list.id} className="border-t border-slate-200" data-testid="contact-list-row" data-list-id={list.id}>
                  <td className="px-4 py-2">
                    <Link href={`/contacts/${list.id}`} className="font-medium text-emerald-800 underline">
                      {list.name}
                    </Link>
                  </td>
                  <td className="px-4 py-2 text-right tabular-nums">{format.number(list.accepted)}</td>
                  <td className="px-4 py-2">
                    {t(`contacts.source.${list.source_format}` as MessageKey)}
                    {list.source_filename ? <span className="block text-xs text-slate-600">{list.source_filename}</span> : null}
                  </td>
                  <td className="whitespace-nowrap px-4 py-2">{format.date(list.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Dialog open={group} title={t("group.title")} onClose={() => setGroup(false)}>
        <GroupImport onDone={() => setGroup(false)} />
      </Dialog>
    </Layout>
  );
}
