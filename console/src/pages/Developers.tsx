// For integrators: API keys (the key shown once), webhook subscriptions,
// and the way to the API's reference at /docs.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { Link } from "wouter";
import { api } from "../api/client";
import { accountKeys, useApiKeys, useMe, useWebhooks } from "../api/queries";
import type { ApiKey, CreatedApiKey, CreatedWebhook } from "../api/types";
import { Layout } from "../components/Layout";
import { OnceSecret } from "../components/Secret";
import { Alert, ConfirmActions, Dialog, EmptyState, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useFormat, useI18n } from "../i18n";
import { WebhookForm, WebhookStatusBadge, useEventsSummary, type WebhookInput } from "./WebhookForm";

export function Developers() {
  const { t } = useI18n();
  return (
    <Layout
      title={t("dev.title")}
      actions={
        <a href="/docs/" target="_blank" rel="noreferrer" className="btn-secondary">
          {t("dev.docs")}
        </a>
      }
    >
      <p className="mb-6 max-w-3xl text-sm text-slate-700">{t("dev.intro")}</p>
      <div className="space-y-10">
        <ApiKeys />
        <Webhooks />
      </div>
    </Layout>
  );
}

function ApiKeys() {
  const { t } = useI18n();
  const format = useFormat();
  const me = useMe();
  const keys = useApiKeys();
  const client = useQueryClient();
  const titleId = useId();
  const [name, setName] = useState("");
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  // Members use keys; only an owner (or the admin) makes and revokes them.
  const manages = me.data?.user?.role === "owner" || me.data?.user?.role === "admin";

  const create = useMutation({
    mutationFn: (keyName: string) => api<CreatedApiKey>("/api/v1/api-keys", { method: "POST", body: { name: keyName } }),
    onSuccess: (key) => {
      setCreated(key);
      setName("");
      void client.invalidateQueries({ queryKey: accountKeys.apiKeys });
    },
  });
  const errors = formErrors(t, create.error, ["name"]);
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate(name.trim());
  };
  const items = keys.data?.items;

  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <div>
        <h2 id={titleId} className="text-lg font-semibold">
          {t("apiKeys.title")}
        </h2>
        <p className="text-sm text-slate-700">{t("apiKeys.hint")}</p>
      </div>
      {manages ? (
        <form className="card flex flex-wrap items-end gap-3" onSubmit={onSubmit} noValidate>
          <div className="min-w-[14rem] flex-1">
            <Field
              label={t("apiKeys.name")}
              placeholder={t("apiKeys.namePlaceholder")}
              value={name}
              maxLength={100}
              onChange={(e) => setName(e.target.value)}
              error={errors.fields.name ? t("apiKeys.nameError") : undefined}
            />
          </div>
          <button type="submit" className="btn-primary" disabled={create.isPending}>
            {create.isPending ? t("common.wait") : t("apiKeys.create")}
          </button>
          {errors.form ? (
            <div className="w-full">
              <Alert>{errors.form}</Alert>
            </div>
          ) : null}
        </form>
      ) : me.data ? (
        <p className="text-sm text-slate-700">{t("apiKeys.ownersOnly")}</p>
      ) : null}
      {keys.error ? <Alert>{errorText(t, keys.error)}</Alert> : null}
      {keys.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? <EmptyState title={t("apiKeys.none")}>{t("apiKeys.noneHint")}</EmptyState> : null}
      {items && items.length > 0 ? (
        <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white" data-testid="api-keys">
          {items.map((key) => (
            <li key={key.id} className="flex flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3" data-testid="api-key" data-key-id={key.id}>
              <div className="min-w-0 flex-1">
                <p className="truncate font-medium">{key.name}</p>
                <p className="text-sm text-slate-700">
                  <span className="font-mono">{key.prefix}…</span> · {t("apiKeys.created", { date: format.date(key.created_at) })}
                </p>
              </div>
              {manages ? (
                <button
                  type="button"
                  className="btn-secondary text-red-800"
                  onClick={() => setRevoking(key)}
                  aria-label={t("apiKeys.revokeOne", { name: key.name })}
                >
                  {t("apiKeys.revoke")}
                </button>
              ) : null}
            </li>
          ))}
        </ul>
      ) : null}

      <Dialog open={created !== null} title={t("apiKeys.createdTitle")} onClose={() => setCreated(null)}>
        {created ? (
          <div className="space-y-4">
            <OnceSecret
              label={t("apiKeys.keyOf", { name: created.name })}
              copyLabel={t("apiKeys.copy")}
              value={created.key}
              warning={t("apiKeys.once")}
              testId="new-api-key"
            />
            <p className="break-all font-mono text-xs text-slate-700">{t("apiKeys.usage", { url: `${window.location.origin}/api/v1/me` })}</p>
            <button type="button" className="btn-primary" onClick={() => setCreated(null)}>
              {t("secret.stored")}
            </button>
          </div>
        ) : null}
      </Dialog>
      <Dialog open={revoking !== null} title={t("apiKeys.revokeTitle")} onClose={() => setRevoking(null)}>
        {revoking ? <Revoke apiKey={revoking} onDone={() => setRevoking(null)} /> : null}
      </Dialog>
    </section>
  );
}

