// One contact list: its contacts page by page, removing one or the whole
// list, and checking which numbers are on WhatsApp with live progress.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState } from "react";
import { Link, useLocation } from "wouter";
import { api } from "../api/client";
import { keys, useContactList, useContacts, useListCheck, useSessions } from "../api/queries";
import type { Contact, ContactList as List, ListCheck } from "../api/types";
import { Layout } from "../components/Layout";
import { Pager, useCursorPages } from "../components/Pager";
import { SelectField } from "../components/Select";
import { Alert, ConfirmActions, Dialog, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n, type MessageKey } from "../i18n";
import { mergeCheck, useCheckProgress, useListChecked } from "../lib/checks";

type Confirm = { kind: "list" } | { kind: "contact"; contact: Contact } | null;

export function ContactList({ params }: { params: { id: string } }) {
  const { t } = useI18n();
  const list = useContactList(params.id);
  const [confirm, setConfirm] = useState<Confirm>(null);
  return (
    <Layout
      title={list.data?.name ?? t("list.title")}
      actions={
        list.data ? (
          <button type="button" className="btn-secondary text-red-800" onClick={() => setConfirm({ kind: "list" })}>
            {t("list.delete")}
          </button>
        ) : null
      }
    >
      <p className="mb-4 text-sm">
        <Link href="/contacts" className="font-medium text-emerald-800 underline">
          {t("list.back")}
        </Link>
      </p>
      {list.error ? <Alert>{errorText(t, list.error)}</Alert> : null}
      {list.isPending ? <Spinner label={t("common.loading")} /> : null}
      {list.data ? (
        <div className="space-y-6">
          <Summary list={list.data} />
          <CheckPanel list={list.data} />
          <Contacts list={list.data} onDelete={(contact) => setConfirm({ kind: "contact", contact })} />
        </div>
      ) : null}
      <Dialog
        open={confirm !== null}
        title={confirm?.kind === "list" ? t("list.delete.title") : t("contact.delete.title")}
        onClose={() => setConfirm(null)}
      >
        {confirm && list.data ? <ConfirmDelete list={list.data} what={confirm} onDone={() => setConfirm(null)} /> : null}
      </Dialog>
    </Layout>
  );
}

