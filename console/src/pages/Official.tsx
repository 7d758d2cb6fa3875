// Official numbers: a WhatsApp Business number on Meta's Cloud API. It is
// added with the credentials of the Meta app it belongs to (no QR code),
// Meta is told where to send its events, and its message templates (the
// only way such a number starts a conversation) are synced from Meta.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";
import { api } from "../api/client";
import { keys } from "../api/queries";
import type { Session, TemplateList, WhatsappTemplate } from "../api/types";
import { Alert, Field, Spinner, StatusBadge } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n } from "../i18n";

export const templateKeys = {
  of: (session: string) => ["templates", session] as const,
};

/** The query of a Cloud API session's templates, as last synced. */
export function templatesQuery(session: string) {
  return {
    queryKey: templateKeys.of(session),
    queryFn: ({ signal }: { signal: AbortSignal }) => api<TemplateList>(`/api/v1/sessions/${session}/templates`, { signal }),
  };
}

/** A Cloud API session's templates, as last synced. */
export function useTemplates(session: string | undefined) {
  return useQuery({ ...templatesQuery(session ?? ""), enabled: !!session });
}

/** Syncs a Cloud API session's templates from Meta (`waba_id` when not stored yet). */
export function useSyncTemplates(session: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (wabaId: string | null) =>
      api<TemplateList>(`/api/v1/sessions/${session}/templates/sync`, {
        method: "POST",
        body: wabaId ? { waba_id: wabaId } : {},
      }),
    onSuccess: (list) => client.setQueryData(templateKeys.of(session), list),
  });
}

