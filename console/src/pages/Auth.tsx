import { useMutation } from "@tanstack/react-query";
import { useEffect, useState, type FormEvent, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { api } from "../api/client";
import type { AccessToken, Registered } from "../api/types";
import { LanguageSwitch } from "../components/Layout";
import { Alert, Field } from "../components/ui";
import { formErrors, useI18n } from "../i18n";
import { signIn } from "../lib/auth";

function AuthFrame({ title, children }: { title: string; children: ReactNode }) {
  const { t } = useI18n();
  useEffect(() => {
    document.title = `${title} · wablast`;
  }, [title]);
  return (
    <div className="flex min-h-screen flex-col items-center justify-center px-4 py-10">
      <div className="absolute right-4 top-4">
        <LanguageSwitch />
      </div>
      <main className="w-full max-w-sm">
        <p className="mb-2 text-center text-2xl font-bold text-emerald-800">wablast</p>
        <p className="mb-6 text-center text-sm text-slate-700">{t("app.tagline")}</p>
        <div className="card p-6">
          <h1 className="mb-4 text-xl font-semibold">{title}</h1>
          {children}
        </div>
      </main>
    </div>
  );
}

export function SignIn() {
  const { t } = useI18n();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const login = useMutation({
    mutationFn: () => api<AccessToken>("/api/v1/auth/login", { method: "POST", body: { email, password } }),
    onSuccess: (answer) => signIn(answer.access_token, answer.expires_in),
  });
  const errors = formErrors(t, login.error, ["email", "password"]);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    login.mutate();
  };
  return (
    <AuthFrame title={t("auth.signIn.title")}>
      <form onSubmit={submit} noValidate className="space-y-4">
        <Field
          label={t("auth.email")}
          type="email"
          autoComplete="username"
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          error={errors.fields.email}
          required
        />
        <Field
          label={t("auth.password")}
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={errors.fields.password}
          required
        />
        <Alert>{errors.form}</Alert>
        <button type="submit" className="btn-primary w-full" disabled={login.isPending}>
          {login.isPending ? t("common.wait") : t("auth.signIn.submit")}
        </button>
      </form>
      <p className="mt-4 text-center text-sm text-slate-700">
        {t("auth.signIn.noAccount")}{" "}
        <Link href="/signup" className="font-medium text-emerald-800 underline">
          {t("auth.signUp.link")}
        </Link>
      </p>
    </AuthFrame>
  );
}

export function SignUp() {
  const { t } = useI18n();
  const [form, setForm] = useState({ name: "", organization: "", email: "", password: "" });
  const register = useMutation({
    mutationFn: () =>
      api<Registered>("/api/v1/auth/register", {
        method: "POST",
        body: {
          email: form.email,
          password: form.password,
          name: form.name.trim() || undefined,
          organization: form.organization.trim() || undefined,
        },
      }),
    onSuccess: (answer) => signIn(answer.access_token),
  });
  const errors = formErrors(t, register.error, ["email", "password", "name", "organization"]);
  const set = (field: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [field]: e.target.value }));
  const submit = (event: FormEvent) => {
    event.preventDefault();
    register.mutate();
  };
  return (
    <AuthFrame title={t("auth.signUp.title")}>
      <form onSubmit={submit} noValidate className="space-y-4">
        <Field label={t("auth.name")} autoComplete="name" value={form.name} onChange={set("name")} error={errors.fields.name} />
        <Field
          label={t("auth.organization")}
          autoComplete="organization"
          value={form.organization}
          onChange={set("organization")}
          error={errors.fields.organization}
        />
        <Field
          label={t("auth.email")}
          type="email"
          autoComplete="email"
          value={form.email}
          onChange={set("email")}
          error={errors.fields.email}
          required
        />
        <Field
          label={t("auth.password")}
          type="password"
          autoComplete="new-password"
          value={form.password}
          onChange={set("password")}
          error={errors.fields.password}
          hint={t("auth.password.hint")}
          required
        />
        <Alert>{errors.form}</Alert>
        <button type="submit" className="btn-primary w-full" disabled={register.isPending}>
          {register.isPending ? t("common.wait") : t("auth.signUp.submit")}
        </button>
      </form>
      <p className="mt-4 text-center text-sm text-slate-700">
        {t("auth.signUp.haveAccount")}{" "}
        <Link href="/login" className="font-medium text-emerald-800 underline">
          {t("auth.signIn.link")}
        </Link>
      </p>
    </AuthFrame>
  );
}

/**
 * Joining a team from an invitation link (`/accept-invite?token=...`):
 * a password (and a name) for the new account, then signed in. Signed in
 * already, the link still works: the new account replaces the session.
 */
export function AcceptInvite() {
  const { t } = useI18n();
  const token = new URLSearchParams(window.location.search).get("token") ?? "";
  const [, navigate] = useLocation();
  const [form, setForm] = useState({ name: "", password: "" });
  const accept = useMutation({
    mutationFn: () =>
      api<Registered>("/api/v1/members/accept", {
        method: "POST",
        body: { token, password: form.password, name: form.name.trim() || undefined },
      }),
    onSuccess: (answer) => {
      signIn(answer.access_token);
      navigate("/", { replace: true });
    },
  });
  const errors = formErrors(t, accept.error, ["password", "name"]);
  const set = (field: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [field]: e.target.value }));
  const submit = (event: FormEvent) => {
    event.preventDefault();
    accept.mutate();
  };
  return (
    <AuthFrame title={t("team.accept.title")}>
      {token ? (
        <form onSubmit={submit} noValidate className="space-y-4">
          <p className="text-sm text-slate-700">{t("team.accept.intro")}</p>
          <Field label={t("auth.name")} autoComplete="name" value={form.name} onChange={set("name")} error={errors.fields.name} />
          <Field
            label={t("auth.password")}
            type="password"
            autoComplete="new-password"
            value={form.password}
            onChange={set("password")}
            error={errors.fields.password}
            hint={t("auth.password.hint")}
            required
          />
          <Alert>{errors.form}</Alert>
          <button type="submit" className="btn-primary w-full" disabled={accept.isPending}>
            {accept.isPending ? t("common.wait") : t("team.accept.submit")}
          </button>
        </form>
      ) : (
        <Alert>{t("team.accept.noToken")}</Alert>
      )}
    </AuthFrame>
  );
}