function Revoke({ apiKey, onDone }: { apiKey: ApiKey; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const revoke = useMutation({
    mutationFn: () => api<void>(`/api/v1/api-keys/${apiKey.id}`, { method: "DELETE" }),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: accountKeys.apiKeys });
      onDone();
    },
  });
  return (
    <div className="space-y-4">
      <p>{t("apiKeys.revokeBody", { name: apiKey.name, prefix: apiKey.prefix })}</p>
      <ConfirmActions
        error={revoke.error}
        pending={revoke.isPending}
        confirm={t("apiKeys.revokeConfirm")}
        onConfirm={() => revoke.mutate()}
        onCancel={onDone}
      />
    </div>
  );
}

function Webhooks() {
  const { t } = useI18n();
  const webhooks = useWebhooks();
  const client = useQueryClient();
  const summary = useEventsSummary();
  const titleId = useId();
  const [adding, setAdding] = useState(false);
  const [created, setCreated] = useState<CreatedWebhook | null>(null);
  const create = useMutation({
    mutationFn: (input: WebhookInput) =>
      api<CreatedWebhook>("/api/v1/webhooks", {
        method: "POST",
        body: { url: input.url, events: input.events, ...(input.secret ? { secret: input.secret } : {}) },
      }),
    onSuccess: (webhook) => {
      setAdding(false);
      setCreated(webhook);
      void client.invalidateQueries({ queryKey: accountKeys.webhooks });
    },
  });
  const items = webhooks.data?.items;
  const add = (
    <button
      type="button"
      className="btn-primary"
      onClick={() => {
        create.reset();
        setAdding(true);
      }}
    >
      {t("webhook.add")}
    </button>
  );

  return (
    <section aria-labelledby={titleId} className="space-y-3">
      <div className="flex flex-wrap items-end justify-between gap-3">
        <div>
          <h2 id={titleId} className="text-lg font-semibold">
            {t("webhooks.title")}
          </h2>
          <p className="max-w-3xl text-sm text-slate-700">{t("webhooks.hint")}</p>
        </div>
        {items && items.length > 0 ? add : null}
      </div>
      {webhooks.error ? <Alert>{errorText(t, webhooks.error)}</Alert> : null}
      {webhooks.isPending ? <Spinner label={t("common.loading")} /> : null}
      {items && items.length === 0 ? (
        <EmptyState title={t("webhooks.none")}>
          <p>{t("webhooks.noneHint")}</p>
          <div className="mt-4">{add}</div>
        </EmptyState>
      ) : null}
      {items && items.length > 0 ? (
        <ul className="divide-y divide-slate-200 rounded-lg border border-slate-200 bg-white" data-testid="webhooks">
          {items.map((webhook) => (
            <li key={webhook.id} className="flex flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3" data-testid="webhook" data-webhook-id={webhook.id}>
              <div className="min-w-0 flex-1">
                <Link href={`/developers/webhooks/${webhook.id}`} className="block truncate font-medium text-emerald-800 underline">
                  {webhook.url}
                </Link>
                <p className="truncate text-sm text-slate-700">{summary(webhook.events)}</p>
              </div>
              <WebhookStatusBadge webhook={webhook} />
            </li>
          ))}
        </ul>
      ) : null}

      <Dialog open={adding} title={t("webhook.add")} onClose={() => setAdding(false)}>
        <WebhookForm submit={(input) => create.mutate(input)} pending={create.isPending} error={create.error}>
          <button type="button" className="btn-secondary" onClick={() => setAdding(false)}>
            {t("common.cancel")}
          </button>
        </WebhookForm>
      </Dialog>
      <Dialog open={created !== null} title={t("webhook.createdTitle")} onClose={() => setCreated(null)}>
        {created ? (
          <div className="space-y-4">
            <p className="break-all text-sm text-slate-800">{t("webhook.createdBody", { url: created.url })}</p>
            <OnceSecret
              label={t("webhook.secret")}
              copyLabel={t("webhook.secret.copy")}
              value={created.secret}
              warning={t("webhook.secret.once")}
              testId="new-webhook-secret"
            />
            <div className="flex flex-wrap gap-2">
              <Link href={`/developers/webhooks/${created.id}`} className="btn-primary">
                {t("webhook.open")}
              </Link>
              <button type="button" className="btn-secondary" onClick={() => setCreated(null)}>
                {t("secret.stored")}
              </button>
            </div>
          </div>
        ) : null}
      </Dialog>
    </section>
  );
}
