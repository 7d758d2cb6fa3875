import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { Link, useLocation } from "wouter";
import { api } from "../api/client";
import { inboxKeys, useAutoReplies, useAutoReplyStats, useSessions } from "../api/queries";
import type { AutoReply, Page, Session } from "../api/types";
import { Layout } from "../components/Layout";
import { SelectField } from "../components/Select";
import { Alert, ConfirmActions, Dialog, EmptyState, Field, Labelled, Spinner } from "../components/ui";
import { WeekEditor } from "../components/WeekEditor";
import { errorText, formErrors, useFormat, useI18n, type MessageKey } from "../i18n";
import { matchRule, type Trigger } from "../lib/autoReply";
import { emptyWeek, toWeek, toWindows, WEEKDAYS, type Week } from "../lib/schedule";

const TRIGGERS: readonly Trigger[] = ["keyword", "contains", "regex"];
const COOLDOWNS = [0, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400];

/** `/automation`: the auto-reply rules, each with what it decided. */
export function Automation() {
  const { t } = useI18n();
  const rules = useAutoReplies();
  const { sessions } = useSessions();
  const [deleting, setDeleting] = useState<AutoReply | null>(null);
  const add = (
    <Link href="/automation/new" className="btn-primary">
      {t("automation.add")}
    </Link>
  );
  return (
    <Layout title={t("automation.title")} actions={rules.data && rules.data.items.length > 0 ? add : undefined}>
      <p className="mb-4 max-w-3xl text-sm text-slate-700">{t("automation.intro")}</p>
      {rules.error ? <Alert>{errorText(t, rules.error)}</Alert> : null}
      {rules.isPending ? <Spinner label={t("common.loading")} /> : null}
      {rules.data && rules.data.items.length === 0 ? (
        <EmptyState title={t("automation.empty")}>
          <p>{t("automation.emptyHint")}</p>
          <div className="mt-4">{add}</div>
        </EmptyState>
      ) : null}
      {rules.data && rules.data.items.length > 0 ? (
        <ul className="grid gap-4 lg:grid-cols-2">
          {rules.data.items.map((rule) => (
            <RuleCard key={rule.id} rule={rule} sessions={sessions ?? []} onDelete={() => setDeleting(rule)} />
          ))}
        </ul>
      ) : null}
      <Dialog open={deleting !== null} title={t("automation.delete.title")} onClose={() => setDeleting(null)}>
        {deleting ? <ConfirmDelete rule={deleting} onDone={() => setDeleting(null)} /> : null}
      </Dialog>
    </Layout>
  );
}

function cooldownText(t: ReturnType<typeof useI18n>["t"], seconds: number): string {
  if (seconds === 0) return t("automation.cooldown.none");
  if (seconds % 86400 === 0) return t("automation.cooldown.days", { n: seconds / 86400 });
  if (seconds % 3600 === 0) return t("automation.cooldown.hours", { n: seconds / 3600 });
  if (seconds % 60 === 0) return t("automation.cooldown.minutes", { n: seconds / 60 });
  return t("automation.cooldown.seconds", { n: seconds });
}

