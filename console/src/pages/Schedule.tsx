import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useId, useMemo, useState, type FormEvent } from "react";
import { api } from "../api/client";
import { inboxKeys, useSchedule } from "../api/queries";
import { Layout } from "../components/Layout";
import { SelectField } from "../components/Select";
import { Alert, Spinner } from "../components/ui";
import { WeekEditor } from "../components/WeekEditor";
import { errorText, formErrors, useI18n, type MessageKey } from "../i18n";
import {
  openState,
  PRESETS,
  presetOf,
  timezones,
  toWeek,
  toWindows,
  type OverrideMode,
  type ScheduleView,
  type Week,
} from "../lib/schedule";

/** `/schedule`: the active hours, their time zone and the override. */
export function Schedule() {
  const { t } = useI18n();
  const schedule = useSchedule();
  return (
    <Layout title={t("schedule.title")}>
      <p className="mb-4 max-w-3xl text-sm text-slate-700">{t("schedule.intro")}</p>
      {schedule.error ? <Alert>{errorText(t, schedule.error)}</Alert> : null}
      {schedule.isPending ? <Spinner label={t("common.loading")} /> : null}
      {schedule.data ? (
        <div className="grid gap-6 lg:grid-cols-[1fr_20rem]">
          <HoursForm schedule={schedule.data} />
          <Now schedule={schedule.data} />
        </div>
      ) : null}
    </Layout>
  );
}

const STATE_STYLE: Record<string, string> = {
  paused: "border-red-200 bg-red-50 text-red-900",
  activated: "border-sky-200 bg-sky-50 text-sky-900",
  always: "border-emerald-200 bg-emerald-50 text-emerald-900",
  open: "border-emerald-200 bg-emerald-50 text-emerald-900",
  closed: "border-amber-200 bg-amber-50 text-amber-900",
};

/** What the hours say now, and the override buttons. */
function Now({ schedule }: { schedule: ScheduleView }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const timer = setInterval(() => setNow(new Date()), 30_000);
    return () => clearInterval(timer);
  }, []);
  const override = useMutation({
    mutationFn: (mode: OverrideMode) => api<ScheduleView>("/api/v1/schedule/override", { method: "POST", body: { mode } }),
    onSuccess: (view) => client.setQueryData(inboxKeys.schedule, view),
  });
  const state = openState(schedule, now);
  const buttons: { mode: OverrideMode; label: MessageKey; className: string }[] = [
    { mode: "pause", label: "schedule.override.pause", className: "btn-danger" },
    { mode: "activate", label: "schedule.override.activate", className: "btn-primary" },
    { mode: "none", label: "schedule.override.none", className: "btn-secondary" },
  ];
  return (
    <section aria-labelledby="now-title" className="card order-first h-fit space-y-3 lg:order-none">
      <h2 id="now-title" className="text-sm font-medium text-slate-700">
        {t("schedule.now")}
      </h2>
      <p
        className={`rounded-md border px-3 py-2 text-sm font-semibold ${STATE_STYLE[state]}`}
        data-testid="schedule-state"
        data-state={state}
        data-override={schedule.override}
        aria-live="polite"
      >
        {t(`schedule.state.${state}` as MessageKey)}
      </p>
      <p className="text-sm text-slate-700">{t(`schedule.state.${state}.hint` as MessageKey)}</p>
      <div className="flex flex-col gap-2" role="group" aria-label={t("schedule.override")}>
        {buttons.map((b) => (
          <button
            key={b.mode}
            type="button"
            className={b.className}
            aria-pressed={schedule.override === b.mode}
            disabled={override.isPending || schedule.override === b.mode}
            onClick={() => override.mutate(b.mode)}
          >
            {t(b.label)}
          </button>
        ))}
      </div>
      <Alert>{override.error ? errorText(t, override.error) : null}</Alert>
    </section>
  );
}

function HoursForm({ schedule }: { schedule: ScheduleView }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const [timezone, setTimezone] = useState(schedule.timezone);
  const [always, setAlways] = useState(schedule.windows.length === 0);
  const [week, setWeek] = useState<Week>(() => toWeek(schedule.windows.length ? schedule.windows : PRESETS[0].windows));
  const [local, setLocal] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const zones = useMemo(() => timezones(schedule.timezone), [schedule.timezone]);
  const mode = useId();
  const windows = always ? [] : toWindows(week);
  const preset = presetOf(windows);

  const save = useMutation({
    mutationFn: () => api<ScheduleView>("/api/v1/schedule", { method: "PUT", body: { timezone, windows } }),
    onSuccess: (view) => {
      client.setQueryData(inboxKeys.schedule, view);
      setSaved(true);
    },
  });
  const errors = formErrors(t, save.error, ["timezone"]);
  const change = <T,>(set: (value: T) => void) => (value: T) => {
    set(value);
    setSaved(false);
    setLocal(null);
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!always && windows.length === 0) {
      setLocal(t("schedule.error.noHours"));
      return;
    }
    save.mutate();
  };

  return (
    <form onSubmit={submit} className="space-y-5" noValidate>
      <SelectField
        label={t("schedule.timezone")}
        hint={t("schedule.timezoneHint")}
        error={errors.fields.timezone}
        value={timezone}
        onChange={(e) => change(setTimezone)(e.target.value)}
      >
        {zones.map((zone) => (
          <option key={zone} value={zone}>
            {zone}
          </option>
        ))}
      </SelectField>

      <div className="space-y-2" role="group" aria-label={t("schedule.presets")}>
        <p className="text-sm font-medium text-slate-800">{t("schedule.presets")}</p>
        <div className="flex flex-wrap gap-2">
          {PRESETS.map((p) => (
            <button
              key={p.id}
              type="button"
              className={preset === p.id ? "btn-primary" : "btn-secondary"}
              aria-pressed={preset === p.id}
              onClick={() => {
                change(setAlways)(p.windows.length === 0);
                if (p.windows.length > 0) setWeek(toWeek(p.windows));
              }}
            >
              {t(`schedule.preset.${p.id}` as MessageKey)}
            </button>
          ))}
        </div>
      </div>

      <fieldset className="space-y-2">
        <legend className="text-sm font-medium text-slate-800">{t("schedule.mode")}</legend>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name={mode} className="h-4 w-4 accent-emerald-700" checked={always} onChange={() => change(setAlways)(true)} />
          {t("schedule.mode.always")}
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input type="radio" name={mode} className="h-4 w-4 accent-emerald-700" checked={!always} onChange={() => change(setAlways)(false)} />
          {t("schedule.mode.windows")}
        </label>
      </fieldset>

      {!always ? <WeekEditor week={week} onChange={change(setWeek)} label={t("schedule.week")} /> : null}

      <Alert>{local ?? errors.form}</Alert>
      <div className="flex flex-wrap items-center gap-3">
        <button type="submit" className="btn-primary" disabled={save.isPending}>
          {save.isPending ? t("common.wait") : t("schedule.save")}
        </button>
        <span role="status" className="text-sm text-emerald-800">
          {saved ? t("schedule.saved") : ""}
        </span>
      </div>
    </form>
  );
}
