// Linking a number: the QR code to scan (refreshed as it expires, with its
// countdown) or the pairing code to type, until the event stream says the
// number is ready.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { ApiError, api } from "../api/client";
import { keys } from "../api/queries";
import { LINKING, type PairingCode, type Qr, type Session } from "../api/types";
import { QrImage } from "../components/QrImage";
import { Alert, Spinner, StatusBadge } from "../components/ui";
import { errorText, useI18n } from "../i18n";
import { useLiveStatuses } from "../lib/live";
import { secondsUntil } from "../lib/time";

function useNow(everyMs = 1000) {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

function QrPanel({ session }: { session: Session }) {
  const { t } = useI18n();
  const now = useNow();
  const live = useLiveStatuses().get(session.id);
  const qr = useQuery({
    queryKey: ["qr", session.id],
    // The status may come from the event stream, ahead of the query table
    // the API checks it in: the read waits for the table to reflect it.
    queryFn: ({ signal }) => api<Qr>(`/api/v1/sessions/${session.id}/qr`, { signal, after: live?.position }),
    // A new code as soon as this one expires.
    refetchInterval: (query) => {
      const expires = query.state.data?.expires_at;
      return expires ? Math.max(1000, Date.parse(expires) - Date.now() + 250) : 2000;
    },
    staleTime: 0,
    // Just after the status turned `qr` the first code may not be out yet.
    retry: (count, err) => err instanceof ApiError && err.code === "invalid_state" && count < 10,
    retryDelay: 700,
  });
  const left = qr.data ? secondsUntil(qr.data.expires_at, now) : 0;
  return (
    <div className="space-y-3 text-center">
      <ol className="list-decimal space-y-1 pl-5 text-left text-sm text-slate-800">
        <li>{t("link.qr.step1")}</li>
        <li>{t("link.qr.step2")}</li>
        <li>{t("link.qr.step3")}</li>
      </ol>
      {qr.data ? (
        <>
          <QrImage payload={qr.data.qr} alt={t("link.qr.alt", { name: session.name })} />
          <p role="timer" className="text-sm text-slate-700" data-testid="qr-countdown">
            {left > 0 ? t("link.qr.expiresIn", { seconds: left }) : t("link.qr.refreshing")}
          </p>
        </>
      ) : qr.error ? (
        <Alert>{errorText(t, qr.error)}</Alert>
      ) : (
        <Spinner label={t("link.qr.loading")} />
      )}
    </div>
  );
}

function PairingPanel({ session, phone }: { session: Session; phone: string }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);
  const asked = useRef(false);
  const pairing = useMutation({
    mutationFn: () =>
      api<PairingCode>(`/api/v1/sessions/${session.id}/pairing-code`, { method: "POST", body: { phone_number: phone } }),
  });
  // The code is asked for once, as soon as the session waits to be linked.
  useEffect(() => {
    if (!asked.current) {
      asked.current = true;
      pairing.mutate();
    }
  }, [pairing]);
  const copy = async (code: string) => {
    try {
      await navigator.clipboard.writeText(code);
      setCopied(true);
      setTimeout(() => setCopied(false), 2000);
    } catch {
      setCopied(false);
    }
  };
  return (
    <div className="space-y-3">
      <ol className="list-decimal space-y-1 pl-5 text-sm text-slate-800">
        <li>{t("link.qr.step1")}</li>
        <li>{t("link.pairing.step2")}</li>
        <li>{t("link.pairing.step3", { phone })}</li>
      </ol>
      {pairing.data ? (
        <div className="flex flex-wrap items-center justify-center gap-3">
          <output className="rounded-md bg-slate-100 px-4 py-2 font-mono text-2xl tracking-widest" data-testid="pairing-code">
            {pairing.data.code}
          </output>
          <button type="button" className="btn-secondary" onClick={() => void copy(pairing.data.code)}>
            {t("link.pairing.copy")}
          </button>
          <span role="status" className="text-sm text-emerald-800">
            {copied ? t("link.pairing.copied") : ""}
          </span>
        </div>
      ) : pairing.isPending ? (
        <Spinner label={t("link.pairing.loading")} />
      ) : null}
      <Alert>{pairing.error ? errorText(t, pairing.error) : null}</Alert>
      {pairing.data || pairing.error ? (
        <button type="button" className="btn-secondary" onClick={() => pairing.mutate()} disabled={pairing.isPending}>
          {t("link.pairing.again")}
        </button>
      ) : null}
    </div>
  );
}

/** What to show while `session` is being linked; `pairingPhone` for a pairing code. */
export function LinkPanel({ session, pairingPhone, onDone }: { session: Session; pairingPhone?: string; onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const start = useMutation({
    mutationFn: () => api<Session>(`/api/v1/sessions/${session.id}/start`, { method: "POST" }),
    onSettled: () => client.invalidateQueries({ queryKey: keys.sessions }),
  });
  const phone = pairingPhone ?? (session.login === "pairing" ? session.phone_number : null);
  return (
    <div className="space-y-4" data-testid="link-panel" data-session-id={session.id}>
      <p className="flex items-center gap-2 text-sm">
        {t("link.status")} <StatusBadge status={session.status} />
      </p>
      {session.status === "ready" ? (
        <div className="space-y-3">
          <p role="status" className="rounded-md bg-emerald-50 px-3 py-2 text-emerald-900">
            {t("link.ready", { phone: session.phone_number ?? "" })}
          </p>
          <button type="button" className="btn-primary" onClick={onDone}>
            {t("common.done")}
          </button>
        </div>
      ) : LINKING.includes(session.status) ? (
        phone ? (
          <PairingPanel session={session} phone={phone} />
        ) : (
          <QrPanel session={session} />
        )
      ) : ["idle", "failed", "logged_out"].includes(session.status) ? (
        <div className="space-y-3">
          {session.last_error ? <Alert>{session.last_error}</Alert> : <p className="text-sm">{t("link.stopped")}</p>}
          <Alert>{start.error ? errorText(t, start.error) : null}</Alert>
          <button type="button" className="btn-primary" onClick={() => start.mutate()} disabled={start.isPending}>
            {t("numbers.start")}
          </button>
        </div>
      ) : (
        <Spinner label={t("link.waiting")} />
      )}
    </div>
  );
}