function RuleCard({ rule, sessions, onDelete }: { rule: AutoReply; sessions: Session[]; onDelete: () => void }) {
  const { t } = useI18n();
  const format = useFormat();
  const client = useQueryClient();
  const stats = useAutoReplyStats(rule.id);
  const toggle = useMutation({
    mutationFn: (enabled: boolean) => api<AutoReply>(`/api/v1/auto-replies/${rule.id}`, { method: "PATCH", body: { enabled } }),
    onSettled: () => client.invalidateQueries({ queryKey: inboxKeys.autoReplies }),
  });
  const headingId = `rule-${rule.id}`;
  const numbers =
    rule.session_ids === null
      ? t("automation.allNumbers")
      : rule.session_ids.map((id) => sessions.find((s) => s.id === id)?.name ?? id).join(", ");
  const silences = Object.entries(stats.data?.outcomes ?? {}).filter(([outcome]) => outcome !== "answered");
  return (
    <li className="card flex flex-col gap-3" aria-labelledby={headingId} data-testid="rule-card" data-rule-id={rule.id}>
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0">
          <h2 id={headingId} className="truncate font-semibold">
            {rule.name}
          </h2>
          <p className="text-sm text-slate-700">
            {t(`automation.trigger.${rule.trigger}` as MessageKey)}: <code className="rounded bg-slate-100 px-1">{rule.pattern}</code>
          </p>
        </div>
        <label className="flex shrink-0 items-center gap-2 text-sm">
          <input
            type="checkbox"
            role="switch"
            className="h-4 w-4 accent-emerald-700"
            checked={toggle.isPending ? !!toggle.variables : rule.enabled}
            disabled={toggle.isPending}
            onChange={(e) => toggle.mutate(e.target.checked)}
            aria-label={t("automation.enabledFor", { name: rule.name })}
          />
          {(toggle.isPending ? toggle.variables : rule.enabled) ? t("automation.on") : t("automation.off")}
        </label>
      </div>
      <Alert>{toggle.error ? errorText(t, toggle.error) : null}</Alert>
      <p className="line-clamp-3 whitespace-pre-wrap rounded-md bg-emerald-50 px-3 py-2 text-sm text-slate-900">{rule.response}</p>
      <dl className="grid grid-cols-2 gap-2 text-sm">
        <div>
          <dt className="text-slate-600">{t("automation.numbers")}</dt>
          <dd>{numbers}</dd>
        </div>
        <div>
          <dt className="text-slate-600">{t("automation.cooldown")}</dt>
          <dd>{cooldownText(t, rule.cooldown_seconds)}</dd>
        </div>
        <div className="col-span-2">
          <dt className="text-slate-600">{t("automation.hours")}</dt>
          <dd>{rule.active_windows?.length ? <WindowsSummary windows={rule.active_windows} /> : t("automation.hoursTenant")}</dd>
        </div>
      </dl>
      <section aria-label={t("automation.stats")} className="rounded-md border border-slate-200 px-3 py-2 text-sm" data-testid="rule-stats">
        {stats.data ? (
          <>
            <p>
              <span data-testid="answered" data-count={stats.data.answered}>
                {t("automation.answered", { count: format.number(stats.data.answered) })}
              </span>
              {" · "}
              <span data-testid="unanswered" data-count={stats.data.unanswered}>
                {t("automation.unanswered", { count: format.number(stats.data.unanswered) })}
              </span>
            </p>
            {silences.length > 0 ? (
              <ul className="mt-1 flex flex-wrap gap-x-3 text-xs text-slate-700">
                {silences.map(([outcome, n]) => (
                  <li key={outcome}>
                    {t(`silence.${outcome}` as MessageKey)}: {format.number(n)}
                  </li>
                ))}
              </ul>
            ) : null}
            {stats.data.last_answered_at ? (
              <p className="mt-1 text-xs text-slate-600">{t("automation.lastAnswered", { at: format.date(stats.data.last_answered_at) })}</p>
            ) : null}
          </>
        ) : stats.error ? (
          errorText(t, stats.error)
        ) : (
          t("common.loading")
        )}
      </section>
      <div className="mt-auto flex flex-wrap gap-2">
        <Link href={`/automation/${rule.id}`} className="btn-secondary" aria-label={t("automation.editName", { name: rule.name })}>
          {t("automation.edit")}
        </Link>
        <button type="button" className="btn-secondary text-red-800" onClick={onDelete} aria-label={t("automation.deleteName", { name: rule.name })}>
          {t("automation.delete")}
        </button>
      </div>
    </li>
  );
}

function WindowsSummary({ windows }: { windows: NonNullable<AutoReply["active_windows"]> }) {
  const { t } = useI18n();
  return (
    <>
      {windows
        .map((w) => `${w.days.map((d) => t(`day.short.${d}` as MessageKey)).join(", ")} ${w.start}–${w.end}`)
        .join("; ")}
    </>
  );
}

