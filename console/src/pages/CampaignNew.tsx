// A new campaign, step by step: the list, the message (variables from the
// list's columns, spintax, a live preview the API renders), an optional
// attachment, the senders, the WhatsApp template official (Cloud API)
// senders send instead of the text, the pause between sends, when it
// starts, and a review of the points it reserves. Each step is checked before the next;
// the API's refusals show next to the field they concern.

import { useMutation, useQueries, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { campaignKeys } from "../api/campaigns";
import { api, ApiError } from "../api/client";
import { keys, useContactLists, useSessions, useWallet } from "../api/queries";
import type { Campaign, CampaignPreview, ContactList, Media, Session, WhatsappTemplate } from "../api/types";
import { Layout } from "../components/Layout";
import { dataUrlOf, sizeText } from "../components/MediaThumb";
import { Alert, Field, Labelled, Spinner, StatusBadge } from "../components/ui";
import { errorText, useFormat, useI18n, type Translate } from "../i18n";
import { commonSendable, insertAt, missingWithoutFallback, pointsFor, POINTS_PER_MESSAGE } from "../lib/campaigns";
import { localInputValue } from "../lib/time";
import { templatesQuery, useSyncTemplates } from "./Official";

const STEPS = ["list", "message", "media", "senders", "template", "throttle", "schedule", "review"] as const;
type Step = (typeof STEPS)[number];

/** The steps of a campaign: the template only when an official number sends. */
function stepsFor(official: boolean): Step[] {
  return STEPS.filter((s) => s !== "template" || official);
}

/** The step of a refused field (`whatsapp_template.parameters[0]` is the template's). */
function stepOf(field: string | undefined): Step | undefined {
  if (!field) return undefined;
  return STEP_OF[field] ?? (field.startsWith("whatsapp_template") ? "template" : undefined);
}

/** The step where each field of `POST /campaigns` is chosen. */
const STEP_OF: Record<string, Step> = {
  name: "list",
  contact_list_id: "list",
  template: "message",
  media_id: "media",
  sender_session_ids: "senders",
  whatsapp_template: "template",
  throttle: "throttle",
  scheduled_at: "schedule",
};

/** Media the API takes, and at most how large (10 MiB). */
const MEDIA_ACCEPT = "image/png,image/jpeg,application/pdf,.doc,.docx,.xls,.xlsx";
const MEDIA_MAX = 10 * 1024 * 1024;

type Errors = Partial<Record<string, string>>;

interface PreviewState {
  listId: string;
  template: string;
  result?: CampaignPreview;
  error?: unknown;
}

/** The WhatsApp template chosen for official senders, as `POST /campaigns` takes it. */
interface Chosen {
  name: string;
  language: string;
  parameters: string[];
  /** A text header's `{{n}}` values. */
  header_parameters?: string[];
  /** An image, video or document header's attachment. */
  header_media_id?: string;
}

/** What a media header takes, as the file picker filters it. */
const HEADER_ACCEPT: Record<"image" | "video" | "document", string> = {
  image: "image/png,image/jpeg",
  video: "video/mp4",
  document: "application/pdf,.doc,.docx,.xls,.xlsx",
};

/** Every parameter a chosen template has, the header's first (blank ones block the preview). */
function allParameters(chosen: Chosen): string[] {
  return [...(chosen.header_parameters ?? []), ...chosen.parameters];
}

interface TemplatePreviewState {
  key: string;
  result?: CampaignPreview;
  error?: unknown;
}

/** What to say about a template the API refused, next to the message. */
export function templateErrorText(t: Translate, err: unknown): string {
  if (err instanceof ApiError) {
    const unknown = err.details.unknown_variables;
    if (Array.isArray(unknown) && unknown.length > 0) {
      return t("wizard.message.unknown", { names: unknown.map((n) => `{{${String(n)}}}`).join(", ") });
    }
    const missing = err.details.missing;
    if (err.code === "template_variables_missing" && missing && typeof missing === "object") {
      return missingText(t, Object.entries(missing as Record<string, number>));
    }
    if (err.code === "validation_failed" && err.field === "template") {
      return /empty/.test(err.message) ? t("wizard.message.required") : /too long/.test(err.message) ? t("wizard.message.tooLong") : t("wizard.message.syntax");
    }
  }
  return errorText(t, err);
}

function missingText(t: Translate, missing: [string, number][]): string {
  const [name, count] = missing[0];
  return t("wizard.message.missing", { count, name: `{{${name}}}`, fallback: `{{${name}|…}}` });
}

export function CampaignNew() {
  const { t } = useI18n();
  const [, navigate] = useLocation();
  const client = useQueryClient();
  const lists = useContactLists();
  const { sessions } = useSessions();
  const wallet = useWallet();

  const [step, setStep] = useState<Step>("list");
  const [name, setName] = useState("");
  const [listId, setListId] = useState("");
  const [skip, setSkip] = useState(false);
  const [template, setTemplate] = useState("");
  const [media, setMedia] = useState<{ media: Media; url: string | null } | null>(null);
  const [senders, setSenders] = useState<string[]>([]);
  const [minDelay, setMinDelay] = useState("2");
  const [maxDelay, setMaxDelay] = useState("5");
  const [when, setWhen] = useState<"now" | "later">("now");
  const [scheduledAt, setScheduledAt] = useState(() => localInputValue(Date.now() + 3_600_000));
  const [errors, setErrors] = useState<Errors>({});
  const [checking, setChecking] = useState(false);
  const [created, setCreated] = useState<Campaign | null>(null);
  const [chosen, setChosen] = useState<Chosen | null>(null);
  const [headerMedia, setHeaderMedia] = useState<Media | null>(null);

  // A field's error goes once the field changes.
  const clearing =
    <T,>(set: (value: T) => void, ...fields: string[]) =>
    (value: T) => {
      set(value);
      setErrors((before) => {
        if (!fields.some((f) => before[f])) return before;
        const after = { ...before };
        for (const f of fields) delete after[f];
        return after;
      });
    };

  const list = lists.data?.items.find((l) => l.id === listId);
  const recipients = list?.accepted ?? 0;
  const points = pointsFor(recipients);
  const ready = (sessions ?? []).filter((s) => s.status === "ready");
  const chosenSenders = senders.filter((id) => ready.some((s) => s.id === id));
  const officialSenders = chosenSenders
    .map((id) => ready.find((s) => s.id === id)!)
    .filter((s) => s.driver === "cloud");
  const steps = stepsFor(officialSenders.length > 0);
  // Each official sender's templates: the campaign may use those all of them synced.
  const templateLists = useQueries({ queries: officialSenders.map((s) => templatesQuery(s.id)) });
  const templatesLoading = templateLists.some((q) => q.isPending);
  const usable = templatesLoading ? [] : commonSendable(templateLists.map((q) => q.data?.items ?? []));
  const chosenTemplate = chosen ? usable.find((u) => u.name === chosen.name && u.language === chosen.language) : undefined;
  const whatsappTemplate = officialSenders.length > 0 && chosen ? chosen : null;

  // The live preview: the API renders the message for the list's first contacts.
  const [preview, setPreview] = useState<PreviewState | null>(null);
  const pending = useRef<Promise<PreviewState> | null>(null);
  const previewOf = (forList: string, text: string): Promise<PreviewState> => {
    const promise = api<CampaignPreview>("/api/v1/campaigns/preview", {
      method: "POST",
      body: { contact_list_id: forList, template: text, count: 3 },
    }).then(
      (result) => ({ listId: forList, template: text, result }),
      (error: unknown) => ({ listId: forList, template: text, error }),
    );
    pending.current = promise;
    void promise.then((state) => {
      // Only the latest request's answer is shown.
      if (pending.current === promise) setPreview(state);
    });
    return promise;
  };
  useEffect(() => {
    if (!listId || template.trim() === "" || (preview?.listId === listId && preview.template === template)) return;
    const timer = setTimeout(() => void previewOf(listId, template), 400);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps -- `preview` is read, not watched
  }, [listId, template]);
  const currentPreview = preview?.listId === listId && preview.template === template ? preview : null;

  // The template's preview: its body filled for the first contacts, as the
  // first official sender synced it.
  const templateKey = whatsappTemplate ? JSON.stringify([listId, template, whatsappTemplate, officialSenders[0]?.id]) : "";
  const [templatePreview, setTemplatePreview] = useState<TemplatePreviewState | null>(null);
  const pendingTemplate = useRef<Promise<TemplatePreviewState> | null>(null);
  const templatePreviewOf = (key: string): Promise<TemplatePreviewState> => {
    const promise = api<CampaignPreview>("/api/v1/campaigns/preview", {
      method: "POST",
      body: {
        contact_list_id: listId,
        template,
        count: 3,
        whatsapp_template: whatsappTemplate,
        session_id: officialSenders[0]?.id,
        skip_not_on_whatsapp: skip,
      },
    }).then(
      (result) => ({ key, result }),
      (error: unknown) => ({ key, error }),
    );
    pendingTemplate.current = promise;
    void promise.then((state) => {
      if (pendingTemplate.current === promise) setTemplatePreview(state);
    });
    return promise;
  };
  useEffect(() => {
    if (!templateKey || templatePreview?.key === templateKey || (whatsappTemplate && allParameters(whatsappTemplate).some((p) => p.trim() === ""))) return;
    const timer = setTimeout(() => void templatePreviewOf(templateKey), 400);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps -- `templatePreview` is read, not watched
  }, [templateKey]);
  const currentTemplatePreview = templatePreview?.key === templateKey ? templatePreview : null;

  /** The errors of `at`, after asking the API where it must. */
  const check = async (at: Step): Promise<Errors> => {
    switch (at) {
      case "list": {
        const found: Errors = {};
        const trimmed = name.trim();
        if (trimmed.length === 0 || trimmed.length > 120) found.name = t("wizard.list.nameError");
        if (!listId) found.contact_list_id = t("wizard.list.required");
        else if (recipients === 0) found.contact_list_id = t("wizard.list.empty");
        return found;
      }
      case "message": {
        if (template.trim() === "") return { template: t("wizard.message.required") };
        const state = currentPreview ?? (await previewOf(listId, template));
        if (state.error) return { template: templateErrorText(t, state.error) };
        const lacking = missingWithoutFallback(template, state.result?.missing ?? {});
        return lacking.length > 0 ? { template: missingText(t, lacking) } : {};
      }
      case "media":
        return errors.media_id ? { media_id: errors.media_id } : {};
      case "senders":
        return chosenSenders.length === 0 ? { sender_session_ids: t("wizard.senders.required") } : {};
      case "template": {
        if (!chosen || !chosenTemplate) return { whatsapp_template: t("wizard.template.required") };
        const blankHeader = (chosen.header_parameters ?? []).findIndex((p) => p.trim() === "");
        if (blankHeader >= 0) return { [`whatsapp_template.header_parameters[${blankHeader}]`]: t("wizard.template.parameterRequired") };
        if (isMediaHeader(chosenTemplate) && !chosen.header_media_id) return { "whatsapp_template.header_media_id": t("wizard.template.headerMediaRequired") };
        const blank = chosen.parameters.findIndex((p) => p.trim() === "");
        if (blank >= 0) return { [`whatsapp_template.parameters[${blank}]`]: t("wizard.template.parameterRequired") };
        const state = currentTemplatePreview ?? (await templatePreviewOf(templateKey));
        if (state.error) {
          const err = state.error;
          const field =
            err instanceof ApiError && (err.field?.startsWith("whatsapp_template.parameters") || err.field?.startsWith("whatsapp_template.header_parameters"))
              ? err.field
              : "whatsapp_template";
          return { [field]: templateErrorText(t, err) };
        }
        const missing = Object.entries(state.result?.missing ?? {});
        const lacking = allParameters(chosen).flatMap((p) => missingWithoutFallback(p, Object.fromEntries(missing)));
        return lacking.length > 0 ? { whatsapp_template: missingText(t, lacking) } : {};
      }
      case "throttle": {
        const min = Number(minDelay);
        const max = Number(maxDelay);
        const found: Errors = {};
        if (minDelay.trim() === "" || !Number.isFinite(min) || min < 0) found.min_delay = t("wizard.throttle.minError");
        if (maxDelay.trim() === "" || !Number.isFinite(max) || max < 0 || max > 600) found.max_delay = t("wizard.throttle.maxError");
        else if (!found.min_delay && max < min) found.max_delay = t("wizard.throttle.order");
        return found;
      }
      case "schedule": {
        if (when === "now") return {};
        const at = Date.parse(scheduledAt);
        return Number.isNaN(at) || at <= Date.now() ? { scheduled_at: t("wizard.schedule.future") } : {};
      }
      case "review":
        return {};
    }
  };

  // A new step is announced: focus moves to its heading (not on the first).
  const stepHeading = useRef<HTMLHeadingElement>(null);
  const shown = useRef(step);
  useEffect(() => {
    if (shown.current === step) return;
    shown.current = step;
    stepHeading.current?.focus();
  }, [step]);

  const index = steps.indexOf(step);
  const next = async () => {
    setChecking(true);
    try {
      const found = await check(step);
      setErrors(found);
      if (Object.keys(found).length === 0) setStep(steps[index + 1]);
    } finally {
      setChecking(false);
    }
  };
  const back = () => {
    setErrors({});
    setStep(steps[Math.max(0, index - 1)]);
  };

  const enough = (wallet.data?.available ?? 0) >= points;
  const submit = useMutation({
    mutationFn: async () => {
      // A retry after a refused start starts the campaign made before.
      let campaign = created;
      if (!campaign) {
        campaign = await api<Campaign>("/api/v1/campaigns", {
          method: "POST",
          body: {
            name: name.trim(),
            contact_list_id: listId,
            template,
            media_id: media?.media.id ?? null,
            sender_session_ids: chosenSenders,
            throttle: { min_delay_ms: Math.round(Number(minDelay) * 1000), max_delay_ms: Math.round(Number(maxDelay) * 1000) },
            scheduled_at: when === "later" ? new Date(scheduledAt).toISOString() : null,
            skip_not_on_whatsapp: skip,
            ...(whatsappTemplate ? { whatsapp_template: whatsappTemplate } : {}),
          },
        });
        setCreated(campaign);
      }
      if (when === "now") await api(`/api/v1/campaigns/${campaign.id}/start`, { method: "POST" });
      return campaign;
    },
    onSuccess: async (campaign) => {
      await client.invalidateQueries({ queryKey: campaignKeys.all });
      void client.invalidateQueries({ queryKey: keys.wallet });
      navigate(`/campaigns/${campaign.id}`);
    },
    onError: (err) => {
      // A field's refusal goes back to its step, next to the field.
      const at = err instanceof ApiError ? stepOf(err.field) : undefined;
      if (!created && err instanceof ApiError && err.field && at && steps.includes(at)) {
        setErrors({ [err.field]: at === "message" || at === "template" ? templateErrorText(t, err) : errorText(t, err) });
        setStep(at);
      }
    },
  });
  const refusedAt = submit.error instanceof ApiError ? stepOf(submit.error.field) : undefined;
  const submitError = submit.error && !(refusedAt && steps.includes(refusedAt) && !created) ? submit.error : null;

  return (
    <Layout title={t("wizard.title")}>
      <p className="mb-4 text-sm">
        <Link href="/campaigns" className="font-medium text-emerald-800 underline">
          {t("campaign.back")}
        </Link>
      </p>
      <Steps steps={steps} current={step} />
      <form
        className="card mt-4 space-y-5"
        noValidate
        data-step={step}
        onSubmit={(event) => {
          event.preventDefault();
          if (step === "review") {
            if (enough) submit.mutate();
          } else void next();
        }}
      >
        <h2 ref={stepHeading} tabIndex={-1} className="text-lg font-semibold focus:outline-none" data-testid="wizard-step">
          {t(`wizard.step.${step}`)}
        </h2>
        {step === "list" ? (
          <ListStep
            name={name}
            setName={clearing(setName, "name")}
            lists={lists.data?.items}
            loading={lists.isPending}
            listId={listId}
            setListId={clearing(setListId, "contact_list_id")}
            skip={skip}
            setSkip={setSkip}
            errors={errors}
          />
        ) : null}
        {step === "message" && list ? (
          <MessageStep list={list} template={template} setTemplate={clearing(setTemplate, "template")} preview={currentPreview} error={errors.template} hasMedia={!!media} />
        ) : null}
        {step === "media" ? (
          <MediaStep
            media={media}
            setMedia={setMedia}
            error={errors.media_id}
            setError={(error) => setErrors(error ? { media_id: error } : {})}
          />
        ) : null}
        {step === "senders" ? <SendersStep senders={senders} setSenders={clearing(setSenders, "sender_session_ids")} error={errors.sender_session_ids} /> : null}
        {step === "template" && list ? (
          <TemplateStep
            list={list}
            senders={officialSenders}
            usable={usable}
            loading={templatesLoading}
            chosen={chosen}
            setChosen={(next) => {
              setChosen(next);
              setErrors({});
            }}
            headerMedia={headerMedia}
            setHeaderMedia={setHeaderMedia}
            preview={currentTemplatePreview}
            errors={errors}
          />
        ) : null}
        {step === "throttle" ? (
          <ThrottleStep
            min={minDelay}
            max={maxDelay}
            setMin={clearing(setMinDelay, "min_delay", "max_delay", "throttle")}
            setMax={clearing(setMaxDelay, "max_delay", "throttle")}
            errors={errors}
            recipients={recipients}
            senders={Math.max(1, chosenSenders.length)}
          />
        ) : null}
        {step === "schedule" ? (
          <ScheduleStep when={when} setWhen={clearing(setWhen, "scheduled_at")} at={scheduledAt} setAt={clearing(setScheduledAt, "scheduled_at")} error={errors.scheduled_at} />
        ) : null}
        {step === "review" && list ? (
          <Review
            name={name}
            list={list}
            template={template}
            sample={currentPreview?.result?.samples[0]?.text ?? null}
            whatsappTemplate={whatsappTemplate}
            templateSample={currentTemplatePreview?.result?.samples[0]?.whatsapp_template?.text ?? null}
            templateHeader={currentTemplatePreview?.result?.samples[0]?.whatsapp_template?.header ?? headerMedia?.filename ?? null}
            media={media?.media ?? null}
            senders={chosenSenders.map((id) => ready.find((s) => s.id === id)!)}
            throttle={[minDelay, maxDelay]}
            when={when === "later" ? scheduledAt : null}
            points={points}
            available={wallet.data?.available ?? null}
            skip={skip}
          />
        ) : null}
        {step === "review" ? (
          <Alert>
            {submitError ? (
              <>
                {errorText(t, submitError)}
                {created ? (
                  <>
                    {" "}
                    <Link href={`/campaigns/${created.id}`} className="font-medium underline">
                      {t("wizard.review.openDraft")}
                    </Link>
                  </>
                ) : null}
              </>
            ) : null}
          </Alert>
        ) : null}
        <div className="flex flex-wrap items-center gap-2 border-t border-slate-200 pt-4">
          {index > 0 ? (
            <button type="button" className="btn-secondary" onClick={back} disabled={submit.isPending}>
              {t("wizard.back")}
            </button>
          ) : null}
          {step === "review" ? (
            <button type="submit" className="btn-primary" disabled={!enough || submit.isPending || wallet.isPending}>
              {submit.isPending ? t("common.wait") : when === "now" ? t("wizard.review.start") : t("wizard.review.schedule")}
            </button>
          ) : (
            <button type="submit" className="btn-primary" disabled={checking}>
              {checking ? t("common.wait") : t("wizard.next")}
            </button>
          )}
        </div>
      </form>
    </Layout>
  );
}

function Steps({ steps, current }: { steps: Step[]; current: Step }) {
  const { t } = useI18n();
  const at = steps.indexOf(current);
  return (
    <ol className="flex flex-wrap gap-x-1 gap-y-2 text-xs sm:text-sm" aria-label={t("wizard.steps")}>
      {steps.map((step, i) => (
        <li
          key={step}
          aria-current={i === at ? "step" : undefined}
          className={`rounded-full px-3 py-1 font-medium ${
            i === at ? "bg-emerald-700 text-white" : i < at ? "bg-emerald-50 text-emerald-900" : "bg-slate-100 text-slate-700"
          }`}
        >
          {i + 1}. {t(`wizard.step.${step}`)}
        </li>
      ))}
    </ol>
  );
}

function ListStep({
  name,
  setName,
  lists,
  loading,
  listId,
  setListId,
  skip,
  setSkip,
  errors,
}: {
  name: string;
  setName: (name: string) => void;
  lists: ContactList[] | undefined;
  loading: boolean;
  listId: string;
  setListId: (id: string) => void;
  skip: boolean;
  setSkip: (skip: boolean) => void;
  errors: Errors;
}) {
  const { t } = useI18n();
  const format = useFormat();
  const legendId = useId();
  const errorId = useId();
  const skipHintId = useId();
  return (
    <>
      <Field
        label={t("wizard.list.name")}
        hint={t("wizard.list.nameHint")}
        value={name}
        maxLength={120}
        onChange={(e) => setName(e.target.value)}
        error={errors.name}
      />
      <fieldset
        aria-labelledby={legendId}
        aria-describedby={errors.contact_list_id ? errorId : undefined}
        aria-invalid={errors.contact_list_id ? true : undefined}
        className="space-y-2"
      >
        <legend id={legendId} className="text-sm font-medium text-slate-800">
          {t("wizard.list.choose")}
        </legend>
        {loading ? <Spinner label={t("common.loading")} /> : null}
        {lists && lists.length === 0 ? (
          <p className="text-sm text-slate-700">
            {t("wizard.list.none")}{" "}
            <Link href="/contacts/upload" className="font-medium text-emerald-800 underline">
              {t("contacts.upload")}
            </Link>
          </p>
        ) : null}
        {lists?.map((list) => (
          <label
            key={list.id}
            className={`flex cursor-pointer items-start gap-3 rounded-md border p-3 ${
              list.id === listId ? "border-emerald-700 bg-emerald-50" : "border-slate-200"
            }`}
          >
            <input
              type="radio"
              name="contact_list"
              className="mt-1"
              value={list.id}
              checked={list.id === listId}
              onChange={() => setListId(list.id)}
            />
            <span>
              <span className="block font-medium">{list.name}</span>
              <span className="block text-sm text-slate-700">
                {t("wizard.list.contacts", { count: format.number(list.accepted) })}
                {list.columns.length > 0 ? ` · ${t("wizard.list.columns", { columns: list.columns.join(", ") })}` : ""}
              </span>
            </span>
          </label>
        ))}
        {errors.contact_list_id ? (
          <p id={errorId} className="text-sm text-red-700">
            {errors.contact_list_id}
          </p>
        ) : null}
      </fieldset>
      <label className="flex cursor-pointer items-start gap-3">
        <input type="checkbox" className="mt-1" checked={skip} onChange={(e) => setSkip(e.target.checked)} aria-describedby={skipHintId} />
        <span>
          <span className="block text-sm font-medium text-slate-800">{t("wizard.list.skip")}</span>
          <span id={skipHintId} className="block text-sm text-slate-700">
            {t("wizard.list.skipHint")}
          </span>
        </span>
      </label>
    </>
  );
}

function MessageStep({
  list,
  template,
  setTemplate,
  preview,
  error,
  hasMedia,
}: {
  list: ContactList;
  template: string;
  setTemplate: (text: string) => void;
  preview: PreviewState | null;
  error?: string;
  hasMedia: boolean;
}) {
  const { t } = useI18n();
  const area = useRef<HTMLTextAreaElement>(null);
  const cursor = useRef<number | null>(null);
  // After an insertion, the cursor goes right after what was inserted.
  useEffect(() => {
    if (cursor.current === null || !area.current) return;
    area.current.focus();
    area.current.setSelectionRange(cursor.current, cursor.current);
    cursor.current = null;
  }, [template]);
  const insert = (variable: string) => {
    const el = area.current;
    const start = el?.selectionStart ?? template.length;
    const end = el?.selectionEnd ?? template.length;
    const next = insertAt(template, start, end, `{{${variable}}}`);
    cursor.current = next.cursor;
    setTemplate(next.text);
  };
  const variables = ["name", "phone", ...list.columns.filter((c) => c !== "name" && c !== "phone")];
  const liveError = preview?.error ? templateErrorText(t, preview.error) : undefined;
  const groupId = useId();
  return (
    <>
      <div className="space-y-1">
        <p id={groupId} className="text-sm font-medium text-slate-800">
          {t("wizard.message.insert")}
        </p>
        <div role="group" aria-labelledby={groupId} className="flex flex-wrap gap-2">
          {variables.map((v) => (
            <button key={v} type="button" className="btn-secondary px-2 py-1 font-mono text-xs" onClick={() => insert(v)}>
              {`{{${v}}}`}
            </button>
          ))}
        </div>
      </div>
      <Labelled
        label={t("wizard.message.label")}
        error={error ?? liveError}
        hint={t("wizard.message.hint")}
        control={(tied) => (
          <textarea
            ref={area}
            className="input min-h-[8rem] font-mono"
            rows={5}
            maxLength={4096}
            value={template}
            onChange={(e) => setTemplate(e.target.value)}
            {...tied}
          />
        )}
      />
      {hasMedia ? <p className="text-sm text-slate-700">{t("wizard.message.caption")}</p> : null}
      <section aria-label={t("wizard.preview")} className="space-y-2" data-testid="template-preview">
        <h3 className="text-sm font-medium text-slate-800">{t("wizard.preview")}</h3>
        {!template.trim() ? <p className="text-sm text-slate-600">{t("wizard.preview.empty")}</p> : null}
        {template.trim() && !preview ? <Spinner label={t("wizard.preview.loading")} /> : null}
        {preview?.result ? (
          <ul className="space-y-2">
            {preview.result.samples.map((sample) => (
              <li key={sample.phone} className="rounded-lg bg-emerald-50 p-3" data-testid="preview-sample" data-phone={sample.phone}>
                <p className="text-xs text-slate-700">
                  {sample.name ? `${sample.name} · ` : ""}
                  <span className="font-mono">{sample.phone}</span>
                </p>
                {sample.text !== null ? (
                  <p className="mt-1 whitespace-pre-wrap break-words text-sm text-slate-900" data-testid="preview-text">
                    {sample.text}
                  </p>
                ) : (
                  <p className="mt-1 text-sm text-red-800">{t("wizard.preview.noValue")}</p>
                )}
              </li>
            ))}
          </ul>
        ) : null}
      </section>
    </>
  );
}

function MediaStep({
  media,
  setMedia,
  error,
  setError,
}: {
  media: { media: Media; url: string | null } | null;
  setMedia: (media: { media: Media; url: string | null } | null) => void;
  error?: string;
  setError: (error: string | undefined) => void;
}) {
  const { t } = useI18n();
  const format = useFormat();
  const upload = useMediaUpload(setError, async (stored, file) => {
    const url = stored.mime_type.startsWith("image/") ? await dataUrlOf(file).catch(() => null) : null;
    setMedia({ media: stored, url });
  });
  const choose = upload.choose;
  return (
    <>
      <p className="text-sm text-slate-700">{t("wizard.media.intro")}</p>
      <Labelled
        label={t("wizard.media.file")}
        error={error}
        hint={t("wizard.media.hint")}
        control={(tied) => (
          <input
            type="file"
            accept={MEDIA_ACCEPT}
            className="block w-full text-sm file:mr-3 file:rounded-md file:border-0 file:bg-emerald-700 file:px-3 file:py-2 file:text-white"
            onChange={(e) => {
              choose(e.target.files?.[0]);
              e.target.value = "";
            }}
            {...tied}
          />
        )}
      />
      {upload.pending ? <Spinner label={t("wizard.media.uploading")} /> : null}
      {media ? (
        <div className="flex items-center gap-3 rounded-md border border-slate-200 p-3" data-testid="media-chosen">
          {media.url ? <img src={media.url} alt={media.media.filename} className="h-20 w-20 rounded object-cover" /> : null}
          <div className="min-w-0 flex-1 text-sm">
            <p className="break-all font-medium">{media.media.filename}</p>
            <p className="text-slate-700">
              {media.media.mime_type} · {sizeText(media.media.size, format.number)}
            </p>
            <p className="text-slate-700">{t("wizard.message.caption")}</p>
          </div>
          <button
            type="button"
            className="btn-secondary px-2 py-1 text-xs"
            onClick={() => setMedia(null)}
          >
            {t("wizard.media.remove")}
          </button>
        </div>
      ) : null}
    </>
  );
}

/** Uploads a file to the media store (refusing one too large first), saying why not in the caller's field. */
function useMediaUpload(setError: (error: string | undefined) => void, stored: (media: Media, file: File) => void | Promise<void>) {
  const { t } = useI18n();
  const upload = useMutation({
    mutationFn: (file: File) => {
      const form = new FormData();
      form.append("file", file, file.name);
      return api<Media>("/api/v1/media", { method: "POST", body: form });
    },
  });
  const choose = (file: File | undefined) => {
    setError(undefined);
    if (!file) return;
    if (file.size > MEDIA_MAX) {
      setError(t("wizard.media.tooLarge"));
      return;
    }
    upload.mutate(file, {
      onSuccess: (media) => stored(media, file),
      onError: (err) =>
        setError(
          err instanceof ApiError && err.code === "unsupported_file"
            ? t("wizard.media.unsupported")
            : err instanceof ApiError && err.status === 413
              ? t("wizard.media.tooLarge")
              : errorText(t, err),
        ),
    });
  };
  return { choose, pending: upload.isPending };
}

function isMediaHeader(template: WhatsappTemplate): template is WhatsappTemplate & { header_kind: "image" | "video" | "document" } {
  return template.header_kind === "image" || template.header_kind === "video" || template.header_kind === "document";
}

function SendersStep({ senders, setSenders, error }: { senders: string[]; setSenders: (ids: string[]) => void; error?: string }) {
  const { t } = useI18n();
  const format = useFormat();
  const { sessions, isPending } = useSessions();
  const legendId = useId();
  const errorId = useId();
  const toggle = (id: string) => setSenders(senders.includes(id) ? senders.filter((s) => s !== id) : [...senders, id]);
  return (
    <fieldset aria-labelledby={legendId} aria-describedby={error ? errorId : undefined} className="space-y-2">
      <legend id={legendId} className="text-sm font-medium text-slate-800">
        {t("wizard.senders.choose")}
      </legend>
      <p className="text-sm text-slate-700">{t("wizard.senders.hint")}</p>
      {isPending ? <Spinner label={t("common.loading")} /> : null}
      {sessions && !sessions.some((s) => s.status === "ready") ? (
        <p className="text-sm text-slate-700">
          {t("wizard.senders.noneReady")}{" "}
          <Link href="/numbers" className="font-medium text-emerald-800 underline">
            {t("check.toNumbers")}
          </Link>
        </p>
      ) : null}
      {sessions?.map((s) => {
        const ready = s.status === "ready";
        return (
          <label
            key={s.id}
            className={`flex items-center gap-3 rounded-md border p-3 ${ready ? "cursor-pointer border-slate-200" : "border-slate-100 opacity-70"}`}
          >
            <input
              type="checkbox"
              checked={ready && senders.includes(s.id)}
              disabled={!ready}
              onChange={() => toggle(s.id)}
              aria-label={t("wizard.senders.one", { name: s.name, phone: s.phone_number ?? t("numbers.notLinked") })}
            />
            <span className="min-w-0 flex-1">
              <span className="block font-medium">{s.name}</span>
              <span className="block text-sm text-slate-700">
                {s.phone_number ?? t("numbers.notLinked")} ·{" "}
                {t("numbers.sentToday", { sent: format.number(s.sent_today), limit: format.number(s.daily_limit) })}
              </span>
            </span>
            <StatusBadge status={s.status} />
          </label>
        );
      })}
      {error ? (
        <p id={errorId} className="text-sm text-red-700">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}

function ThrottleStep({
  min,
  max,
  setMin,
  setMax,
  errors,
  recipients,
  senders,
}: {
  min: string;
  max: string;
  setMin: (v: string) => void;
  setMax: (v: string) => void;
  errors: Errors;
  recipients: number;
  senders: number;
}) {
  const { t } = useI18n();
  const format = useFormat();
  const average = (Number(min) + Number(max)) / 2;
  // Each sender waits between its own sends; they send side by side.
  const minutes = Number.isFinite(average) ? Math.ceil((Math.ceil(recipients / senders) * average) / 60) : null;
  return (
    <>
      <p className="text-sm text-slate-700">{t("wizard.throttle.intro")}</p>
      <div className="grid gap-4 sm:grid-cols-2">
        <Field
          label={t("wizard.throttle.min")}
          type="number"
          inputMode="decimal"
          min={0}
          max={600}
          step={0.5}
          value={min}
          onChange={(e) => setMin(e.target.value)}
          error={errors.min_delay ?? errors.throttle}
        />
        <Field
          label={t("wizard.throttle.max")}
          type="number"
          inputMode="decimal"
          min={0}
          max={600}
          step={0.5}
          value={max}
          onChange={(e) => setMax(e.target.value)}
          error={errors.max_delay}
        />
      </div>
      {minutes !== null ? (
        <p className="text-sm text-slate-800">{t("wizard.throttle.estimate", { minutes: format.number(Math.max(1, minutes)) })}</p>
      ) : null}
    </>
  );
}

function ScheduleStep({
  when,
  setWhen,
  at,
  setAt,
  error,
}: {
  when: "now" | "later";
  setWhen: (when: "now" | "later") => void;
  at: string;
  setAt: (at: string) => void;
  error?: string;
}) {
  const { t } = useI18n();
  const legendId = useId();
  return (
    <fieldset aria-labelledby={legendId} className="space-y-3">
      <legend id={legendId} className="text-sm font-medium text-slate-800">
        {t("wizard.schedule.when")}
      </legend>
      <label className="flex items-center gap-2">
        <input type="radio" name="when" checked={when === "now"} onChange={() => setWhen("now")} />
        {t("wizard.schedule.now")}
      </label>
      <label className="flex items-center gap-2">
        <input type="radio" name="when" checked={when === "later"} onChange={() => setWhen("later")} />
        {t("wizard.schedule.later")}
      </label>
      {when === "later" ? (
        <Field label={t("wizard.schedule.at")} type="datetime-local" value={at} onChange={(e) => setAt(e.target.value)} error={error} />
      ) : null}
      <p className="text-sm text-slate-700">{t("wizard.schedule.hours")}</p>
    </fieldset>
  );
}

function Review({
  name,
  list,
  template,
  sample,
  whatsappTemplate,
  templateSample,
  templateHeader,
  media,
  senders,
  throttle,
  when,
  points,
  available,
  skip,
}: {
  name: string;
  list: ContactList;
  template: string;
  sample: string | null;
  whatsappTemplate: Chosen | null;
  templateSample: string | null;
  /** Its header, filled (text) or the attachment's name. */
  templateHeader: string | null;
  media: Media | null;
  senders: { name: string; phone_number: string | null }[];
  throttle: [string, string];
  when: string | null;
  points: number;
  available: number | null;
  skip: boolean;
}) {
  const { t } = useI18n();
  const format = useFormat();
  const row = (label: string, value: ReactNode) => (
    <div className="grid gap-1 py-2 sm:grid-cols-[12rem_1fr]">
      <dt className="text-sm text-slate-600">{label}</dt>
      <dd className="text-sm">{value}</dd>
    </div>
  );
  const short = available !== null && available < points;
  return (
    <>
      <dl className="divide-y divide-slate-100">
        {row(t("wizard.review.name"), name.trim())}
        {row(t("campaign.list"), `${list.name} · ${t("wizard.list.contacts", { count: format.number(list.accepted) })}`)}
        {row(t("campaign.message"), <p className="whitespace-pre-wrap break-words font-mono text-[13px]">{template}</p>)}
        {sample ? row(t("wizard.review.sample"), <p className="whitespace-pre-wrap break-words">{sample}</p>) : null}
        {whatsappTemplate
          ? row(
              t("wizard.review.template"),
              <div data-testid="review-template">
                <p className="font-mono text-[13px]">
                  {whatsappTemplate.name} · {whatsappTemplate.language}
                </p>
                {templateHeader ? <p className="font-semibold">{templateHeader}</p> : null}
                {templateSample ? <p className="whitespace-pre-wrap break-words">{templateSample}</p> : null}
              </div>,
            )
          : null}
        {row(t("campaign.media"), media ? media.filename : t("wizard.review.noMedia"))}
        {row(t("campaign.senders"), senders.map((s) => `${s.name}${s.phone_number ? ` (${s.phone_number})` : ""}`).join(", "))}
        {row(t("campaign.throttle"), t("campaign.throttleValue", { min: throttle[0], max: throttle[1] }))}
        {row(t("wizard.review.when"), when ? format.date(new Date(when).toISOString()) : t("wizard.schedule.now"))}
        {row(t("wizard.review.skip"), skip ? t("wizard.review.skip.yes") : t("wizard.review.skip.no"))}
      </dl>
      <section
        className={`rounded-md border p-4 ${short ? "border-red-300 bg-red-50" : "border-emerald-200 bg-emerald-50"}`}
        aria-label={t("wizard.review.points")}
        data-testid="review-points"
        data-points={points}
        data-enough={short ? "false" : "true"}
      >
        <p className="font-semibold">
          {t("wizard.review.reserve", {
            points: format.number(points),
            recipients: format.number(list.accepted),
            each: POINTS_PER_MESSAGE,
          })}
        </p>
        {available !== null ? (
          <p className="text-sm">
            {t("wizard.review.available", { available: format.number(available) })}
            {!short ? ` · ${t("wizard.review.after", { left: format.number(available - points) })}` : ""}
          </p>
        ) : (
          <Spinner label={t("common.loading")} />
        )}
        {short ? (
          <p role="alert" className="mt-2 text-sm font-medium text-red-800">
            {t("wizard.review.notEnough", { points: format.number(points), available: format.number(available ?? 0) })}
          </p>
        ) : null}
        {when ? <p className="mt-1 text-sm text-slate-700">{t("wizard.review.atStart")}</p> : null}
      </section>
    </>
  );
}

function TemplateStep({
  list,
  senders,
  usable,
  loading,
  chosen,
  setChosen,
  headerMedia,
  setHeaderMedia,
  preview,
  errors,
}: {
  list: ContactList;
  senders: Session[];
  usable: WhatsappTemplate[];
  loading: boolean;
  chosen: Chosen | null;
  setChosen: (chosen: Chosen) => void;
  headerMedia: Media | null;
  setHeaderMedia: (media: Media | null) => void;
  preview: TemplatePreviewState | null;
  errors: Errors;
}) {
  const { t } = useI18n();
  const legendId = useId();
  const errorId = useId();
  const groupId = useId();
  // Inputs are numbered header first, then body: the focused one takes inserted variables.
  const focused = useRef<number>(0);
  const inputs = useRef<(HTMLInputElement | null)[]>([]);
  const [headerError, setHeaderError] = useState<string | undefined>();
  const template = chosen ? usable.find((u) => u.name === chosen.name && u.language === chosen.language) : undefined;
  const blanks = (n: number) => Array.from({ length: n }, () => "");
  const choose = (u: WhatsappTemplate) => {
    setHeaderMedia(null);
    setChosen({
      name: u.name,
      language: u.language,
      parameters: blanks(u.body_parameters),
      ...(u.header_kind === "text" && u.header_parameters > 0 ? { header_parameters: blanks(u.header_parameters) } : {}),
    });
  };
  const headerCount = chosen?.header_parameters?.length ?? 0;
  const all = chosen ? allParameters(chosen) : [];
  const setParameter = (i: number, value: string) => {
    if (!chosen) return;
    const values = [...all];
    values[i] = value;
    setChosen({
      ...chosen,
      ...(chosen.header_parameters ? { header_parameters: values.slice(0, headerCount) } : {}),
      parameters: values.slice(headerCount),
    });
  };
  const upload = useMediaUpload(setHeaderError, (media) => {
    setHeaderMedia(media);
    if (chosen) setChosen({ ...chosen, header_media_id: media.id });
  });
  const insert = (variable: string) => {
    if (!chosen || all.length === 0) return;
    const i = Math.min(focused.current, all.length - 1);
    const el = inputs.current[i];
    const value = all[i];
    const next = insertAt(value, el?.selectionStart ?? value.length, el?.selectionEnd ?? value.length, `{{${variable}}}`);
    setParameter(i, next.text);
    requestAnimationFrame(() => {
      el?.focus();
      el?.setSelectionRange(next.cursor, next.cursor);
    });
  };
  const variables = ["name", "phone", ...list.columns.filter((c) => c !== "name" && c !== "phone")];
  const parameterError = (i: number) =>
    i < headerCount ? errors[`whatsapp_template.header_parameters[${i}]`] : errors[`whatsapp_template.parameters[${i - headerCount}]`];
  const parameterLabel = (i: number) =>
    i < headerCount ? t("wizard.template.headerParameter", { n: i + 1 }) : t("wizard.template.parameter", { n: i - headerCount + 1 });
  const liveError = preview?.error ? templateErrorText(t, preview.error) : undefined;
  return (
    <>
      <p className="text-sm text-slate-700">
        {t("wizard.template.intro", { senders: senders.map((s) => s.name).join(", ") })}
      </p>
      <fieldset
        aria-labelledby={legendId}
        aria-describedby={errors.whatsapp_template ? errorId : undefined}
        aria-invalid={errors.whatsapp_template ? true : undefined}
        className="space-y-2"
      >
        <legend id={legendId} className="text-sm font-medium text-slate-800">
          {t("wizard.template.choose")}
        </legend>
        {loading ? <Spinner label={t("common.loading")} /> : null}
        {!loading && usable.length === 0 ? <NoTemplates senders={senders} /> : null}
        {usable.map((u) => {
          const checked = chosen?.name === u.name && chosen.language === u.language;
          return (
            <label
              key={`${u.name}/${u.language}`}
              className={`flex cursor-pointer items-start gap-3 rounded-md border p-3 ${checked ? "border-emerald-700 bg-emerald-50" : "border-slate-200"}`}
            >
              <input type="radio" name="whatsapp_template" className="mt-1" checked={checked} onChange={() => choose(u)} />
              <span className="min-w-0">
                <span className="block font-mono text-sm font-medium">
                  {u.name} · {u.language}
                </span>
                {u.header_kind === "text" && u.header_text ? <span className="block text-sm font-semibold text-slate-800">{u.header_text}</span> : null}
                {isMediaHeader(u) ? <span className="block text-xs text-slate-600">{t(`wizard.template.header.${u.header_kind}`)}</span> : null}
                {u.body ? <span className="block whitespace-pre-wrap break-words text-sm text-slate-700">{u.body}</span> : null}
              </span>
            </label>
          );
        })}
        {errors.whatsapp_template ? (
          <p id={errorId} className="text-sm text-red-700">
            {errors.whatsapp_template}
          </p>
        ) : null}
      </fieldset>
      {chosen && template && isMediaHeader(template) ? (
        <div className="space-y-2">
          <Labelled
            label={t(`wizard.template.header.${template.header_kind}`)}
            error={headerError ?? errors["whatsapp_template.header_media_id"]}
            hint={t("wizard.template.headerMediaHint")}
            control={(tied) => (
              <input
                type="file"
                accept={HEADER_ACCEPT[template.header_kind]}
                className="block w-full text-sm file:mr-3 file:rounded-md file:border-0 file:bg-emerald-700 file:px-3 file:py-2 file:text-white"
                onChange={(e) => {
                  upload.choose(e.target.files?.[0]);
                  e.target.value = "";
                }}
                {...tied}
              />
            )}
          />
          {upload.pending ? <Spinner label={t("wizard.media.uploading")} /> : null}
          {headerMedia ? (
            <p className="text-sm" data-testid="header-media">
              <span className="break-all font-medium">{headerMedia.filename}</span> <span className="text-slate-700">· {headerMedia.mime_type}</span>
            </p>
          ) : null}
        </div>
      ) : null}
      {chosen && template && all.length > 0 ? (
        <>
          <div className="space-y-1">
            <p id={groupId} className="text-sm font-medium text-slate-800">
              {t("wizard.template.insert")}
            </p>
            <div role="group" aria-labelledby={groupId} className="flex flex-wrap gap-2">
              {variables.map((v) => (
                <button key={v} type="button" className="btn-secondary px-2 py-1 font-mono text-xs" onClick={() => insert(v)}>
                  {`{{${v}}}`}
                </button>
              ))}
            </div>
          </div>
          {all.map((value, i) => (
            <Labelled
              key={i}
              label={parameterLabel(i)}
              error={parameterError(i)}
              hint={i === 0 ? t("wizard.template.parameterHint") : undefined}
              control={(tied) => (
                <input
                  ref={(el) => {
                    inputs.current[i] = el;
                  }}
                  className="input font-mono"
                  value={value}
                  maxLength={1024}
                  onFocus={() => {
                    focused.current = i;
                  }}
                  onChange={(e) => setParameter(i, e.target.value)}
                  {...tied}
                />
              )}
            />
          ))}
        </>
      ) : null}
      {chosen && template ? (
        <section aria-label={t("wizard.preview")} className="space-y-2" data-testid="template-preview-official">
          <h3 className="text-sm font-medium text-slate-800">{t("wizard.preview")}</h3>
          {liveError ? <p className="text-sm text-red-700">{liveError}</p> : null}
          {all.some((p) => p.trim() === "") ? (
            <p className="text-sm text-slate-600">{t("wizard.template.fillFirst")}</p>
          ) : !preview ? (
            <Spinner label={t("wizard.preview.loading")} />
          ) : null}
          {preview?.result ? (
            <ul className="space-y-2">
              {preview.result.samples.map((sample) => (
                <li key={sample.phone} className="rounded-lg bg-emerald-50 p-3" data-testid="template-sample" data-phone={sample.phone}>
                  <p className="text-xs text-slate-700">
                    {sample.name ? `${sample.name} · ` : ""}
                    <span className="font-mono">{sample.phone}</span>
                  </p>
                  {sample.whatsapp_template?.header ? (
                    <p className="mt-1 text-sm font-semibold text-slate-900" data-testid="template-sample-header">
                      {sample.whatsapp_template.header}
                    </p>
                  ) : null}
                  {sample.whatsapp_template?.text ? (
                    <p className="mt-1 whitespace-pre-wrap break-words text-sm text-slate-900" data-testid="template-sample-text">
                      {sample.whatsapp_template.text}
                    </p>
                  ) : (
                    <p className="mt-1 text-sm text-red-800">{t("wizard.preview.noValue")}</p>
                  )}
                </li>
              ))}
            </ul>
          ) : null}
        </section>
      ) : null}
    </>
  );
}

/** No template every official sender can send: sync them from Meta here. */
function NoTemplates({ senders }: { senders: Session[] }) {
  const { t } = useI18n();
  return (
    <div className="space-y-2 rounded-md border border-amber-200 bg-amber-50 p-3 text-sm">
      <p>{t("wizard.template.none")}</p>
      <ul className="space-y-2">
        {senders.map((s) => (
          <SyncOne key={s.id} session={s} />
        ))}
      </ul>
      <p>
        <Link href="/numbers" className="font-medium text-emerald-800 underline">
          {t("check.toNumbers")}
        </Link>
      </p>
    </div>
  );
}

function SyncOne({ session }: { session: Session }) {
  const { t } = useI18n();
  const sync = useSyncTemplates(session.id);
  return (
    <li className="flex flex-wrap items-center gap-2">
      <span className="font-medium">{session.name}</span>
      <button type="button" className="btn-secondary px-2 py-1 text-xs" disabled={sync.isPending} onClick={() => sync.mutate(null)}>
        {sync.isPending ? t("common.wait") : t("templates.sync")}
      </button>
      {sync.error ? <span className="text-red-800">{errorText(t, sync.error)}</span> : null}
    </li>
  );
}
