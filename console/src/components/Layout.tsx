import { useEffect, useRef, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { useMe } from "../api/queries";
import { useStreamState } from "../events";
import { useI18n, type MessageKey } from "../i18n";
import { signOut } from "../lib/auth";

const NAV: { href: string; label: MessageKey; adminOnly?: boolean }[] = [
  { href: "/", label: "nav.dashboard" },
  { href: "/numbers", label: "nav.numbers" },
  { href: "/contacts", label: "nav.contacts" },
  { href: "/campaigns", label: "nav.campaigns" },
  { href: "/inbox", label: "nav.inbox" },
  { href: "/automation", label: "nav.automation" },
  { href: "/schedule", label: "nav.schedule" },
  { href: "/wallet", label: "nav.wallet" },
  { href: "/developers", label: "nav.developers" },
  { href: "/team", label: "nav.team" },
  { href: "/admin", label: "nav.admin", adminOnly: true },
];

export function LanguageSwitch() {
  const { lang, setLang, t } = useI18n();
  const other = lang === "id" ? "en" : "id";
  return (
    <button
      type="button"
      className="btn-secondary px-2 py-1 text-xs"
      onClick={() => setLang(other)}
      aria-label={t("lang.switch")}
      lang={other}
    >
      {other === "en" ? "English" : "Bahasa Indonesia"}
    </button>
  );
}

function LiveIndicator() {
  const state = useStreamState();
  const { t } = useI18n();
  const open = state === "open";
  return (
    <span className="inline-flex items-center gap-1.5 text-xs text-slate-700" data-stream={state}>
      <span aria-hidden="true" className={`h-2 w-2 rounded-full ${open ? "bg-emerald-600" : "bg-amber-500"}`} />
      {open ? t("live.open") : t("live.reconnecting")}
    </span>
  );
}

/** The page's frame: skip link, header with navigation, the page as <main>. */
export function Layout({ title, actions, children }: { title: string; actions?: ReactNode; children: ReactNode }) {
  const { t } = useI18n();
  const [location] = useLocation();
  const me = useMe();
  const heading = useRef<HTMLHeadingElement>(null);
  // A new page: its title is announced and focus starts there.
  useEffect(() => {
    document.title = `${title} · wablast`;
    heading.current?.focus();
  }, [title]);
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:p-2">
        {t("nav.skip")}
      </a>
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
          <Link href="/" className="text-lg font-bold text-emerald-800">
            wablast
          </Link>
          <nav aria-label={t("nav.main")} className="order-last w-full sm:order-none sm:w-auto">
            <ul className="-mx-1 flex gap-1 overflow-x-auto whitespace-nowrap px-1 sm:flex-wrap sm:overflow-visible">
              {NAV.filter((item) => !item.adminOnly || me.data?.user?.role === "admin").map((item) => {
                const current = item.href === "/" ? location === "/" : location.startsWith(item.href);
                return (
                  <li key={item.href}>
                    <Link
                      href={item.href}
                      aria-current={current ? "page" : undefined}
                      className={`block rounded-md px-3 py-2 text-sm font-medium ${
                        current ? "bg-emerald-50 text-emerald-900" : "text-slate-700 hover:bg-slate-100"
                      }`}
                    >
                      {t(item.label)}
                    </Link>
                  </li>
                );
              })}
            </ul>
          </nav>
          <div className="ml-auto flex flex-wrap items-center gap-3">
            <LiveIndicator />
            <LanguageSwitch />
            {me.data?.user ? <span className="hidden text-sm text-slate-700 md:inline">{me.data.user.email}</span> : null}
            <button type="button" className="btn-secondary px-2 py-1 text-xs" onClick={signOut}>
              {t("nav.signOut")}
            </button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto max-w-6xl px-4 py-6">
        <div className="mb-6 flex flex-wrap items-center justify-between gap-3">
          <h1 ref={heading} tabIndex={-1} className="text-2xl font-bold focus:outline-none">
            {title}
          </h1>
          {actions}
        </div>
        {children}
      </main>
    </div>
  );
}
