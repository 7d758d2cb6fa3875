// Making a contact list of a WhatsApp group's members: a ready number, one
// of its groups, the owner's word that the members agreed to be messaged,
// then the same report as a file import.

import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "wouter";
import { api } from "../api/client";
import { keys, useSessions } from "../api/queries";
import type { Group, Imported, Page } from "../api/types";
import { SelectField } from "../components/Select";
import { Alert, Field, Spinner } from "../components/ui";
import { errorText, formErrors, useI18n } from "../i18n";
import { Report } from "./Upload";

export function GroupImport({ onDone }: { onDone: () => void }) {
  const { t } = useI18n();
  const client = useQueryClient();
  const { sessions } = useSessions();
  const ready = (sessions ?? []).filter((s) => s.status === "ready");
  const [sessionId, setSessionId] = useState("");
  const session = ready.some((s) => s.id === sessionId) ? sessionId : (ready[0]?.id ?? "");
  const groups = useQuery({
    queryKey: ["groups", session],
    queryFn: ({ signal }) => api<Page<Group>>(`/api/v1/sessions/${session}/groups`, { signal }),
    enabled: session !== "",
  });
  const [groupId, setGroupId] = useState("");
  const group = groups.data?.items.find((g) => g.id === groupId) ?? groups.data?.items[0];
  const [name, setName] = useState<string | null>(null);
  const [agreed, setAgreed] = useState(false);
  const [agreeError, setAgreeError] = useState(false);
  const listName = name ?? group?.name ?? "";

  const create = useMutation({
    mutationFn: () =>
      api<Imported>("/api/v1/contact-lists/group-import", {
        method: "POST",
        body: { session_id: session, group_id: group!.id, name: listName.trim() },
      }),
    onSuccess: () => client.invalidateQueries({ queryKey: keys.lists }),
  });
  const errors = formErrors(t, create.error, ["session_id", "group_id", "name"]);

  if (create.data) return <Report result={create.data} onBack={onDone} />;
  if (sessions && ready.length === 0) {
    return (
      <p className="text-sm text-slate-700">
        {t("check.noReady")}{" "}
        <Link href="/numbers" className="font-medium text-emerald-800 underline">
          {t("check.toNumbers")}
        </Link>
      </p>
    );
  }
  return (
    <form
      noValidate
      className="space-y-4"
      onSubmit={(event) => {
        event.preventDefault();
        setAgreeError(!agreed);
        if (agreed && group) create.mutate();
      }}
    >
      <SelectField
        label={t("group.session")}
        value={session}
        onChange={(e) => {
          setSessionId(e.target.value);
          setGroupId("");
          setName(null);
        }}
        error={errors.fields.session_id}
      >
        {ready.map((s) => (
          <option key={s.id} value={s.id}>
            {s.name}
            {s.phone_number ? ` (${s.phone_number})` : ""}
          </option>
        ))}
      </SelectField>
      {groups.error ? <Alert>{errorText(t, groups.error)}</Alert> : null}
      {groups.isPending && session ? <Spinner label={t("group.loading")} /> : null}
      {groups.data && groups.data.items.length === 0 ? <p className="text-sm text-slate-700">{t("group.none")}</p> : null}
      {groups.data && groups.data.items.length > 0 ? (
        <>
          <SelectField
            label={t("group.group")}
            value={group?.id ?? ""}
            onChange={(e) => {
              setGroupId(e.target.value);
              setName(null);
            }}
            error={errors.fields.group_id}
          >
            {groups.data.items.map((g) => (
              <option key={g.id} value={g.id}>
                {t("group.option", { name: g.name, count: g.participants })}
              </option>
            ))}
          </SelectField>
          <Field
            label={t("upload.name")}
            value={listName}
            onChange={(e) => setName(e.target.value)}
            error={errors.fields.name ? t("upload.name.error") : undefined}
            maxLength={200}
            required
          />
          <div className="space-y-1">
            <label className="flex items-start gap-2 text-sm">
              <input
                type="checkbox"
                className="mt-0.5 h-4 w-4 accent-emerald-700"
                checked={agreed}
                onChange={(e) => {
                  setAgreed(e.target.checked);
                  if (e.target.checked) setAgreeError(false);
                }}
                aria-invalid={agreeError ? true : undefined}
                aria-describedby={agreeError ? "group-agree-error" : undefined}
              />
              {t("group.agree")}
            </label>
            {agreeError ? (
              <p id="group-agree-error" className="text-sm text-red-700">
                {t("group.agreeRequired")}
              </p>
            ) : null}
          </div>
          <Alert>{errors.form}</Alert>
          <button type="submit" className="btn-primary w-full" disabled={create.isPending}>
            {create.isPending ? t("upload.importing") : t("group.submit")}
          </button>
        </>
      ) : null}
    </form>
  );
}
