// Cursor pagination as the API does it (`next_cursor`): the cursors of the
// pages before this one are kept to go back.

import { useState } from "react";
import { useI18n } from "../i18n";

/** The cursor of the page shown (null: the first), and the way to others. */
export function useCursorPages() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  return {
    cursor: cursors[cursors.length - 1],
    number: cursors.length,
    next: (cursor: string) => setCursors((current) => [...current, cursor]),
    previous: () => setCursors((current) => (current.length > 1 ? current.slice(0, -1) : current)),
    first: () => setCursors([null]),
  };
}

/**
 * Previous and next for a page of `useCursorPages`, hidden while there is
 * one page only. `loading`: the page shown is still the previous one's.
 */
export function Pager({
  pages,
  nextCursor,
  loading,
  label,
}: {
  pages: ReturnType<typeof useCursorPages>;
  nextCursor: string | null | undefined;
  loading: boolean;
  label: string;
}) {
  const { t } = useI18n();
  if (pages.number === 1 && !nextCursor) return null;
  return (
    <nav aria-label={label} className="flex items-center gap-2">
      <button type="button" className="btn-secondary" disabled={pages.number === 1} onClick={pages.previous}>
        {t("list.previous")}
      </button>
      <span className="text-sm text-slate-700">{t("list.page", { n: pages.number })}</span>
      <button
        type="button"
        className="btn-secondary"
        disabled={!nextCursor || loading}
        onClick={() => nextCursor && pages.next(nextCursor)}
      >
        {t("list.next")}
      </button>
    </nav>
  );
}
