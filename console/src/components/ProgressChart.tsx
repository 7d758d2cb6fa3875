import { useMemo } from "react";
import { useI18n } from "../i18n";
import type { Series } from "../lib/campaigns";

// Drawn in a box of WIDTH × HEIGHT stretched to the figure (the lines keep
// their width); the labels are HTML around it, readable on a phone too.
const WIDTH = 640;
const HEIGHT = 200;
const PAD = 8;

const LINES = [
  { key: "sent", color: "#047857", label: "campaign.chart.sent" },
  { key: "delivered", color: "#0369a1", label: "campaign.chart.delivered" },
  { key: "read", color: "#6d28d9", label: "campaign.chart.read" },
] as const;

/**
 * Messages sent, delivered and read over time, as steps: a small SVG, no
 * library. `from` and `to` bound the time axis (milliseconds).
 */
export function ProgressChart({
  series,
  total,
  from,
  to,
}: {
  series: Record<(typeof LINES)[number]["key"], Series>;
  total: number;
  from: number;
  to: number;
}) {
  const { t, lang } = useI18n();
  const time = useMemo(
    () => new Intl.DateTimeFormat(lang === "id" ? "id-ID" : "en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    [lang],
  );
  const top = Math.max(1, total, ...LINES.map((l) => series[l.key].at(-1)?.count ?? 0));
  const end = Math.max(to, from + 1_000);
  const x = (at: number) => ((Math.min(Math.max(at, from), end) - from) / (end - from)) * WIDTH;
  const y = (count: number) => HEIGHT - PAD - (count / top) * (HEIGHT - 2 * PAD);
  /** Where `count` sits, from the top of the drawing, in percent. */
  const yPercent = (count: number) => `${(y(count) / HEIGHT) * 100}%`;
  const path = (points: Series) => {
    let d = `M${x(from).toFixed(1)},${y(0).toFixed(1)}`;
    for (const point of points) d += ` H${x(point.at).toFixed(1)} V${y(point.count).toFixed(1)}`;
    return `${d} H${x(end).toFixed(1)}`;
  };
  const now = (key: (typeof LINES)[number]["key"]) => series[key].at(-1)?.count ?? 0;
  const summary = t("campaign.chart.summary", {
    sent: now("sent"),
    delivered: now("delivered"),
    read: now("read"),
    total,
  });
  const points = LINES.reduce((sum, l) => sum + series[l.key].length, 0);
  // Every count of a small campaign, else nought, the middle and the top.
  const ticks = top <= 5 ? Array.from({ length: top + 1 }, (_, i) => i) : [0, Math.round(top / 2), top];
  return (
    <figure className="space-y-2">
      <div className="pl-8">
        <div className="relative">
          <div aria-hidden="true" className="absolute inset-y-0 -left-8 w-7 text-right text-xs text-slate-600">
            {ticks.map((count) => (
              <span key={count} className="absolute right-0 -translate-y-1/2 tabular-nums" style={{ top: yPercent(count) }}>
                {count}
              </span>
            ))}
          </div>
          <svg
            viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
            preserveAspectRatio="none"
            className="block h-44 w-full sm:h-56"
            role="img"
            aria-label={summary}
            data-testid="progress-chart"
            data-points={points}
          >
            {ticks.map((count) => (
              <line key={count} x1={0} x2={WIDTH} y1={y(count)} y2={y(count)} stroke="#e2e8f0" vectorEffect="non-scaling-stroke" />
            ))}
            {/* The later steps underneath: at zero, what was sent shows. */}
            {[...LINES].reverse().map((line) => (
              <path
                key={line.key}
                d={path(series[line.key])}
                fill="none"
                stroke={line.color}
                strokeWidth="2.5"
                vectorEffect="non-scaling-stroke"
                data-line={line.key}
              />
            ))}
          </svg>
        </div>
        <div aria-hidden="true" className="mt-1 flex justify-between text-xs text-slate-600 tabular-nums">
          <span>{time.format(from)}</span>
          <span>{time.format(end)}</span>
        </div>
      </div>
      <figcaption className="flex flex-wrap gap-x-4 gap-y-1 text-sm text-slate-800">
        {LINES.map((line) => (
          <span key={line.key} className="inline-flex items-center gap-1.5">
            <span aria-hidden="true" className="inline-block h-2.5 w-4 rounded-sm" style={{ background: line.color }} />
            {t(line.label)}: <span className="font-semibold tabular-nums">{now(line.key)}</span>
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
