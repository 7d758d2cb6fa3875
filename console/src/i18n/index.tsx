// The console's language: Bahasa Indonesia by default, English on request,
// the choice kept in localStorage. Every string shown comes from the one
// table in ./messages.

import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { ApiError } from "../api/client";
import { messages, type Lang, type MessageKey } from "./messages";

export type { Lang, MessageKey };

export type Vars = Record<string, string | number>;
export type Translate = (key: MessageKey, vars?: Vars) => string;

const LANG_KEY = "wablast.lang";

export function isMessageKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(messages.id, key);
}

/** `key` in `lang`, with `{name}` placeholders filled from `vars`. */
export function translate(lang: Lang, key: MessageKey, vars?: Vars): string {
  const text: string = messages[lang][key];
  return vars ? text.replace(/\{(\w+)\}/g, (whole, name: string) => String(vars[name] ?? whole)) : text;
}

/**
 * What to say about a failed request: the table's words for its code on
 * its field (`error.validation_failed.password`), else for its code, else
 * the API's own message.
 */
export function errorText(t: Translate, err: unknown): string {
  if (err instanceof ApiError) {
    const onField = `error.${err.code}.${err.field ?? ""}`;
    if (err.field && isMessageKey(onField)) return t(onField);
    const onCode = `error.${err.code}`;
    if (isMessageKey(onCode)) return t(onCode);
    return err.message;
  }
  return t("error.unexpected");
}

/**
 * A failed request's error split between the form's `fields` (shown next
 * to the field it concerns) and the form as a whole.
 */
export function formErrors(
  t: Translate,
  err: unknown,
  fields: readonly string[],
): { form?: string; fields: Record<string, string> } {
  if (!err) return { fields: {} };
  const text = errorText(t, err);
  if (err instanceof ApiError && err.field && fields.includes(err.field)) {
    return { fields: { [err.field]: text } };
  }
  return { form: text, fields: {} };
}

function initialLang(): Lang {
  try {
    return localStorage.getItem(LANG_KEY) === "en" ? "en" : "id";
  } catch {
    return "id";
  }
}

interface I18n {
  lang: Lang;
  setLang: (lang: Lang) => void;
  t: Translate;
}

const Context = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const setLang = useCallback((next: Lang) => {
    localStorage.setItem(LANG_KEY, next);
    setLangState(next);
  }, []);
  const value = useMemo<I18n>(
    () => ({ lang, setLang, t: (key, vars) => translate(lang, key, vars) }),
    [lang, setLang],
  );
  return <Context.Provider value={value}>{children}</Context.Provider>;
}

export function useI18n(): I18n {
  const value = useContext(Context);
  if (!value) throw new Error("useI18n outside I18nProvider");
  return value;
}

/** Numbers and dates in the language's conventions. */
export function useFormat() {
  const { lang } = useI18n();
  const locale = lang === "id" ? "id-ID" : "en-GB";
  return useMemo(
    () => ({
      number: (n: number) => new Intl.NumberFormat(locale).format(n),
      date: (iso: string) => new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(iso)),
    }),
    [locale],
  );
}
