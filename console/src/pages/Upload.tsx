// Uploading a CSV or XLSX file as a contact list: a preview of its first
// rows read in the browser, its columns mapped by dropdown, then the
// API's import and its report of the rows it refused.

import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type FormEvent } from "react";
import { Link } from "wouter";
import { api } from "../api/client";
import { keys } from "../api/queries";
import type { Imported } from "../api/types";
import { Layout } from "../components/Layout";
import { SelectField } from "../components/Select";
import { Alert, Field, Spinner } from "../components/ui";
import { formErrors, isMessageKey, useFormat, useI18n, type MessageKey } from "../i18n";
import { buildMapping, guessMapping, isVariableName, mappingProblems, type MappingChoice } from "../lib/mapping";
import { PreviewError, previewFile, type Preview } from "../lib/preview";

const FIELDS = ["file", "name", "mapping", "mapping.phone", "mapping.name", "mapping.consent", "mapping.variables", "default_region"];

export function Upload() {
  const { t } = useI18n();
  const [file, setFile] = useState<File | null>(null);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [reading, setReading] = useState(false);
  const [fileError, setFileError] = useState<string | undefined>();
  const [name, setName] = useState("");
  const [region, setRegion] = useState("ID");
  const [choice, setChoice] = useState<MappingChoice>({ phone: "", name: "", consent: "", variables: [] });
  const [checked, setChecked] = useState(false);
  const [result, setResult] = useState<Imported | null>(null);
  const client = useQueryClient();
  const fileId = useId();

  const choose = async (chosen: File | undefined) => {
    setResult(null);
    setPreview(null);
    setFileError(undefined);
    setChecked(false);
    upload.reset();
    setFile(chosen ?? null);
    if (!chosen) return;
    setName(chosen.name.replace(/\.[^.]+$/, ""));
    setReading(true);
    try {
      const read = await previewFile(chosen);
      setPreview(read);
      setChoice(guessMapping(read.header));
    } catch (err) {
      const reason = err instanceof PreviewError ? err.reason : "unreadable";
      setFileError(t(`upload.file.${reason}` as MessageKey));
    } finally {
      setReading(false);
    }
  };

  const upload = useMutation({
    mutationFn: () => {
      const form = new FormData();
      form.append("name", name.trim());
      form.append("default_region", region.trim().toUpperCase());
      form.append("mapping", JSON.stringify(buildMapping(choice, preview?.header ?? [])));
      form.append("file", file!, file!.name);
      return api<Imported>("/api/v1/contact-lists/import", { method: "POST", body: form });
    },
    onSuccess: async (imported) => {
      setResult(imported);
      await client.invalidateQueries({ queryKey: keys.lists });
    },
  });
  const errors = formErrors(t, upload.error, FIELDS);
  const problems = checked ? mappingProblems(choice) : {};
  const problem = (field: keyof typeof problems) => {
    const found = problems[field];
    return found ? t(`upload.problem.${found}` as MessageKey) : undefined;
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setChecked(true);
    if (!file || !preview || Object.keys(mappingProblems(choice)).length > 0) return;
    upload.mutate();
  };
  const set = (key: "phone" | "name" | "consent") => (value: string) =>
    setChoice((current) => ({ ...current, [key]: value, variables: current.variables.filter((v) => v !== value) }));
  const toggleVariable = (column: string) =>
    setChoice((current) => ({
      ...current,
      variables: current.variables.includes(column) ? current.variables.filter((v) => v !== column) : [...current.variables, column],
    }));

  if (result) {
    return (
      <Layout title={t("upload.title")}>
        <Report result={result} />
      </Layout>
    );
  }

  const columns = preview?.header ?? [];
  const used = new Set([choice.phone, choice.name, choice.consent]);
  return (
    <Layout title={t("upload.title")}>
      <form onSubmit={submit} noValidate className="space-y-6">
        <section className="card space-y-2">
          <label htmlFor={fileId} className="block text-sm font-medium text-slate-800">
            {t("upload.file")}
          </label>
          <input
            id={fileId}
            type="file"
            accept=".csv,.xlsx,text/csv,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            className="block w-full text-sm file:mr-3 file:rounded-md file:border file:border-slate-300 file:bg-white file:px-3 file:py-2 file:text-sm file:font-medium"
            aria-invalid={fileError || errors.fields.file ? true : undefined}
            aria-describedby={`${fileId}-help`}
            onChange={(e) => void choose(e.target.files?.[0])}
          />
          <p id={`${fileId}-help`} className={`text-sm ${fileError || errors.fields.file ? "text-red-700" : "text-slate-600"}`}>
            {fileError ?? errors.fields.file ?? t("upload.file.hint")}
          </p>
          {reading ? <Spinner label={t("upload.reading")} /> : null}
        </section>

        {preview ? (
          <>
            <section className="card space-y-2" aria-labelledby="preview-title">
              <h2 id="preview-title" className="font-semibold">
                {t("upload.preview")}
              </h2>
              <p className="text-sm text-slate-700">
                {t("upload.preview.count", { shown: preview.rows.length, total: preview.total })}
              </p>
              <div className="overflow-x-auto">
                <table className="w-full text-left text-sm" data-testid="upload-preview">
                  <thead className="bg-slate-50">
                    <tr>
                      {preview.header.map((column, i) => (
                        <th key={i} scope="col" className="whitespace-nowrap px-3 py-2 font-medium">
                          {column || t("upload.unnamed", { n: i + 1 })}
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {preview.rows.map((row, r) => (
                      <tr key={r} className="border-t border-slate-200">
                        {row.map((cell, c) => (
                          <td key={c} className="whitespace-nowrap px-3 py-1.5">
                            {cell}
                          </td>
                        ))}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </section>

            <section className="card space-y-4" aria-labelledby="mapping-title">
              <h2 id="mapping-title" className="font-semibold">
                {t("upload.mapping")}
              </h2>
              <p className="text-sm text-slate-700">{t("upload.mapping.hint")}</p>
              <Alert>{errors.fields.mapping}</Alert>
              <div className="grid gap-4 sm:grid-cols-3">
                <SelectField
                  label={t("upload.map.phone")}
                  value={choice.phone}
                  onChange={(e) => set("phone")(e.target.value)}
                  error={problem("phone") ?? errors.fields["mapping.phone"]}
                  required
                >
                  <option value="">{t("upload.map.choose")}</option>
                  {columns.map((column) => (column ? <option key={column} value={column}>{column}</option> : null))}
                </SelectField>
                <SelectField
                  label={t("upload.map.name")}
                  value={choice.name}
                  onChange={(e) => set("name")(e.target.value)}
                  error={problem("name") ?? errors.fields["mapping.name"]}
                >
                  <option value="">{t("upload.map.none")}</option>
                  {columns.map((column) => (column ? <option key={column} value={column}>{column}</option> : null))}
                </SelectField>
                <SelectField
                  label={t("upload.map.consent")}
                  value={choice.consent}
                  onChange={(e) => set("consent")(e.target.value)}
                  error={problem("consent") ?? errors.fields["mapping.consent"]}
                  hint={t("upload.map.consentHint")}
                  required
                >
                  <option value="">{t("upload.map.choose")}</option>
                  {columns.map((column) => (column ? <option key={column} value={column}>{column}</option> : null))}
                </SelectField>
              </div>
              <fieldset className="space-y-2" aria-describedby="variables-help">
                <legend className="text-sm font-medium text-slate-800">{t("upload.map.variables")}</legend>
                <p id="variables-help" className={`text-sm ${problem("variables") || errors.fields["mapping.variables"] ? "text-red-700" : "text-slate-600"}`}>
                  {problem("variables") ?? errors.fields["mapping.variables"] ?? t("upload.map.variablesHint")}
                </p>
                <div className="flex flex-wrap gap-x-4 gap-y-2">
                  {columns
                    .filter((column) => column && !used.has(column))
                    .map((column) => {
                      const usable = isVariableName(column);
                      return (
                        <label key={column} className={`flex items-center gap-2 text-sm ${usable ? "" : "text-slate-500"}`}>
                          <input
                            type="checkbox"
                            className="h-4 w-4 accent-emerald-700"
                            checked={choice.variables.includes(column)}
                            disabled={!usable}
                            onChange={() => toggleVariable(column)}
                          />
                          {usable ? column : t("upload.map.notVariable", { column })}
                        </label>
                      );
                    })}
                </div>
              </fieldset>
            </section>

            <section className="card grid gap-4 sm:grid-cols-2">
              <Field
                label={t("upload.name")}
                value={name}
                onChange={(e) => setName(e.target.value)}
                error={errors.fields.name ? t("upload.name.error") : undefined}
                maxLength={200}
                required
              />
              <Field
                label={t("upload.region")}
                value={region}
                onChange={(e) => setRegion(e.target.value)}
                error={errors.fields.default_region}
                hint={t("upload.region.hint")}
                maxLength={2}
                autoCapitalize="characters"
              />
            </section>
            <Alert>{errors.form}</Alert>
            <div className="flex flex-wrap gap-2">
              <button type="submit" className="btn-primary" disabled={upload.isPending}>
                {upload.isPending ? t("upload.importing") : t("upload.submit")}
              </button>
              <Link href="/contacts" className="btn-secondary">
                {t("common.cancel")}
              </Link>
            </div>
          </>
        ) : null}
      </form>
    </Layout>
  );
}

/** What the import did: how many rows became contacts, and why the others did not. */
export function Report({ result, onBack }: { result: Imported; onBack?: () => void }) {
  const { t } = useI18n();
  const format = useFormat();
  const reason = (code: string, message: string) => (isMessageKey(`reject.${code}`) ? t(`reject.${code}` as MessageKey) : message);
  return (
    <div className="space-y-4" data-testid="import-report">
      <div role="status" className="rounded-md bg-emerald-50 px-4 py-3 text-emerald-900">
        <p className="font-semibold">{t("report.done", { name: result.name })}</p>
        <p>
          {t("report.counts", {
            accepted: format.number(result.accepted),
            total: format.number(result.total_rows),
            rejected: format.number(result.rejected_count),
          })}
        </p>
      </div>
      {result.rejected.length > 0 ? (
        <section className="card space-y-2" aria-labelledby="rejected-title">
          <h2 id="rejected-title" className="font-semibold">
            {t("report.rejected")}
          </h2>
          {result.rejected_count > result.rejected.length ? (
            <p className="text-sm text-slate-700">{t("report.firstOnly", { shown: result.rejected.length })}</p>
          ) : null}
          <div className="overflow-x-auto">
            <table className="w-full text-left text-sm" data-testid="rejected-rows">
              <thead className="bg-slate-50">
                <tr>
                  <th scope="col" className="px-3 py-2 font-medium">
                    {t("report.row")}
                  </th>
                  <th scope="col" className="px-3 py-2 font-medium">
                    {t("report.value")}
                  </th>
                  <th scope="col" className="px-3 py-2 font-medium">
                    {t("report.reason")}
                  </th>
                </tr>
              </thead>
              <tbody>
                {result.rejected.map((row) => (
                  <tr key={`${row.row}-${row.reason}`} className="border-t border-slate-200">
                    <td className="px-3 py-1.5 tabular-nums">{row.row}</td>
                    <td className="px-3 py-1.5">
                      <span className="font-mono">{row.value}</span>
                      {row.column ? <span className="block text-xs text-slate-600">{t("report.column", { column: row.column })}</span> : null}
                    </td>
                    <td className="px-3 py-1.5">
                      {reason(row.reason, row.message)}
                      {row.duplicate_of ? ` ${t("report.duplicateOf", { row: row.duplicate_of })}` : ""}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : null}
      <div className="flex flex-wrap gap-2">
        <Link href={`/contacts/${result.id}`} className="btn-primary">
          {t("report.open")}
        </Link>
        {onBack ? (
          <button type="button" className="btn-secondary" onClick={onBack}>
            {t("report.back")}
          </button>
        ) : (
          <Link href="/contacts" className="btn-secondary">
            {t("report.back")}
          </Link>
        )}
      </div>
    </div>
  );
}