/** A verify token Meta presents when it checks the callback URL. */
function newVerifyToken(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `wablast-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const FIELDS = [
  "name",
  "daily_limit",
  "driver_config",
  "driver_config.phone_number_id",
  "driver_config.waba_id",
  "driver_config.access_token",
  "driver_config.app_secret",
  "driver_config.verify_token",
  "driver_config.api_base",
] as const;

/** Adds an official number and starts it; `onCreated` gets it with its verify token. */
export function AddOfficialNumber({ onCreated }: { onCreated: (id: string, verifyToken: string) => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [form, setForm] = useState({
    name: "",
    phone_number_id: "",
    waba_id: "",
    access_token: "",
    app_secret: "",
    verify_token: newVerifyToken(),
    api_base: "",
    limit: "",
  });
  const set = (field: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [field]: e.target.value });
  const create = useMutation({
    mutationFn: async () => {
      const trimmed = (v: string) => v.trim();
      const session = await api<Session>("/api/v1/sessions", {
        method: "POST",
        body: {
          name: trimmed(form.name),
          driver: "cloud",
          ...(form.limit.trim() ? { daily_limit: Number(form.limit) } : {}),
          driver_config: {
            phone_number_id: trimmed(form.phone_number_id),
            access_token: trimmed(form.access_token),
            app_secret: trimmed(form.app_secret),
            verify_token: trimmed(form.verify_token),
            ...(form.waba_id.trim() ? { waba_id: trimmed(form.waba_id) } : {}),
            ...(form.api_base.trim() ? { api_base: trimmed(form.api_base) } : {}),
          },
        },
      });
      await api<Session>(`/api/v1/sessions/${session.id}/start`, { method: "POST" });
      return session;
    },
    onSuccess: async (session) => {
      await client.invalidateQueries({ queryKey: keys.sessions });
      onCreated(session.id, form.verify_token.trim());
    },
  });
  const errors = formErrors(t, create.error, FIELDS);
  const fieldError = (name: string) => errors.fields[`driver_config.${name}`];
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <form onSubmit={submit} noValidate className="space-y-4" data-testid="official-form">
      <p className="text-sm text-slate-700">{t("official.intro")}</p>
      <Field label={t("numbers.form.name")} value={form.name} onChange={set("name")} error={errors.fields.name} required />
      <Field
        label={t("official.phoneNumberId")}
        inputMode="numeric"
        value={form.phone_number_id}
        onChange={set("phone_number_id")}
        error={fieldError("phone_number_id")}
        hint={t("official.phoneNumberIdHint")}
        required
      />
      <Field
        label={t("official.wabaId")}
        inputMode="numeric"
        value={form.waba_id}
        onChange={set("waba_id")}
        error={fieldError("waba_id")}
        hint={t("official.wabaIdHint")}
      />
      <Field
        label={t("official.accessToken")}
        type="password"
        autoComplete="off"
        value={form.access_token}
        onChange={set("access_token")}
        error={fieldError("access_token")}
        hint={t("official.accessTokenHint")}
        required
      />
      <Field
        label={t("official.appSecret")}
        type="password"
        autoComplete="off"
        value={form.app_secret}
        onChange={set("app_secret")}
        error={fieldError("app_secret")}
        hint={t("official.appSecretHint")}
        required
      />
      <Field
        label={t("official.verifyToken")}
        value={form.verify_token}
        onChange={set("verify_token")}
        error={fieldError("verify_token")}
        hint={t("official.verifyTokenHint")}
        required
      />
      <Field
        label={t("numbers.form.limit")}
        type="number"
        min={1}
        inputMode="numeric"
        value={form.limit}
        onChange={set("limit")}
        error={errors.fields.daily_limit}
        hint={t("numbers.form.limitHint")}
      />
      <details className="rounded-md border border-slate-200 p-3 text-sm">
        <summary className="cursor-pointer font-medium">{t("official.advanced")}</summary>
        <div className="mt-3">
          <Field
            label={t("official.apiBase")}
            type="url"
            value={form.api_base}
            onChange={set("api_base")}
            error={fieldError("api_base")}
            hint={t("official.apiBaseHint")}
          />
        </div>
      </details>
      <Alert>{errors.form ?? errors.fields.driver_config}</Alert>
      <button type="submit" className="btn-primary w-full" disabled={create.isPending}>
        {create.isPending ? t("common.wait") : t("official.submit")}
      </button>
    </form>
  );
}

/** After adding: where Meta must send the number's events, and whether it is ready. */
export function OfficialPanel({ session, verifyToken, onDone }: { session: Session; verifyToken?: string; onDone: () => void }) {
  const { t } = useI18n();
  // Where this installation is reached from outside, as the API says.
  const callback = session.driver_config?.hook_url ?? `${window.location.origin}/hooks/cloud/${session.id}`;
  return (
    <div className="space-y-4" data-testid="official-panel">
      <div className="flex items-center gap-2">
        <StatusBadge status={session.status} />
        {session.status === "ready" ? <span className="text-sm">{t("official.ready")}</span> : null}
        {session.status === "starting" ? <Spinner label={t("official.checking")} /> : null}
      </div>
      {session.status === "failed" && session.last_error ? <Alert>{session.last_error}</Alert> : null}
      <p className="text-sm text-slate-800">{t("official.webhook")}</p>
      <dl className="space-y-2 text-sm">
        <div>
          <dt className="text-slate-600">{t("official.callbackUrl")}</dt>
          <dd className="break-all font-mono" data-testid="official-callback">
            {callback}
          </dd>
        </div>
        {verifyToken ? (
          <div>
            <dt className="text-slate-600">{t("official.verifyToken")}</dt>
            <dd className="break-all font-mono">{verifyToken}</dd>
          </div>
        ) : null}
      </dl>
      <p className="text-sm text-slate-700">{t("official.webhookFields")}</p>
      <button type="button" className="btn-primary" onClick={onDone}>
        {t("common.close")}
      </button>
    </div>
  );
}

/** Why a template cannot be sent, or null when it can. */
export function unsendableReason(template: WhatsappTemplate): "notApproved" | "header" | null {
  if (template.sendable) return null;
  return template.status !== "APPROVED" ? "notApproved" : "header";
}

/** A Cloud API number's templates: the list as last synced, and a sync from Meta. */
export function TemplatesPanel({ session }: { session: Session }) {
  const { t } = useI18n();
  const format = useFormat();
  const templates = useTemplates(session.id);
  const sync = useSyncTemplates(session.id);
  const [wabaId, setWabaId] = useState("");
  const errors = formErrors(t, sync.error, ["waba_id"]);
  const items = templates.data?.items;
  return (
    <div className="space-y-4" data-testid="templates-panel">
      <p className="text-sm text-slate-700">{t("templates.intro")}</p>
      <form
        className="flex flex-wrap items-end gap-2"
        noValidate
        onSubmit={(event) => {
          event.preventDefault();
          sync.mutate(wabaId.trim() || null);
        }}
      >
        <div className="min-w-[12rem] flex-1">
          <Field
            label={t("official.wabaId")}
            inputMode="numeric"
            value={wabaId}
            onChange={(e) => setWabaId(e.target.value)}
            error={errors.fields.waba_id}
            hint={t("templates.wabaHint")}
          />
        </div>
        <button type="submit" className="btn-primary" disabled={sync.isPending || session.status !== "ready"}>
          {sync.isPending ? t("common.wait") : t("templates.sync")}
        </button>
      </form>
      {session.status !== "ready" ? <p className="text-sm text-slate-700">{t("templates.notReady")}</p> : null}
      <Alert>{errors.form ?? (templates.error ? errorText(t, templates.error) : null)}</Alert>
      {sync.isSuccess ? (
        <p role="status" className="text-sm text-emerald-900">
          {t("templates.synced", { count: format.number(sync.data.items.length) })}
        </p>
      ) : null}
      {templates.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <p className="text-sm text-slate-700">{t("templates.none")}</p> : null}
      {items && items.length > 0 ? (
        <ul className="divide-y divide-slate-100 rounded-md border border-slate-200">
          {items.map((template) => {
            const reason = unsendableReason(template);
            return (
              <li
                key={`${template.name}/${template.language}`}
                className="space-y-1 p-3 text-sm"
                data-testid="template-row"
                data-template={template.name}
                data-sendable={template.sendable ? "true" : "false"}
              >
                <p className="font-medium">
                  <span className="font-mono">{template.name}</span> · {template.language} · {template.category}
                </p>
                {template.body ? <p className="whitespace-pre-wrap break-words text-slate-800">{template.body}</p> : null}
                <p className={reason ? "text-amber-900" : "text-emerald-900"}>
                  {reason
                    ? t(`templates.unsendable.${reason}`, { status: template.status })
                    : t("templates.sendable", { count: template.body_parameters })}
                </p>
              </li>
            );
          })}
        </ul>
      ) : null}
    </div>
  );
}
