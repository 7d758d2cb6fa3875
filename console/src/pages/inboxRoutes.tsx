// The inbox, automation and schedule pages, each loaded when first
// visited: they stay out of the first load.

import { lazy, Suspense, type ComponentType } from "react";
import { Spinner } from "../components/ui";
import { useI18n } from "../i18n";

function lazyPage<P extends object>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  const Page = lazy(async () => ({ default: await load() }));
  return function LazyPage(props: P) {
    const { t } = useI18n();
    return (
      <Suspense fallback={<Spinner label={t("common.loading")} />}>
        <Page {...props} />
      </Suspense>
    );
  };
}

export const InboxPage = lazyPage(() => import("./Inbox").then((m) => m.Inbox));
export const AutomationPage = lazyPage(() => import("./Automation").then((m) => m.Automation));
export const AutomationRulePage = lazyPage(() => import("./Automation").then((m) => m.AutomationRule));
export const SchedulePage = lazyPage(() => import("./Schedule").then((m) => m.Schedule));
