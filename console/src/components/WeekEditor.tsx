import { useI18n, type MessageKey } from "../i18n";
import { crossesMidnight, WEEKDAYS, type Range, type Week, type Weekday } from "../lib/schedule";

/** The time ranges of each weekday: a day on or off, its ranges, each
 * from a start to an end (an end not after the start closes the next day). */
export function WeekEditor({ week, onChange, label }: { week: Week; onChange: (week: Week) => void; label: string }) {
  const { t } = useI18n();
  const set = (day: Weekday, ranges: Range[]) => onChange({ ...week, [day]: ranges });
  return (
    <fieldset className="space-y-2">
      <legend className="mb-1 text-sm font-medium text-slate-800">{label}</legend>
      <ul className="divide-y divide-slate-200 rounded-md border border-slate-200 bg-white">
        {WEEKDAYS.map((day) => {
          const name = t(`day.${day}` as MessageKey);
          const ranges = week[day];
          const open = ranges.length > 0;
          return (
            <li key={day} className="flex flex-wrap items-start gap-x-4 gap-y-2 px-3 py-2" data-day={day}>
              <label className="flex w-24 items-center gap-2 pt-1.5 text-sm font-medium">
                <input
                  type="checkbox"
                  className="h-4 w-4 accent-emerald-700"
                  checked={open}
                  onChange={() => set(day, open ? [] : [{ start: "09:00", end: "17:00" }])}
                />
                {name}
              </label>
              <div className="flex min-w-0 flex-1 flex-col gap-2">
                {open ? (
                  ranges.map((range, i) => (
                    <div key={i} className="flex flex-wrap items-center gap-2">
                      <input
                        type="time"
                        className="input w-auto"
                        value={range.start}
                        aria-label={t("week.start", { day: name })}
                        required
                        onChange={(e) => set(day, ranges.map((r, j) => (j === i ? { ...r, start: e.target.value } : r)))}
                      />
                      <span aria-hidden="true">–</span>
                      <input
                        type="time"
                        className="input w-auto"
                        value={range.end}
                        aria-label={t("week.end", { day: name })}
                        required
                        onChange={(e) => set(day, ranges.map((r, j) => (j === i ? { ...r, end: e.target.value } : r)))}
                      />
                      {range.start && range.end && crossesMidnight(range) ? (
                        <span className="text-xs text-slate-600">
                          {range.start === range.end ? t("week.wholeDay") : t("week.nextDay")}
                        </span>
                      ) : null}
                      <button
                        type="button"
                        className="btn-secondary px-2 py-1 text-xs"
                        aria-label={t("week.removeRange", { day: name, start: range.start, end: range.end })}
                        onClick={() => set(day, ranges.filter((_, j) => j !== i))}
                      >
                        ✕
                      </button>
                    </div>
                  ))
                ) : (
                  <span className="pt-1.5 text-sm text-slate-600">{t("week.closed")}</span>
                )}
                {open ? (
                  <button
                    type="button"
                    className="self-start text-xs font-medium text-emerald-800 underline"
                    onClick={() => set(day, [...ranges, { start: "13:00", end: "17:00" }])}
                  >
                    {t("week.addRange", { day: name })}
                  </button>
                ) : null}
              </div>
            </li>
          );
        })}
      </ul>
    </fieldset>
  );
}
