// A page loaded when first shown, outside the first load's JavaScript.

import { lazy, Suspense, type ComponentType } from "react";
import { useI18n } from "../i18n";
import { Spinner } from "./ui";

function Loading() {
  const { t } = useI18n();
  return (
    <div className="mx-auto max-w-6xl px-4 py-6">
      <Spinner label={t("common.loading")} />
    </div>
  );
}

/** The page `load` gives (its module's export `name`), in its own chunk. */
export function lazyPage<K extends string, P extends object>(
  load: () => Promise<{ [key in K]: ComponentType<P> }>,
  name: K,
): ComponentType<P> {
  const Page = lazy(async (): Promise<{ default: ComponentType<P> }> => ({ default: (await load())[name] }));
  return function LazyPage(props: P) {
    return (
      <Suspense fallback={<Loading />}>
        <Page {...props} />
      </Suspense>
    );
  };
}
