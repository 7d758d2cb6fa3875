import { useEffect, useId, useRef, type InputHTMLAttributes, type ReactNode } from "react";
import type { SessionStatus } from "../api/types";
import { errorText, useI18n, type MessageKey } from "../i18n";

/** What ties a form control to its label and to its error (or hint). */
type ControlProps = {
  id: string;
  "aria-invalid"?: boolean;
  "aria-describedby"?: string;
};

/** A label above a control, and its error (or hint) below it, tied to it
 * for screen readers. */
export function Labelled({
  label,
  error,
  hint,
  control,
}: {
  label: string;
  error?: string;
  hint?: string;
  control: (props: ControlProps) => ReactNode;
}) {
  const id = useId();
  const describedBy = error ? `${id}-error` : hint ? `${id}-hint` : undefined;
  return (
    <div className="space-y-1">
      <label htmlFor={id} className="block text-sm font-medium text-slate-800">
        {label}
      </label>
      {control({ id, "aria-invalid": error ? true : undefined, "aria-describedby": describedBy })}
      {error ? (
        <p id={`${id}-error`} className="text-sm text-red-700">
          {error}
        </p>
      ) : hint ? (
        <p id={`${id}-hint`} className="text-sm text-slate-600">
          {hint}
        </p>
      ) : null}
    </div>
  );
}

/** A labelled input with its error (or hint) tied to it for screen readers. */
export function Field({
  label,
  error,
  hint,
  ...input
}: { label: string; error?: string; hint?: string } & InputHTMLAttributes<HTMLInputElement>) {
  return (
    <Labelled
      label={label}
      error={error}
      hint={hint}
      control={(tied) => <input className="input" {...tied} {...input} />}
    />
  );
}

/** An error about a whole form or action, announced when it appears. */
export function Alert({ children }: { children?: ReactNode }) {
  if (!children) return null;
  return (
    <div role="alert" className="rounded-md border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800">
      {children}
    </div>
  );
}

/**
 * The end of a confirmation: what went wrong last time, the dangerous
 * action (`confirm`, off while `pending`) and a way out (`cancel`,
 * "Batal" unless said).
 */
export function ConfirmActions({
  error,
  pending,
  confirm,
  onConfirm,
  cancel,
  onCancel,
}: {
  error: unknown;
  pending: boolean;
  confirm: string;
  onConfirm: () => void;
  cancel?: string;
  onCancel: () => void;
}) {
  const { t } = useI18n();
  return (
    <>
      <Alert>{error ? errorText(t, error) : null}</Alert>
      <div className="flex gap-2">
        <button type="button" className="btn-danger" disabled={pending} onClick={onConfirm}>
          {confirm}
        </button>
        <button type="button" className="btn-secondary" onClick={onCancel}>
          {cancel ?? t("common.cancel")}
        </button>
      </div>
    </>
  );
}

/**
 * A modal dialog on the native <dialog>: focus moves in and is kept there,
 * Escape closes it, focus returns to where it was.
 */
export function Dialog({
  open,
  title,
  onClose,
  children,
}: {
  open: boolean;
  title: string;
  onClose: () => void;
  children: ReactNode;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const { t } = useI18n();
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) dialog.showModal();
    if (!open && dialog.open) dialog.close();
  }, [open]);
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      // Escape; no `close` handler: closing it from `open` fires one too.
      onCancel={(event) => {
        event.preventDefault();
        onClose();
      }}
      className="w-[calc(100%-2rem)] max-w-lg rounded-lg p-0 shadow-xl backdrop:bg-slate-900/50"
    >
      {open ? (
        <div className="p-5">
          <div className="mb-4 flex items-start justify-between gap-4">
            <h2 id={titleId} className="text-lg font-semibold">
              {title}
            </h2>
            <button type="button" className="btn-secondary px-2 py-1" onClick={onClose} aria-label={t("common.close")}>
              ✕
            </button>
          </div>
          {children}
        </div>
      ) : null}
    </dialog>
  );
}

const BADGE: Record<SessionStatus, string> = {
  idle: "bg-slate-100 text-slate-800",
  starting: "bg-sky-100 text-sky-900",
  qr: "bg-amber-100 text-amber-900",
  pairing: "bg-amber-100 text-amber-900",
  authenticated: "bg-sky-100 text-sky-900",
  ready: "bg-emerald-100 text-emerald-900",
  disconnected: "bg-orange-100 text-orange-900",
  failed: "bg-red-100 text-red-900",
  logged_out: "bg-slate-200 text-slate-800",
};

export function StatusBadge({ status }: { status: SessionStatus }) {
  const { t } = useI18n();
  return (
    <span
      data-status={status}
      className={`inline-flex items-center rounded-full px-2.5 py-0.5 text-xs font-semibold ${BADGE[status] ?? BADGE.idle}`}
    >
      {t(`status.${status}` as MessageKey)}
    </span>
  );
}

/** A bar of `value` out of `max`, with its numbers for screen readers. */
export function Meter({ value, max, label }: { value: number; max: number; label: string }) {
  const share = max > 0 ? Math.min(1, value / max) : 0;
  return (
    <div
      role="meter"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={max}
      aria-valuenow={value}
      className="h-2 w-full overflow-hidden rounded-full bg-slate-200"
    >
      <div
        className={`h-full ${share >= 1 ? "bg-red-600" : share >= 0.8 ? "bg-amber-500" : "bg-emerald-600"}`}
        style={{ width: `${share * 100}%` }}
      />
    </div>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="rounded-lg border-2 border-dashed border-slate-300 bg-white p-8 text-center">
      <p className="font-semibold text-slate-900">{title}</p>
      <div className="mt-2 text-sm text-slate-700">{children}</div>
    </div>
  );
}

export function Spinner({ label }: { label: string }) {
  return (
    <p role="status" className="text-sm text-slate-600">
      {label}
    </p>
  );
}
