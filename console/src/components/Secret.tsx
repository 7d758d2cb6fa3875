// A secret shown once (an API key, a webhook's signing secret): the value
// to select or copy, and a warning that it will not be shown again.

import { useEffect, useId, useState } from "react";
import { useI18n } from "../i18n";

/** A button that copies `value` and says so. */
export function CopyButton({ value, label }: { value: string; label: string }) {
  const { t } = useI18n();
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  useEffect(() => {
    if (state === "idle") return;
    const timer = setTimeout(() => setState("idle"), 4000);
    return () => clearTimeout(timer);
  }, [state]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setState("copied");
    } catch {
      // No clipboard (an insecure origin, a refused permission): the value
      // stays selectable.
      setState("failed");
    }
  };
  return (
    <>
      <button type="button" className="btn-secondary shrink-0" onClick={() => void copy()} aria-label={label}>
        {state === "copied" ? t("secret.copied") : t("secret.copy")}
      </button>
      <span role="status" className="sr-only">
        {state === "copied" ? t("secret.copied") : state === "failed" ? t("secret.copyFailed") : ""}
      </span>
      {state === "failed" ? <p className="w-full text-sm text-red-700">{t("secret.copyFailed")}</p> : null}
    </>
  );
}

/** The value, read-only and selected on focus, with its copy button and the warning. */
export function OnceSecret({
  label,
  copyLabel,
  value,
  warning,
  testId,
}: {
  label: string;
  copyLabel: string;
  value: string;
  warning: string;
  testId?: string;
}) {
  const id = useId();
  return (
    <div className="space-y-2" data-testid={testId}>
      <label htmlFor={id} className="block text-sm font-medium text-slate-800">
        {label}
      </label>
      <div className="flex flex-wrap gap-2">
        <input
          id={id}
          readOnly
          value={value}
          className="input min-w-0 flex-1 font-mono"
          onFocus={(event) => event.currentTarget.select()}
          aria-describedby={`${id}-warning`}
        />
        <CopyButton value={value} label={copyLabel} />
      </div>
      <p id={`${id}-warning`} className="rounded-md border border-amber-300 bg-amber-50 px-3 py-2 text-sm text-amber-900">
        {warning}
      </p>
    </div>
  );
}
