// A webhook subscription's receiver URL, event types and signing secret:
// the form that creates one and the one that changes one; its status badge
// and its event types in a few words.

import { useId, useState, type FormEvent, type ReactNode } from "react";
import type { Webhook } from "../api/types";
import { Alert, Field } from "../components/ui";
import { formErrors, useI18n, type MessageKey } from "../i18n";
import { EVENT_GROUPS, eventsToSend, isAll } from "../lib/eventTypes";

export interface WebhookInput {
  url: string;
  events: string[];
  /** Empty: generated (a new subscription) or unchanged (an edit). */
  secret: string;
}

/** 32 random bytes as hex: a signing secret the API takes (16 to 256 characters). */
export function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The event types to deliver: all, or some chosen by their aggregate. */
function EventPicker({
  all,
  chosen,
  onAll,
  onToggle,
  error,
}: {
  all: boolean;
  chosen: ReadonlySet<string>;
  onAll: (all: boolean) => void;
  onToggle: (type: string) => void;
  error?: string;
}) {
  const { t } = useI18n();
  const errorId = useId();
  return (
    <fieldset className="space-y-2" aria-describedby={error ? errorId : undefined}>
      <legend className="text-sm font-medium text-slate-800">{t("webhook.events")}</legend>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" className="h-4 w-4 accent-emerald-700" checked={all} onChange={(e) => onAll(e.target.checked)} />
        {t("webhook.events.all")}
      </label>
      <div
        className={`max-h-64 space-y-3 overflow-y-auto rounded-md border border-slate-200 p-3 ${all ? "opacity-60" : ""}`}
        data-testid="event-picker"
      >
        {EVENT_GROUPS.map((group) => (
          <fieldset key={group.aggregate} disabled={all}>
            <legend className="text-xs font-semibold uppercase tracking-wide text-slate-600">
              {t(`webhook.group.${group.aggregate}` as MessageKey)}
            </legend>
            <div className="mt-1 grid gap-x-4 gap-y-1 sm:grid-cols-2">
              {group.types.map((type) => (
                <label key={type} className="flex items-center gap-2 text-sm">
                  <input
                    type="checkbox"
                    className="h-4 w-4 accent-emerald-700"
                    checked={all || chosen.has(type)}
                    onChange={() => onToggle(type)}
                  />
                  <span className="font-mono text-xs">{type}</span>
                </label>
              ))}
            </div>
          </fieldset>
        ))}
      </div>
      <p className="text-sm text-slate-600">
        {all ? t("webhook.events.allHint") : t("webhook.events.count", { count: chosen.size })}
      </p>
      {error ? (
        <p id={errorId} className="text-sm text-red-700">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}

/**
 * The form: `initial` for an edit (the secret then stays unless a new one
 * is given), none for a new subscription. `error` is the last refusal.
 */
export function WebhookForm({
  initial,
  submit,
  pending,
  error,
  children,
}: {
  initial?: Webhook;
  submit: (input: WebhookInput) => void;
  pending: boolean;
  error: unknown;
  children: ReactNode;
}) {
  const { t } = useI18n();
  const [url, setUrl] = useState(initial?.url ?? "");
  const [all, setAll] = useState(initial ? isAll(initial.events) : false);
  const [chosen, setChosen] = useState<ReadonlySet<string>>(
    new Set(initial && !isAll(initial.events) ? initial.events : []),
  );
  const [secret, setSecret] = useState("");
  const [local, setLocal] = useState<string | null>(null);
  const errors = formErrors(t, error, ["url", "events", "secret"]);

  const toggle = (type: string) =>
    setChosen((current) => {
      const next = new Set(current);
      if (next.has(type)) next.delete(type);
      else next.add(type);
      return next;
    });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    if (!all && chosen.size === 0) {
      setLocal(t("webhook.events.none"));
      return;
    }
    setLocal(null);
    submit({ url: url.trim(), events: eventsToSend(all, chosen), secret: secret.trim() });
  };

  return (
    <form className="space-y-4" onSubmit={onSubmit} noValidate>
      <Field
        label={t("webhook.url")}
        type="url"
        inputMode="url"
        required
        placeholder="https://toko.example/wablast"
        value={url}
        onChange={(e) => setUrl(e.target.value)}
        error={errors.fields.url}
        hint={t("webhook.url.hint")}
      />
      <EventPicker all={all} chosen={chosen} onAll={setAll} onToggle={toggle} error={local ?? errors.fields.events} />
      <div className="space-y-2">
        <Field
          label={initial ? t("webhook.secret.new") : t("webhook.secret")}
          value={secret}
          autoComplete="off"
          spellCheck={false}
          className="input font-mono"
          onChange={(e) => setSecret(e.target.value)}
          error={errors.fields.secret}
          hint={initial ? t("webhook.secret.newHint") : t("webhook.secret.hint")}
        />
        <button type="button" className="btn-secondary" onClick={() => setSecret(randomSecret())}>
          {t("webhook.secret.generate")}
        </button>
      </div>
      <Alert>{errors.form}</Alert>
      <div className="flex flex-wrap gap-2">
        <button type="submit" className="btn-primary" disabled={pending}>
          {pending ? t("common.wait") : initial ? t("common.save") : t("webhook.create")}
        </button>
        {children}
      </div>
    </form>
  );
}

/** A subscription's event types in a few words. */
export function useEventsSummary() {
  const { t } = useI18n();
  return (events: string[]) =>
    isAll(events)
      ? t("webhook.events.all")
      : events.length <= 3
        ? events.join(", ")
        : t("webhook.events.some", { first: events.slice(0, 2).join(", "), more: events.length - 2 });
}

export function WebhookStatusBadge({ webhook }: { webhook: Webhook }) {
  const { t } = useI18n();
  const disabled = webhook.status === "disabled";
  const failing = !disabled && !!webhook.failing_since;
  return (
    <span
      data-webhook-status={webhook.status}
      className={`inline-flex items-center rounded-full px-2.5 py-0.5 text-xs font-semibold ${
        disabled ? "bg-red-100 text-red-900" : failing ? "bg-amber-100 text-amber-900" : "bg-emerald-100 text-emerald-900"
      }`}
    >
      {disabled ? t("webhook.status.disabled") : failing ? t("webhook.status.failing") : t("webhook.status.active")}
    </span>
  );
}