function Summary({ list }: { list: List }) {
  const { t } = useI18n();
  const format = useFormat();
  return (
    <dl className="grid grid-cols-2 gap-3 sm:grid-cols-4">
      {[
        [t("list.contacts"), format.number(list.accepted)],
        [t("list.rejected"), format.number(list.rejected)],
        [t("contacts.col.source"), t(`contacts.source.${list.source_format}` as MessageKey)],
        [t("contacts.col.created"), format.date(list.created_at)],
      ].map(([label, value]) => (
        <div key={label} className="card">
          <dt className="text-sm text-slate-600">{label}</dt>
          <dd className="font-semibold">{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The list's number check: start it with a ready number, watch it, cancel it. */
function CheckPanel({ list }: { list: List }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const { sessions } = useSessions();
  const ready = (sessions ?? []).filter((s) => s.status === "ready");
  const [sessionId, setSessionId] = useState("");
  const chosen = ready.some((s) => s.id === sessionId) ? sessionId : (ready[0]?.id ?? "");
  // A check may exist when a contact was ever checked or the stream saw one start.
  const firstPage = useContacts(list.id, null);
  const seen = useListChecked(list.id);
  const mayHaveCheck = seen || !!firstPage.data?.items.some((c) => c.whatsapp_checked_at !== null);
  const latest = useListCheck(list.id, mayHaveCheck);
  const live = useCheckProgress(latest.data?.job_id);
  const check: ListCheck | null = latest.data ? mergeCheck(latest.data, live) : null;
  const running = check?.status === "running";
  const titleId = useId();

  const start = useMutation({
    mutationFn: () => api<ListCheck>(`/api/v1/contact-lists/${list.id}/check`, { method: "POST", body: { session_id: chosen } }),
    onSuccess: (started) => client.setQueryData(keys.check(list.id), started),
  });
  const cancel = useMutation({
    mutationFn: () => api<void>(`/api/v1/contact-lists/${list.id}/check`, { method: "DELETE" }),
    onSettled: () => client.invalidateQueries({ queryKey: keys.check(list.id) }),
  });
  const errors = formErrors(t, start.error, ["session_id"]);

  return (
    <section className="card space-y-4" aria-labelledby={titleId} data-testid="check-panel" data-check-status={check?.status ?? "none"}>
      <div>
        <h2 id={titleId} className="font-semibold">
          {t("check.title")}
        </h2>
        <p className="text-sm text-slate-700">{t("check.hint")}</p>
      </div>
      {check ? (
        <div className="space-y-2">
          <p role="status" className="text-sm font-medium">
            {t(`check.status.${check.status}` as MessageKey)}
            {check.failure ? ` ${t(`check.failure.${check.failure}` as MessageKey)}` : ""}
          </p>
          <div
            role="progressbar"
            aria-label={t("check.progress")}
            aria-valuemin={0}
            aria-valuemax={check.contacts}
            aria-valuenow={check.checked}
            className="h-3 w-full overflow-hidden rounded-full bg-slate-200"
          >
            <div className="flex h-full" style={{ width: `${check.contacts > 0 ? Math.min(100, (check.checked / check.contacts) * 100) : 0}%` }}>
              <div className="h-full bg-emerald-600" style={{ flexGrow: check.on_whatsapp }} />
              <div className="h-full bg-slate-500" style={{ flexGrow: check.not_on_whatsapp }} />
            </div>
          </div>
          <p className="text-sm text-slate-800" data-testid="check-counts">
            {t("check.counts", {
              checked: format.number(check.checked),
              contacts: format.number(check.contacts),
              on: format.number(check.on_whatsapp),
              off: format.number(check.not_on_whatsapp),
            })}
          </p>
        </div>
      ) : null}
      {running ? (
        <>
          <Alert>{cancel.error ? errorText(t, cancel.error) : null}</Alert>
          <button type="button" className="btn-secondary" disabled={cancel.isPending} onClick={() => cancel.mutate()}>
            {t("check.cancel")}
          </button>
        </>
      ) : ready.length === 0 ? (
        <p className="text-sm text-slate-700">
          {t("check.noReady")}{" "}
          <Link href="/numbers" className="font-medium text-emerald-800 underline">
            {t("check.toNumbers")}
          </Link>
        </p>
      ) : (
        <form
          className="flex flex-wrap items-end gap-3"
          onSubmit={(event) => {
            event.preventDefault();
            start.mutate();
          }}
        >
          <div className="min-w-[14rem] flex-1">
            <SelectField
              label={t("check.session")}
              value={chosen}
              onChange={(e) => setSessionId(e.target.value)}
              error={errors.fields.session_id}
            >
              {ready.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name}
                  {s.phone_number ? ` (${s.phone_number})` : ""}
                </option>
              ))}
            </SelectField>
          </div>
          <button type="submit" className="btn-primary" disabled={start.isPending || list.accepted === 0}>
            {check ? t("check.again") : t("check.start")}
          </button>
        </form>
      )}
      <Alert>{errors.form}</Alert>
    </section>
  );
}

function WhatsAppStatus({ contact }: { contact: Contact }) {
  const { t } = useI18n();
  if (contact.on_whatsapp === null) return <span className="text-slate-600">{t("contact.wa.unknown")}</span>;
  return contact.on_whatsapp ? (
    <span className="inline-flex rounded-full bg-emerald-100 px-2 py-0.5 text-xs font-semibold text-emerald-900" data-wa="on">
      {t("contact.wa.on")}
    </span>
  ) : (
    <span className="inline-flex rounded-full bg-slate-200 px-2 py-0.5 text-xs font-semibold text-slate-800" data-wa="off">
      {t("contact.wa.off")}
    </span>
  );
}

function Contacts({ list, onDelete }: { list: List; onDelete: (contact: Contact) => void }) {
  const { t } = useI18n();
  const pages = useCursorPages();
  const page = useContacts(list.id, pages.cursor);
  const items = page.data?.items;
  const titleId = useId();
  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <h2 id={titleId} className="text-lg font-semibold">
        {t("list.contactsTitle")}
      </h2>
      {page.error ? <Alert>{errorText(t, page.error)}</Alert> : null}
      {page.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <p className="text-sm text-slate-700">{t("list.noContacts")}</p> : null}
      {items && items.length > 0 ? (
        <div className="overflow-x-auto rounded-lg border border-slate-200 bg-white">
          <table className="w-full text-left text-sm" data-testid="contacts-table">
            <thead className="bg-slate-50 text-slate-700">
              <tr>
                <th scope="col" className="hidden px-3 py-2 font-medium sm:table-cell">
                  {t("report.row")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("contact.phone")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("contact.name")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  {t("contact.whatsapp")}
                </th>
                <th scope="col" className="px-3 py-2 font-medium">
                  <span className="sr-only">{t("contact.actions")}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((contact) => (
                <tr key={contact.row} className="border-t border-slate-200" data-testid="contact-row" data-phone={contact.phone}>
                  <td className="hidden px-3 py-1.5 tabular-nums sm:table-cell">{contact.row}</td>
                  <td className="whitespace-nowrap px-3 py-1.5 font-mono">{contact.phone}</td>
                  <td className="px-3 py-1.5">{contact.name ?? ""}</td>
                  <td className="px-3 py-1.5">
                    <WhatsAppStatus contact={contact} />
                  </td>
                  <td className="px-3 py-1.5 text-right">
                    <button
                      type="button"
                      className="btn-secondary px-2 py-1 text-xs text-red-800"
                      onClick={() => onDelete(contact)}
                      aria-label={t("contact.deleteOne", { phone: contact.phone })}
                    >
                      {t("contact.delete")}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <Pager pages={pages} nextCursor={page.data?.next_cursor} loading={page.isPlaceholderData} label={t("list.pages")} />
    </section>
  );
}

function ConfirmDelete({ list, what, onDone }: { list: List; what: NonNullable<Confirm>; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const remove = useMutation({
    mutationFn: () =>
      what.kind === "list"
        ? api<void>(`/api/v1/contact-lists/${list.id}`, { method: "DELETE" })
        : api<void>(`/api/v1/contact-lists/${list.id}/contacts/${what.contact.row}`, { method: "DELETE" }),
    onSuccess: async () => {
      if (what.kind === "list") {
        // Away first: the list's own queries would ask for it again (a 404).
        navigate("/contacts");
        await client.invalidateQueries({ queryKey: keys.lists, exact: true });
      } else {
        await client.invalidateQueries({ queryKey: keys.lists });
      }
      onDone();
    },
  });
  return (
    <div className="space-y-4">
      <p>
        {what.kind === "list"
          ? t("list.delete.body", { name: list.name, count: list.accepted })
          : t("contact.delete.body", { phone: what.contact.phone })}
      </p>
      <ConfirmActions
        error={remove.error}
        pending={remove.isPending}
        confirm={t("contact.delete.confirm")}
        onConfirm={() => remove.mutate()}
        onCancel={onDone}
      />
    </div>
  );
}