function ConfirmDelete({ rule, onDone }: { rule: AutoReply; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const remove = useMutation({
    mutationFn: () => api<void>(`/api/v1/auto-replies/${rule.id}`, { method: "DELETE" }),
    onSuccess: () => {
      // Gone from the list at once, and its stats are not asked for again
      // (they would be a 404).
      client.setQueryData<Page<AutoReply>>(inboxKeys.autoReplies, (page) =>
        page ? { ...page, items: page.items.filter((r) => r.id !== rule.id) } : page,
      );
      client.removeQueries({ queryKey: inboxKeys.stats(rule.id) });
      void client.invalidateQueries({ queryKey: inboxKeys.autoReplies, exact: true });
      onDone();
    },
  });
  return (
    <div className="space-y-4">
      <p className="text-sm">{t("automation.delete.body", { name: rule.name })}</p>
      <ConfirmActions
        error={remove.error}
        pending={remove.isPending}
        confirm={t("automation.delete.confirm")}
        onConfirm={() => remove.mutate()}
        onCancel={onDone}
      />
    </div>
  );
}

/** `/automation/new` and `/automation/:id`: a rule's editor. */
export function AutomationRule({ params }: { params?: { id?: string } }) {
  const { t } = useI18n();
  const id = params?.id;
  const rules = useAutoReplies();
  const { sessions } = useSessions();
  const rule = id ? rules.data?.items.find((r) => r.id === id) : undefined;
  const title = id ? t("automation.editTitle") : t("automation.newTitle");
  return (
    <Layout title={title}>
      <Link href="/automation" className="mb-4 inline-block text-sm text-emerald-800 underline">
        {t("automation.back")}
      </Link>
      {rules.error ? <Alert>{errorText(t, rules.error)}</Alert> : null}
      {id && rules.data && !rule ? <Alert>{t("error.not_found")}</Alert> : null}
      {(!id || rule) && sessions ? <RuleForm key={rule?.id ?? "new"} rule={rule} sessions={sessions} /> : <Spinner label={t("common.loading")} />}
    </Layout>
  );
}

const FIELDS = ["name", "trigger", "pattern", "response", "cooldown_seconds", "session_ids", "priority", "max_per_hour", "active_windows"];

function RuleForm({ rule, sessions }: { rule?: AutoReply; sessions: Session[] }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [, navigate] = useLocation();
  const [name, setName] = useState(rule?.name ?? "");
  const [trigger, setTrigger] = useState<Trigger>(rule?.trigger ?? "contains");
  const [pattern, setPattern] = useState(rule?.pattern ?? "");
  const [sample, setSample] = useState("");
  const [response, setResponse] = useState(rule?.response ?? "");
  const [allNumbers, setAllNumbers] = useState(rule ? rule.session_ids === null : true);
  const [numbers, setNumbers] = useState<ReadonlySet<string>>(new Set(rule?.session_ids ?? []));
  const [cooldown, setCooldown] = useState(rule?.cooldown_seconds ?? 3600);
  const [limitHours, setLimitHours] = useState(!!rule?.active_windows?.length);
  const [week, setWeek] = useState<Week>(() => (rule?.active_windows?.length ? toWeek(rule.active_windows) : weekdaysWeek()));
  const [priority, setPriority] = useState(String(rule?.priority ?? 0));
  const [maxPerHour, setMaxPerHour] = useState(rule?.max_per_hour ? String(rule.max_per_hour) : "");
  const [enabled, setEnabled] = useState(rule?.enabled ?? true);
  const [local, setLocal] = useState<Record<string, string>>({});
  const triggerName = useId();
  const numbersName = useId();

  const save = useMutation({
    mutationFn: (body: Record<string, unknown>) =>
      rule
        ? api<AutoReply>(`/api/v1/auto-replies/${rule.id}`, { method: "PATCH", body })
        : api<AutoReply>("/api/v1/auto-replies", { method: "POST", body }),
    onSuccess: () => {
      void client.invalidateQueries({ queryKey: inboxKeys.autoReplies });
      navigate("/automation");
    },
  });
  const server = formErrors(t, save.error, FIELDS);
  const errors = { ...server.fields, ...local };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const problems: Record<string, string> = {};
    if (name.trim() === "") problems.name = t("automation.error.name");
    if (pattern.trim() === "") problems.pattern = t("automation.error.pattern");
    if (response.trim() === "") problems.response = t("automation.error.response");
    if (!allNumbers && numbers.size === 0) problems.session_ids = t("automation.error.numbers");
    const windows = limitHours ? toWindows(week) : null;
    if (limitHours && windows?.length === 0) problems.active_windows = t("automation.error.hours");
    setLocal(problems);
    if (Object.keys(problems).length > 0) return;
    save.mutate({
      name: name.trim(),
      trigger,
      pattern,
      response,
      session_ids: allNumbers ? null : [...numbers],
      cooldown_seconds: cooldown,
      enabled,
      priority: Number(priority) || 0,
      max_per_hour: maxPerHour.trim() === "" ? null : Number(maxPerHour),
      active_windows: windows,
    });
  };

  const result = sample === "" ? null : matchRule(trigger, pattern, sample);
  const cooldowns = COOLDOWNS.includes(cooldown) ? COOLDOWNS : [...COOLDOWNS, cooldown].sort((a, b) => a - b);

  return (
    <form onSubmit={submit} noValidate className="max-w-3xl space-y-6">
      <Alert>{server.form}</Alert>
      <Field
        label={t("automation.name")}
        hint={t("automation.nameHint")}
        value={name}
        maxLength={100}
        error={errors.name}
        onChange={(e) => setName(e.target.value)}
      />

      <fieldset className="space-y-2">
        <legend className="text-sm font-medium text-slate-800">{t("automation.trigger")}</legend>
        {TRIGGERS.map((kind) => (
          <label key={kind} className="flex items-start gap-2 text-sm">
            <input
              type="radio"
              name={triggerName}
              className="mt-1 h-4 w-4 accent-emerald-700"
              checked={trigger === kind}
              onChange={() => setTrigger(kind)}
            />
            <span>
              <span className="font-medium">{t(`automation.trigger.${kind}` as MessageKey)}</span>
              <span className="block text-slate-600">{t(`automation.trigger.${kind}.hint` as MessageKey)}</span>
            </span>
          </label>
        ))}
      </fieldset>

      <div className="space-y-3 rounded-lg border border-slate-200 bg-white p-4">
        <Field
          label={trigger === "regex" ? t("automation.pattern.regex") : t("automation.pattern")}
          hint={t(`automation.pattern.hint.${trigger}` as MessageKey)}
          value={pattern}
          maxLength={500}
          error={errors.pattern}
          onChange={(e) => setPattern(e.target.value)}
          spellCheck={false}
        />
        <Field
          label={t("automation.test")}
          hint={t("automation.testHint")}
          value={sample}
          onChange={(e) => setSample(e.target.value)}
        />
        <p
          role="status"
          data-testid="test-result"
          data-result={result?.kind ?? "none"}
          className={`rounded-md px-3 py-2 text-sm font-medium ${
            result?.kind === "match"
              ? "bg-emerald-100 text-emerald-900"
              : result?.kind === "no_match"
                ? "bg-slate-100 text-slate-800"
                : result
                  ? "bg-amber-50 text-amber-900"
                  : "sr-only"
          }`}
        >
          {result ? t(`automation.test.${result.kind}` as MessageKey) : ""}
        </p>
      </div>

      <Labelled
        label={t("automation.response")}
        error={errors.response}
        hint={t("automation.responseHint", { count: response.length })}
        control={(tied) => (
          <textarea {...tied} className="input min-h-[6rem]" maxLength={4096} value={response} onChange={(e) => setResponse(e.target.value)} />
        )}
      />

      <fieldset className="space-y-2">
        <legend className="text-sm font-medium text-slate-800">{t("automation.numbers")}</legend>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name={numbersName} className="h-4 w-4 accent-emerald-700" checked={allNumbers} onChange={() => setAllNumbers(true)} />
          {t("automation.allNumbers")}
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name={numbersName} className="h-4 w-4 accent-emerald-700" checked={!allNumbers} onChange={() => setAllNumbers(false)} />
          {t("automation.someNumbers")}
        </label>
        {!allNumbers ? (
          <ul className="ml-6 space-y-1">
            {sessions.map((s) => (
              <li key={s.id}>
                <label className="flex items-center gap-2 text-sm">
                  <input
                    type="checkbox"
                    className="h-4 w-4 accent-emerald-700"
                    checked={numbers.has(s.id)}
                    onChange={() =>
                      setNumbers((current) => {
                        const next = new Set(current);
                        if (next.has(s.id)) next.delete(s.id);
                        else next.add(s.id);
                        return next;
                      })
                    }
                  />
                  {s.phone_number ? `${s.name} (${s.phone_number})` : s.name}
                </label>
              </li>
            ))}
          </ul>
        ) : null}
        {errors.session_ids ? <p className="text-sm text-red-700">{errors.session_ids}</p> : null}
      </fieldset>

      <SelectField
        label={t("automation.cooldown")}
        hint={t("automation.cooldownHint")}
        error={errors.cooldown_seconds}
        value={cooldown}
        onChange={(e) => setCooldown(Number(e.target.value))}
      >
        {cooldowns.map((seconds) => (
          <option key={seconds} value={seconds}>
            {cooldownText(t, seconds)}
          </option>
        ))}
      </SelectField>

      <div className="space-y-3">
        <label className="flex items-center gap-2 text-sm font-medium">
          <input type="checkbox" className="h-4 w-4 accent-emerald-700" checked={limitHours} onChange={(e) => setLimitHours(e.target.checked)} />
          {t("automation.ownHours")}
        </label>
        <p className="text-sm text-slate-600">{t("automation.ownHoursHint")}</p>
        {limitHours ? <WeekEditor week={week} onChange={setWeek} label={t("automation.ownHoursLabel")} /> : null}
        {errors.active_windows ? <p className="text-sm text-red-700">{errors.active_windows}</p> : null}
      </div>

      <details className="rounded-lg border border-slate-200 bg-white p-4" open={!!errors.priority || !!errors.max_per_hour}>
        <summary className="cursor-pointer text-sm font-medium">{t("automation.advanced")}</summary>
        <div className="mt-3 grid gap-4 sm:grid-cols-2">
          <Field
            label={t("automation.priority")}
            hint={t("automation.priorityHint")}
            type="number"
            min={-1000}
            max={1000}
            value={priority}
            error={errors.priority}
            onChange={(e) => setPriority(e.target.value)}
          />
          <Field
            label={t("automation.maxPerHour")}
            hint={t("automation.maxPerHourHint")}
            type="number"
            min={1}
            max={10000}
            value={maxPerHour}
            error={errors.max_per_hour}
            onChange={(e) => setMaxPerHour(e.target.value)}
          />
        </div>
      </details>

      <label className="flex items-center gap-2 text-sm font-medium">
        <input type="checkbox" className="h-4 w-4 accent-emerald-700" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        {t("automation.enabled")}
      </label>

      <div className="flex flex-wrap gap-2">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {save.isPending ? t("common.wait") : t("automation.save")}
        </button>
        <Link href="/automation" className="btn-secondary">
          {t("common.cancel")}
        </Link>
      </div>
    </form>
  );
}

function weekdaysWeek(): Week {
  const week = emptyWeek();
  for (const day of WEEKDAYS.slice(0, 5)) week[day] = [{ start: "09:00", end: "17:00" }];
  return week;
}
